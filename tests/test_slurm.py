"""``--launcher slurm`` against a real SLURM: the one-node cluster of ``scripts/slurm_local.sh`` (slurmctld
+ slurmd on 127.0.0.1, accounting off, so states come from ``scontrol``). scripts/test.sh starts it once
and stops it at exit; without it these tests are skipped with a line saying why (``-ra``).

What only a scheduler can show: sbatch reading the array directives and ``--slurm-*`` options, job ids
and states, ``scancel`` and a time limit killing jobs, the README's ``sbatch --wrap torchrun`` recipe.
Tiny settings (resnet18 at 32 px, 1 epoch, 2 cells; 2-step translators at 64 px): the time-limit run
waits a minute on SLURM's clock, so it is submitted first and checked last, while the others run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cxrsynth.stages.benchmark.run import BenchmarkConfig, run_benchmark
from cxrsynth.core.config import resolve
from cxrsynth.launch import launcher_from_cli, read_record

from ._launched_jobs import starts_then_waits
from .conftest import TINY, copy_workdir
from .test_launch import CELL0, CELL1, CFG, numbers, resumable_copy

pytestmark = pytest.mark.slurm
SETS = [x for kv in CFG for x in ("--set", kv)]


def _cluster() -> None:
    """Skip the module (one line saying why) when there is no cluster to use; fail when one was meant to
    be there and is not. Checked at collection, before any fixture builds data."""
    if os.environ.get("CXRSYNTH_SLURM_SKIP"):
        pytest.skip(f"no SLURM cluster: {os.environ['CXRSYNTH_SLURM_SKIP']}", allow_module_level=True)
    if os.environ.get("CXRSYNTH_SLURM_ERROR"):
        pytest.fail(f"the local SLURM cluster did not start: {os.environ['CXRSYNTH_SLURM_ERROR']}", pytrace=False)
    if not shutil.which("sbatch") or not os.environ.get("SLURM_CONF"):
        pytest.skip("no SLURM cluster: run `bash scripts/slurm_local.sh start` and `eval \"$(bash scripts/slurm_local.sh "
                    "env)\"` first (scripts/test.sh does)", allow_module_level=True)
    got = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    if got.returncode or not got.stdout.split():
        pytest.fail(f"SLURM_CONF={os.environ['SLURM_CONF']} but sinfo answers: {got.stderr.strip()}", pytrace=False)


_cluster()


def cx(*args, **kw) -> subprocess.Popen:
    """The CLI as a user runs it, in its own process (stdout and stderr as text)."""
    return subprocess.Popen([sys.executable, "-m", "cxrsynth.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def status(out: Path, capsys) -> dict:
    """``cxrsynth benchmark --status OUT --json`` (in this process: it only reads files and asks SLURM)."""
    from cxrsynth.cli import main

    capsys.readouterr()
    main(["benchmark", "--status", str(out), "--json"])
    return json.loads(capsys.readouterr().out)


def slurm_state(job_id: str) -> str:
    got = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, timeout=30)
    match = re.search(r"\bJobState=(\S+)", got.stdout)
    return match.group(1) if match else ""


def wait_for_job(folder: Path, state: str = "RUNNING", timeout_s: float = 180) -> str:
    """The SLURM job id of the cell in ``folder``, once SLURM runs it (or says ``state``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = (read_record(folder) or {}).get("job_id")
        if job and slurm_state(job) == state:
            return job
        time.sleep(0.2)
    raise AssertionError(f"no job reached {state} in {timeout_s} s ({read_record(folder)})")


@pytest.fixture(scope="module")
def timed_out(serial_benchmark, tmp_path_factory):
    """Submitted before the other tests, checked by the last: one cell whose job sleeps past its
    1-minute time limit (a ``--slurm-setup`` line), so that SLURM itself kills it."""
    out = resumable_copy(serial_benchmark[1], tmp_path_factory.mktemp("slurm") / "timeout")
    proc = cx("-w", serial_benchmark[0], "benchmark", "--out", out, "--launcher", "slurm", "--slurm-time", "1",
              "--slurm-setup", "sleep 600", *SETS)
    yield out, proc, time.monotonic()
    if proc.poll() is None:
        proc.kill()


def in_thread(fn, *args, **kw) -> tuple[threading.Thread, dict]:
    """``fn`` running in a thread; its return value or exception lands in the dict."""
    box: dict = {}

    def run():
        try:
            box["value"] = fn(*args, **kw)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def test_benchmark_array_gives_the_serial_numbers(serial_benchmark, timed_out, tmp_path, capsys):
    """Scenario 1: a two-cell array with the launcher the CLI options make (in this process, as the
    rerun below: a command's own process would spend half its time warming caches); the options as
    sbatch read them; --status while it runs and after."""
    wd, ref = serial_benchmark
    out, lines = tmp_path / "array", []
    launcher = launcher_from_cli("slurm", None, time_min=7, array_parallelism=2, options=("comment=cxrsynth-test",))
    thread, box = in_thread(run_benchmark, wd, out, resolve(BenchmarkConfig, overrides=CFG), launcher=launcher,
                            echo=lines.append)
    job = wait_for_job(out.joinpath(*CELL0))
    shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
    assert "TimeLimit=00:07:00" in shown and "ArrayTaskThrottle=2" in shown and "Comment=cxrsynth-test" in shown
    running = status(out, capsys)
    cell = running["cells"][0]
    # this cluster keeps no accounting: scontrol answers (a cluster with slurmdbd: sacct)
    assert running["states_from"].split()[0] in ("sacct", "scontrol") and cell["state"] == "running", running
    assert cell["job_id"] == job and cell["scheduler_state"] == "RUNNING" and cell["log"].endswith("_log.err")
    thread.join(400)
    assert "error" not in box and numbers(out) == numbers(ref), box
    for cell in (CELL0, CELL1):  # every job: its id and log, on the command's output and in --status
        rec = read_record(out.joinpath(*cell))
        assert rec["state"] == "done" and rec["launcher"] == "slurm" and re.fullmatch(r"\d+_[01]", rec["job_id"])
        assert f"{'/'.join(cell[1:])}: submitted as job {rec['job_id']} (log {rec['stderr']})" in lines
        assert f"{'/'.join(cell[1:])}: done (job {rec['job_id']}, log {rec['stderr']})" in lines
    after = status(out, capsys)
    assert after["counts"] == {"done": 2, "running": 0, "failed": 0, "missing": 0} and after["results"]
    assert all(c["job_id"] and c["log"] for c in after["cells"])


def test_scancel_mid_run_then_rerun_submits_only_that_cell(serial_benchmark, timed_out, tmp_path, capsys):
    """Scenario 2: seed-0 is finished, seed-1's job is cancelled while running: the command exits 1 naming
    the cell, its log and SLURM's state; the rerun submits seed-1 alone and gives the serial numbers."""
    wd, ref = serial_benchmark
    out = resumable_copy(ref, tmp_path / "cancelled")
    stamp = out.joinpath(*CELL0, "result.json").stat().st_mtime_ns
    # The job is cancelled while it runs its setup line: a cell already training could still finish in
    # the seconds between scancel's SIGTERM (which submitit ignores) and its SIGKILL (KillWait).
    proc = cx("-w", wd, "benchmark", "--out", out, "--launcher", "slurm", "--slurm-time", "7",
              "--slurm-setup", "sleep 120", *SETS)
    job = wait_for_job(out.joinpath(*CELL1))
    log = Path(read_record(out.joinpath(*CELL1))["stderr"])
    subprocess.run(["scancel", job], check=True)
    _, stderr = proc.communicate(timeout=300)
    err = [x for x in stderr.splitlines() if x.startswith("Error: ")]
    assert proc.returncode == 1 and len(err) == 1, stderr[-3000:]
    assert "1 of 1 benchmark cells failed" in err[0] and "normal-covid/real/seed-1" in err[0] and f"(log {log})" in err[0]
    assert "cancelled (scancel, or an administrator): SLURM state CANCELLED" in err[0]
    st = status(out, capsys)
    assert [(c["state"], c.get("scheduler_state")) for c in st["cells"]] == [("done", None), ("failed", "CANCELLED")]
    lines: list[str] = []
    run_benchmark(wd, out, resolve(BenchmarkConfig, overrides=CFG), launcher=launcher_from_cli("slurm", None, time_min=7),
                  echo=lines.append)
    assert [x.split(" as job")[0] for x in lines if "submitted as job" in x] == ["normal-covid/real/seed-1: submitted"]
    assert out.joinpath(*CELL0, "result.json").stat().st_mtime_ns == stamp
    assert numbers(out) == numbers(ref)


def _tree_sha(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.png"))}


def test_generate_array_makes_the_serial_pngs(trained, tmp_path):
    """Scenario 4: generate --world 2 as a two-job array: byte-identical PNGs to one serial run."""
    from cxrsynth.stages.generate import GenerateConfig
    from cxrsynth.pipeline import generate_in

    one, many = copy_workdir(trained, tmp_path / "one"), copy_workdir(trained, tmp_path / "many")
    sets = ["limit=10", "shard_size=5", "configs=g_pc", "workers=0"]
    generate_in(one, resolve(GenerateConfig, overrides=sets))
    (many / "generated" / "private").mkdir(parents=True)
    shutil.copy(one / "generated/private/id_secret", many / "generated/private/id_secret")
    proc = cx("-w", many, "generate", "--launcher", "slurm", "--world", "2", *[x for kv in sets for x in ("--set", kv)])
    _, stderr = proc.communicate(timeout=400)
    assert proc.returncode == 0, stderr[-3000:]
    assert len(re.findall(r"generate rank \d of 2: done \(job \d+_\d, log ", stderr)) == 2
    pngs = _tree_sha(one / "generated" / "g_pc")
    assert len(pngs) == 10 and _tree_sha(many / "generated" / "g_pc") == pngs


def test_release_trains_both_translators_as_slurm_jobs(planned_workdir, tmp_path):
    """Scenario 5: the two translator jobs on SLURM, then the rest here; the release verifies."""
    from cxrsynth.cli import main

    wd = copy_workdir(planned_workdir, tmp_path / "wd", keep_generated=False)
    for task in ("normal-covid", "pneumonia-covid"):  # trained here by the `trained` fixture, maybe: start afresh
        shutil.rmtree(wd / "translators" / task, ignore_errors=True)
    sets = [f"train.{o}" for o in TINY + ["max_steps=2"]] + ["generate.limit=4", "generate.shard_size=4",
                                                            "generate.workers=0"]
    proc = cx("-w", wd, "release", "--out", wd / "release", "--launcher", "slurm", "--no-audit",
              *[x for kv in sets for x in ("--set", kv)])
    stdout, stderr = proc.communicate(timeout=500)
    assert proc.returncode == 0, stderr[-3000:]
    assert len(re.findall(r"train (normal|pneumonia)-covid: done \(job \d+_\d, log ", stderr)) == 2
    for task in ("normal-covid", "pneumonia-covid"):
        assert json.loads((wd / "translators" / task / "train_report.json").read_text())["steps"] == 2
    assert "(verified)" in stdout
    main(["verify", str(wd / "release" / "covid-cxr-synth")])  # and again, on its own: exit 0


def test_readme_sbatch_torchrun_recipe_then_release_picks_it_up(trained, tmp_path):
    """Scenario 6: the README's `sbatch --wrap "torchrun ... train"` at 2 CPU processes (gloo)."""
    from cxrsynth.pipeline import release, resolve_pipeline

    wd = copy_workdir(trained, tmp_path / "wd")
    shutil.rmtree(wd / "translators" / "normal-covid")
    sets = " ".join(f"--set {kv}" for kv in TINY)
    cmd = (f"OMP_NUM_THREADS=1 {Path(sys.executable).parent / 'torchrun'} --standalone --nproc-per-node 2 "
           f"-m cxrsynth.cli -w {wd} train --task normal-covid --device cpu --max-steps 2 {sets}")
    job = subprocess.run(["sbatch", "--parsable", "--cpus-per-task", "2", "--time", "5", "-o", str(tmp_path / "ddp.log"),
                          "--wrap", cmd], capture_output=True, text=True, check=True).stdout.strip()
    deadline = time.monotonic() + 300
    while slurm_state(job) not in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert slurm_state(job) == "COMPLETED", (tmp_path / "ddp.log").read_text()[-3000:]
    rep = json.loads((wd / "translators" / "normal-covid" / "train_report.json").read_text())
    assert rep["world_size"] == 2 and rep["steps"] == 2
    cfg = resolve_pipeline(overrides=[f"train.{o}" for o in TINY + ["max_steps=2"]]
                           + ["generate.limit=4", "generate.shard_size=4", "generate.workers=0"])
    manifest = release(wd, wd / "release", cfg, audit=False)  # trains nothing: both runs are finished
    assert json.loads((wd / "translators" / "normal-covid" / "train_report.json").read_text()) == rep
    ids = json.dumps(manifest["translators"])
    assert rep["translator_id"] in ids and manifest["counts"]["g_nc"] == 4


def test_time_limit_is_reported_as_timed_out(timed_out, capsys):
    """Scenario 3 (submitted first): SLURM kills the job at its 1-minute limit; the command says so."""
    out, proc, started = timed_out
    _, stderr = proc.communicate(timeout=400)
    err = [x for x in stderr.splitlines() if x.startswith("Error: ")]
    assert proc.returncode == 1 and len(err) == 1, stderr[-3000:]
    log = read_record(out.joinpath(*CELL1))["stderr"]
    assert "normal-covid/real/seed-1" in err[0] and f"(log {log})" in err[0]
    assert "timed out: SLURM ended the job at its time limit (1 min, --slurm-time), state TIMEOUT" in err[0]
    assert time.monotonic() - started >= 60
    st = status(out, capsys)
    assert st["cells"][1]["state"] == "failed" and st["cells"][1]["scheduler_state"] == "TIMEOUT"


def test_a_preempted_job_is_requeued_and_runs_again(tmp_path):
    """What a preemption sends (SIGTERM, then submitit's USR2, as submitit's own ``_interrupt`` does): the
    job checkpoints, requeues itself through SLURM and runs again under the same id; the launcher waits
    for it and gets its result. Every launched job goes this way (benchmark cells too: each is redone)."""
    from cxrsynth.launch import Job, Launcher, launch

    got: list = []
    run = threading.Thread(target=lambda: got.extend(launch(
        Launcher(kind="slurm", time_min=30, poll_s=0.5), [Job("held", starts_then_waits, (str(tmp_path),), tmp_path)],
        tmp_path / "jobs")))
    run.start()
    deadline = time.monotonic() + 300
    while not (tmp_path / "starts").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    job = read_record(tmp_path)["job_id"]  # submitit set the job's signal handlers before it counted its start
    for sig in ("TERM", "USR2"):
        subprocess.run(["scancel", "--signal", sig, job], check=True)
    while (tmp_path / "starts").read_text() != "2" and time.monotonic() < deadline:
        time.sleep(0.2)
    (tmp_path / "go").touch()
    run.join(300)
    assert [(o.ok, o.value, o.job_id) for o in got] == [(True, 2, job)]
    assert "this job is preempted" in Path(got[0].stderr).read_text()
