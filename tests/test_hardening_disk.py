"""The machine's errors (issue 15, D1-D4): a full disk, a read-only place and an unreachable Hub are
one ``Error:`` line naming the path or endpoint, exit code 1, and writes check their place first.

On main each was a traceback; ingest and release failed only after all their work; a release on a
full disk left its staging folder behind, so the disk stayed full.

How the faults are made: real file systems, not patched calls. Tests run as root, and root ignores
``chmod``, so a read-only place is a tmpfs mounted ``ro`` and a full disk a tmpfs of 64 KiB. Mounting
needs root with mount rights; where the OS refuses, these tests skip and say why. (EACCES cannot be
made for root this way; the same code path handles it.) The unreachable Hub is a closed local port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest


from .conftest import COVID, cli_error_line as _error_line, copy_workdir


@pytest.fixture()
def tmpfs(tmp_path):
    """``make(name, size, read_only)``: a fresh tmpfs mounted at ``tmp_path/name``."""
    mounted = []

    def make(name: str, size: str = "64k", read_only: bool = False):
        path = tmp_path / name
        path.mkdir()
        opts = f"size={size}" + (",ro" if read_only else "")
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip()[:100]}); needs root with mount rights")
        mounted.append(path)
        return path

    yield make
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_release_on_a_full_disk_is_one_line_and_leaves_the_disk_as_it_was(built, tmp_path, tmpfs, capsys):
    wd = copy_workdir(built[0], tmp_path / "wd", keep_generated=True)
    out = tmpfs("full", "64k")
    line = _error_line(capsys, ["-w", str(wd), "release", "--out", str(out), "--limit", "24", "--no-audit"])
    assert line.startswith("Error: No space left on device (")
    assert str(out) in line and "free some space" in line
    assert sorted(p.name for p in out.iterdir()) == []  # no staging folder left, nor the failed command's lock file
    assert shutil.disk_usage(out).used <= 8192


@pytest.mark.parametrize("command", ["ingest", "release", "train", "benchmark", "audit", "split"])
def test_read_only_destination_fails_first_in_one_line(command, planned_workdir, tmp_path, tmpfs, capsys,
                                                       monkeypatch):
    ro = tmpfs("ro", "64k", read_only=True)
    # the stage itself must not start: the place is checked before the work
    import cxrsynth.stages.audit.run
    import cxrsynth.stages.benchmark.run
    import cxrsynth.stages.ingest
    import cxrsynth.pipeline
    import cxrsynth.stages.translate.train

    def started(*a, **k):
        raise AssertionError("the stage started before its destination was checked")

    for mod, name in [(cxrsynth.stages.ingest, "ingest"), (cxrsynth.stages.translate.train, "TrainingSet"),
                      (cxrsynth.pipeline, "_ensure_plan"), (cxrsynth.stages.benchmark.run, "run_benchmark"),
                      (cxrsynth.stages.audit.run, "audit")]:
        monkeypatch.setattr(mod, name, started)
    wd = str(planned_workdir)
    argv, place = {
        "ingest": (["-w", str(ro / "wd"), "ingest", str(COVID)], ro / "wd"),
        "release": (["-w", wd, "release", "--out", str(ro / "rel"), "--no-audit"], ro / "rel"),
        "train": (["-w", wd, "train", "--task", "normal-covid", "--out", str(ro / "run"), "--max-steps", "1"],
                  ro / "run"),
        "benchmark": (["-w", wd, "benchmark", "--out", str(ro / "bench"), "--limit", "2"], ro / "bench"),
        "audit": (["-w", wd, "audit", str(tmp_path), "--out", str(ro / "audit")], ro / "audit"),
        "split": (["-w", str(ro), "split"], ro),
    }[command]
    line = _error_line(capsys, argv)
    assert "Read-only file system" in line and f"({place})" in line


def test_full_destination_fails_first(tmp_path, tmpfs, capsys):
    full = tmpfs("full", "16k")
    with open(full / "filler", "wb") as fh:  # fill it up to the last page
        try:
            fh.write(b"x" * (64 * 1024))
        except OSError:
            pass
    line = _error_line(capsys, ["-w", str(full / "wd"), "ingest", str(COVID)])
    assert "No space left on device" in line and str(full / "wd") in line


def test_unreachable_hub_is_one_line_naming_the_endpoint(built, tmp_path):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env.update(HF_ENDPOINT=endpoint, HF_TOKEN="hf_test_SECRET_token_0123456789", HF_HOME=str(tmp_path / "hf"),
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1")
    res = subprocess.run([sys.executable, "-m", "cxrsynth.cli", "push", str(built[1]), "--repo-id", "org/x"],
                         capture_output=True, text=True, env=env, timeout=300)
    err = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(err) == 1, res.stderr[-3000:]
    assert err[0].startswith(f"Error: cannot reach {endpoint}/") and "Connection refused" in err[0]
    assert "SECRET" not in res.stdout + res.stderr
