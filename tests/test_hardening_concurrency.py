"""Concurrency (issue 15, P1 and P2): one writer per work folder stage and per release folder.

On main two ``generate`` runs on one work folder deleted each other's temporary shard folders (a
``FileNotFoundError`` traceback), and two ``release --out D`` at once once printed "(verified)" with
exit 0 while ``D/covid-cxr-synth`` had been moved aside without ``--replace``, or left staging folders.

The lock tests hold the lock in a second process (a lock held by this process is re-entrant), so the
refusal is certain; the race tests start two real CLI processes at once on tiny work folders.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest


from .conftest import TINY, cli_error_line as _error_line, copy_workdir

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1")

HOLD = """
import sys
from cxrsynth.core.locks import hold
with hold(sys.argv[1], sys.argv[2], "a test"):
    print("held", flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def held_elsewhere(folder: Path, name: str):
    """Another process holding ``<folder>/.<name>.lock``; yields its pid."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), name], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc.pid
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def test_second_generate_names_the_lock_holder(trained, tmp_path, capsys):
    wd = copy_workdir(trained, tmp_path / "wd")
    with held_elsewhere(wd / "generated", "generate") as pid:
        line = _error_line(capsys, ["-w", str(wd), "generate", "--configs", "g_nc", "--limit", "5"])
    assert f"is in use by another cxrsynth process, pid {pid} on " in line
    assert str(wd / "generated") in line and "wait for it to finish" in line
    assert not (wd / "generated" / "g_nc").exists()  # refused before any work


def test_ranks_of_one_run_share_the_folder_but_not_a_rank(trained, tmp_path):
    from cxrsynth.core.config import resolve
    from cxrsynth.core.errors import LockedError
    from cxrsynth.stages.generate import GenerateConfig
    from cxrsynth.pipeline import generate_in

    wd = copy_workdir(trained, tmp_path / "wd")
    cfg = resolve(GenerateConfig, overrides=["limit=4", "shard_size=2", "configs=g_nc", "workers=0"])
    with held_elsewhere(wd / "generated", "generate-rank0") as pid:
        with pytest.raises(LockedError, match=f"pid {pid}"):
            generate_in(wd, cfg, rank=0, world=2)
        # rank 1 of the same run shares the folder lock (shared) and runs
        assert generate_in(wd, cfg, rank=1, world=2)["configs"]["g_nc"]["generated"] == 2


def test_second_train_into_one_run_folder_names_the_lock_holder(planned_workdir, tmp_path):
    from cxrsynth.core.config import resolve
    from cxrsynth.core.errors import LockedError
    from cxrsynth.stages.translate.train import TrainConfig, train

    run = tmp_path / "run"
    with held_elsewhere(run, "train") as pid:
        with pytest.raises(LockedError, match=f"pid {pid}"):
            train(planned_workdir, resolve(TrainConfig, overrides=TINY + ["max_steps=1"]), out_dir=run)
    assert not (run / "checkpoints").exists()


def test_second_release_names_the_lock_holder(trained, tmp_path):
    from cxrsynth.core.errors import LockedError
    from cxrsynth.pipeline import PipelineConfig, release

    from .test_release import GEN

    out = tmp_path / "out"
    with held_elsewhere(out, "release") as pid:
        with pytest.raises(LockedError, match=f"pid {pid}"):
            release(trained, out, PipelineConfig(generate=GEN), audit=False)
    assert sorted(p.name for p in out.iterdir()) == [".release.lock"]


def _spy_verify(monkeypatch, act):
    """Replace the pipeline's verify with ``act(staging)``; returns the staging folders it saw."""
    from cxrsynth import pipeline

    seen = []

    def fake(staging, private=None, *a, **k):
        seen.append(Path(staging))
        return act(Path(staging))

    monkeypatch.setattr(pipeline, "verify", fake)
    return seen


def test_swap_checks_replace_again_and_staging_is_per_process(built, tmp_path, monkeypatch):
    """Another writer puts a release in place while this one is verifying: without --replace it must
    be left as it is, not moved aside."""
    from cxrsynth.core.errors import ConfigError
    from cxrsynth.pipeline import PipelineConfig, release

    from .test_release import GEN

    wd = copy_workdir(built[0], tmp_path / "wd", keep_generated=True)  # release rewrites generate's report
    out = tmp_path / "out"
    theirs = out / "covid-cxr-synth"

    def someone_else_finished(staging):
        theirs.mkdir(parents=True)
        (theirs / "THEIRS").write_text("x")
        return []

    seen = _spy_verify(monkeypatch, someone_else_finished)
    with pytest.raises(ConfigError, match="a release folder already exists"):
        release(wd, out, PipelineConfig(generate=GEN), audit=False)
    assert [p.name for p in seen] == [f".covid-cxr-synth.staging-{os.getpid()}"]
    assert sorted(p.name for p in out.iterdir()) == [".release.lock", "covid-cxr-synth"]  # nothing moved aside
    assert (theirs / "THEIRS").is_file()


def test_failed_release_removes_its_staging_folders(built, tmp_path, monkeypatch):
    from cxrsynth.pipeline import PipelineConfig, VerifyFailed, release

    from .test_release import GEN

    wd = copy_workdir(built[0], tmp_path / "wd", keep_generated=True)  # release rewrites generate's report
    out = tmp_path / "out"
    (out / ".covid-cxr-synth.staging-999999").mkdir(parents=True)  # left by a killed release
    _spy_verify(monkeypatch, lambda staging: [f"problem {i}" for i in range(7)])
    with pytest.raises(VerifyFailed, match=r"7 problems: problem 0; .*problem 4 \(and 2 more\)"):
        release(wd, out, PipelineConfig(generate=GEN), audit=False)
    assert sorted(p.name for p in out.iterdir()) == [".release.lock"]


def _cli(*args):
    return subprocess.Popen([sys.executable, "-m", "cxrsynth.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def _finish(procs):
    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        results.append((p.returncode, out, err))
    for rc, out, err in results:
        assert "Traceback" not in err, err[-3000:]
        if rc != 0:
            assert rc == 1 and len(err.strip().splitlines()) == 1 and err.startswith("Error: "), err[-3000:]
    return results


def test_two_generate_runs_at_once(trained, tmp_path):
    from cxrsynth.artifacts import GeneratedSet

    wd = copy_workdir(trained, tmp_path / "wd")
    args = ["-w", str(wd), "generate", "--configs", "g_nc", "--limit", "30", "--set", "shard_size=10",
            "--set", "workers=0", "--json"]
    results = _finish([_cli(*args), _cli(*args)])
    assert 0 in [rc for rc, _, _ in results]
    for rc, _, err in results:
        assert rc == 0 or "in use by another cxrsynth process" in err
    gen = wd / "generated" / "g_nc"
    assert all(GeneratedSet(wd / "generated").shard_is_done("g_nc", f"shard-{k:05d}") for k in range(3))
    assert len({p["id"] for p in GeneratedSet(wd / "generated").provenance("g_nc")}) == 30
    assert not list(gen.glob(".shard-*"))


def test_two_releases_into_one_folder_at_once(built, tmp_path):
    from cxrsynth.stages.release.verify import verify

    wd = copy_workdir(built[0], tmp_path / "wd", keep_generated=True)
    out = tmp_path / "D"
    args = ["-w", str(wd), "release", "--out", str(out), "--limit", "24", "--no-audit"]
    results = _finish([_cli(*args), _cli(*args)])
    codes = sorted(rc for rc, _, _ in results)
    assert codes == [0, 1], results
    loser = next(err for rc, _, err in results if rc == 1)
    assert "in use by another cxrsynth process" in loser or "a release folder already exists" in loser
    winner = next(o for rc, o, _ in results if rc == 0)
    assert "(verified)" in winner
    assert sorted(p.name for p in out.iterdir()) == [".release.lock", "covid-cxr-synth", "covid-cxr-synth.private"]
    assert verify(out / "covid-cxr-synth") == []


@pytest.mark.parametrize("command, name", [("ingest", "ingest"), ("benchmark", "benchmark"), ("audit", "audit")])
def test_other_writing_stages_are_locked(command, name, tmp_path, capsys, monkeypatch):
    import cxrsynth.stages.audit.run
    import cxrsynth.stages.benchmark.run
    import cxrsynth.stages.ingest

    from .conftest import COVID

    def started(*a, **k):
        raise AssertionError("the stage started while another process held its folder")

    for mod, attr in [(cxrsynth.stages.ingest, "ingest"), (cxrsynth.stages.benchmark.run, "run_benchmark"),
                      (cxrsynth.stages.audit.run, "audit")]:
        monkeypatch.setattr(mod, attr, started)
    wd = tmp_path / "wd"
    argv, folder = {
        "ingest": (["-w", str(wd), "ingest", str(COVID)], wd),
        "benchmark": (["-w", str(wd), "benchmark", "--limit", "2"], wd / "benchmark"),
        "audit": (["-w", str(wd), "audit", str(tmp_path)], wd / "audit"),
    }[command]
    with held_elsewhere(folder, name) as pid:
        line = _error_line(capsys, argv)
    assert f"in use by another cxrsynth process, pid {pid} on " in line
