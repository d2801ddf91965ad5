"""Launched runs (``--launcher local``: submitit's local executor, real subprocesses) against the serial
run: the same numbers, resumption from finished cells, a killed job reported and resubmitted, --status,
and the launcher's option checks. Tiny: resnet18 at 32 px, 1 epoch, 6 images a class, 2 cells."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from cxrsynth.stages.benchmark.run import BenchmarkConfig, benchmark_status, run_benchmark
from cxrsynth.core.config import resolve
from cxrsynth.core.errors import ConfigError
from cxrsynth.launch import JobsFailed, Launcher, read_record

from .conftest import cli_error_line

CFG = ["model=resnet18", "init=random", "image_size=32", "limit=6", "fit.max_epochs=1", "bootstrap=50", "seeds=2",
       "tasks=normal-covid", "arms=real", "figures=false"]
LOCAL = Launcher(kind="local", local_parallelism=2, poll_s=0.2)
CELL0, CELL1 = ("runs", "normal-covid", "real", "seed-0"), ("runs", "normal-covid", "real", "seed-1")


def numbers(out: Path) -> dict:
    """results.json less what differs between any two runs: training wall time."""
    res = json.loads((out / "results.json").read_text())
    for run in res["runs"]:
        run["fit"].pop("seconds")
    return res


def resumable_copy(serial_out: Path, dst: Path) -> Path:
    """The serial run's folder with seed-1 removed: seed-0 is finished, seed-1 is to do."""
    shutil.copytree(serial_out, dst)
    shutil.rmtree(dst.joinpath(*CELL1))
    (dst / "results.json").unlink()
    return dst


def test_local_launcher_gives_the_serial_numbers(serial_benchmark, tmp_path):
    wd, ref = serial_benchmark
    out = tmp_path / "local"
    run_benchmark(wd, out, resolve(BenchmarkConfig, overrides=CFG), launcher=LOCAL)
    assert numbers(out) == numbers(ref)
    for cell in (CELL0, CELL1):  # each cell ran as its own job, with its log in out/jobs/
        rec = read_record(out.joinpath(*cell))
        assert rec["state"] == "done" and rec["launcher"] == "local" and Path(rec["stderr"]).parent == out / "jobs"
    assert (out / "report.html").is_file() and (out / "tables.md").is_file()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def test_resume_from_finished_cells_and_rerun_a_killed_job_alone(serial_benchmark, tmp_path, capsys):
    """seed-0 is finished (copied from the serial run), seed-1 is launched and its job is killed: the
    failure names the cell and its log, --status agrees, and rerunning the same call runs seed-1 alone."""
    from cxrsynth.cli import main

    wd, ref = serial_benchmark
    out = resumable_copy(ref, tmp_path / "killed")
    cfg = resolve(BenchmarkConfig, overrides=CFG)
    done = out.joinpath(*CELL0, "result.json")
    stamp = done.stat().st_mtime_ns
    st = benchmark_status(out)
    assert [c["state"] for c in st["cells"]] == ["done", "missing"] and not st["results"]
    caught: list[BaseException] = []

    def launched():
        try:
            run_benchmark(wd, out, cfg, launcher=LOCAL)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            caught.append(exc)

    thread = threading.Thread(target=launched)
    thread.start()
    killed, deadline = [], time.monotonic() + 120
    while not killed and time.monotonic() < deadline:  # the job's controller starts the task process: kill it
        rec = read_record(out.joinpath(*CELL1)) or {}
        for child in _children(int(rec["job_id"])) if rec.get("job_id") else []:
            os.kill(child, signal.SIGKILL)
            killed.append(child)
        time.sleep(0.02)
    thread.join(300)
    assert killed and len(caught) == 1 and isinstance(caught[0], JobsFailed), caught
    line = caught[0].one_line()
    assert "1 of 1 benchmark cells failed" in line and "normal-covid/real/seed-1" in line
    assert "ended without a result" in line and "rerun the same command" in line
    log = Path(read_record(out.joinpath(*CELL1))["stderr"])
    assert f"log {log}" in line and log.parent == out / "jobs"
    assert not (out / "results.json").exists()  # nothing aggregated from a partial grid
    st = benchmark_status(out)
    assert [(c["state"], c["log"]) for c in st["cells"]] == [("done", None), ("failed", str(log))]
    # the CLI's status, for people and for machines
    main(["benchmark", "--status", str(out)])
    text = capsys.readouterr().out
    assert "failed   normal-covid/real/seed-1" in text and f"log {log}" in text and "1 done, 0 running, 1 failed" in text
    main(["benchmark", "--status", str(out), "--json"])
    assert json.loads(capsys.readouterr().out)["counts"] == {"done": 1, "running": 0, "failed": 1, "missing": 0}
    # rerunning the same command runs the failed cell alone and completes the grid
    run_benchmark(wd, out, cfg, launcher=LOCAL)
    assert done.stat().st_mtime_ns == stamp  # the finished cell: never submitted, not even rewritten
    assert read_record(out.joinpath(*CELL0)) is None and read_record(out.joinpath(*CELL1))["state"] == "done"
    assert numbers(out) == numbers(ref)
    assert benchmark_status(out)["counts"] == {"done": 2, "running": 0, "failed": 0, "missing": 0}


def test_status_sees_a_held_cell_as_running(serial_benchmark, tmp_path):
    from cxrsynth.core.locks import hold

    out = resumable_copy(serial_benchmark[1], tmp_path / "running")
    with hold(out.joinpath(*CELL1), "cell", "a cell"):
        st = benchmark_status(out)
    cell = st["cells"][1]
    assert cell["state"] == "running" and f"pid {os.getpid()}" in cell["detail"]
    assert benchmark_status(out)["cells"][1]["state"] == "missing"


@pytest.mark.no_data
def test_launcher_options_are_checked(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"--slurm-partition, --slurm-time are only for --launcher slurm \(--launcher local\); pass --launcher slurm, or leave them out"):
        Launcher(kind="local", partition="gpu", time_min=30)
    with pytest.raises(ConfigError, match=r"--local-parallelism is only for --launcher local"):
        Launcher(kind="slurm", local_parallelism=2)
    with pytest.raises(ConfigError, match=r"--slurm-option takes KEY=VALUE .*\(=x\)"):
        Launcher(kind="slurm", options=("=x",))
    with pytest.raises(ConfigError, match="slurm_array_parallelism|array_parallelism"):
        Launcher(kind="slurm", array_parallelism=0)
    with pytest.raises(ConfigError, match="unknown launcher"):
        Launcher(kind="pbs")
    slurm = Launcher(kind="slurm", partition="gpu", gpus_per_job=1, cpus_per_job=8, time_min=30, array_parallelism=4,
                     options=("account=proj42", "exclusive"))
    params = slurm.slurm_parameters()
    assert params == {"partition": "gpu", "gpus_per_node": 1, "cpus_per_task": 8, "time": 30, "array_parallelism": 4,
                      "additional_parameters": {"account": "proj42", "exclusive": True}}
    from submitit.slurm.slurm import _make_sbatch_string  # what sbatch would be given, without a cluster

    sbatch = _make_sbatch_string(command="true", folder=str(tmp_path), map_count=10, **params)
    for flag in ("--partition=gpu", "--gpus-per-node=1", "--cpus-per-task=8", "--time=30", "--array=0-9%4",
                 "--account=proj42", "#SBATCH --exclusive"):
        assert flag in sbatch
    if not shutil.which("sbatch"):
        with pytest.raises(ConfigError, match="needs SLURM's sbatch and srun"):
            slurm.executor(tmp_path / "jobs")
    # the YAML section; the command line wins
    (tmp_path / "l.yaml").write_text("slurm:\n  partition: gpu\n  time_min: 90\n  options: {account: proj42}\n"
                                     "local:\n  local_parallelism: 3\n")
    got = Launcher.from_file(tmp_path / "l.yaml", partition="debug")
    assert (got.kind, got.partition, got.time_min, got.options) == ("slurm", "debug", 90, ("account=proj42",))
    assert Launcher.from_file(tmp_path / "l.yaml", kind="local") == Launcher(kind="local", local_parallelism=3)
    (tmp_path / "bad.yaml").write_text("slurm:\n  partiton: gpu\n")
    with pytest.raises(ConfigError, match="unknown keys in the `slurm:` section"):
        Launcher.from_file(tmp_path / "bad.yaml")
    # the command line: one clear line, before any work
    line = cli_error_line(capsys, ["-w", str(tmp_path), "benchmark", "--launcher", "local", "--slurm-partition", "gpu",
                                   "--arm", "real"])
    assert "--slurm-partition is only for --launcher slurm" in line
    line = cli_error_line(capsys, ["-w", str(tmp_path), "generate", "--slurm-gpus-per-job", "1"])
    assert "--slurm-gpus-per-job is only for --launcher slurm (--launcher serial)" in line
    line = cli_error_line(capsys, ["-w", str(tmp_path), "release", "--launcher", "slurm", "--local-parallelism", "2"])
    assert "--local-parallelism is only for --launcher local" in line


def test_generate_as_an_array_over_the_shards(trained, tmp_path):
    """Job i of N runs rank i: the same images as one serial run (same id secret), one job per shard."""
    from cxrsynth.artifacts import GeneratedSet
    from cxrsynth.stages.generate import GenerateConfig
    from cxrsynth.pipeline import generate_in, generate_launched

    from .conftest import copy_workdir

    one, many = copy_workdir(trained, tmp_path / "one"), copy_workdir(trained, tmp_path / "many")
    cfg = resolve(GenerateConfig, overrides=["limit=10", "shard_size=5", "configs=g_pc", "workers=0"])
    generate_in(one, cfg)
    (many / "generated" / "private").mkdir(parents=True)
    (many / "generated" / "private" / "id_secret").write_text((one / "generated/private/id_secret").read_text())
    rep = generate_launched(many, cfg, None, None, LOCAL)
    s = rep["configs"]["g_pc"]
    assert rep["world"] == 2 and s["generated"] == 10 and s["shards_mine"] == 2
    assert sorted(p.name for p in (many / "generated").glob("generate_report.rank*.json")) == [
        "generate_report.rank0.json", "generate_report.rank1.json"]
    a = {p["id"]: p["png_sha256"] for p in GeneratedSet(one / "generated").provenance("g_pc")}
    assert {p["id"]: p["png_sha256"] for p in GeneratedSet(many / "generated").provenance("g_pc")} == a and len(a) == 10
    again = generate_launched(many, cfg, None, 2, LOCAL)  # a rerun keeps every finished shard
    assert again["configs"]["g_pc"]["generated"] == 0 and again["configs"]["g_pc"]["shards_skipped_done"] == 2


def test_release_trains_both_translators_as_jobs(planned_workdir, tmp_path):
    from cxrsynth.pipeline import release, resolve_pipeline

    from .conftest import TINY, copy_workdir

    wd = copy_workdir(planned_workdir, tmp_path / "wd")
    cfg = resolve_pipeline(overrides=[f"train.{o}" for o in TINY + ["max_steps=2"]]
                           + ["generate.limit=4", "generate.shard_size=4", "generate.workers=0"])
    manifest = release(wd, wd / "release", cfg, audit=False, launcher=LOCAL)
    assert manifest["counts"]["g_nc"] == 4 and manifest["counts"]["g_pc"] == 4
    logs = sorted((wd / "release" / "jobs").glob("*_0_log.err"))
    assert len(logs) == 2  # one job per translator
    for task in ("normal-covid", "pneumonia-covid"):
        assert json.loads((wd / "translators" / task / "train_report.json").read_text())["steps"] == 2


@pytest.mark.no_data
def test_scheduler_answers_are_read_per_array_task():
    """sacct -X -n -P -o JobID,State and scontrol -o show job, as SLURM 22.05 writes them (the scontrol
    lines abridged from the local cluster of scripts/slurm_local.sh): one state per job or array task."""
    from cxrsynth.launch import ENDED, _parse_sacct, _parse_scontrol, _task_ids

    assert _task_ids("3") == ["3"] and _task_ids("2-4%2") == ["2", "3", "4"] and _task_ids("[5,7-8]") == ["5", "7", "8"]
    sacct = "12_0|COMPLETED\n12_1|CANCELLED by 0\n12_1.batch|CANCELLED\n12_[2-3%2]|PENDING\n20|TIMEOUT\n"
    assert _parse_sacct(sacct) == {"12_0": "COMPLETED", "12_1": "CANCELLED", "12_2": "PENDING", "12_3": "PENDING",
                                   "20": "TIMEOUT"}
    scontrol = ("JobId=2 ArrayJobId=2 ArrayTaskId=2-4%2 ArrayTaskThrottle=2 JobName=wrap JobState=PENDING Reason=JobArrayTaskLimit\n"
                "JobId=4 ArrayJobId=2 ArrayTaskId=1 JobName=wrap JobState=RUNNING Reason=None\n"
                "JobId=20 JobName=submitit UserId=root(0) JobState=TIMEOUT Reason=TimeLimit\n")
    assert _parse_scontrol(scontrol) == {"2_2": "PENDING", "2_3": "PENDING", "2_4": "PENDING", "2_1": "RUNNING",
                                         "20": "TIMEOUT"}
    assert {"TIMEOUT", "CANCELLED", "OUT_OF_MEMORY"} <= ENDED and not {"PENDING", "RUNNING", "PREEMPTED"} & ENDED


@pytest.mark.no_data
def test_results_are_looked_for_often_at_first_then_every_poll_s():
    """A job that ends within a second is seen within a tenth of one, not ``poll_s`` later; after a minute,
    every ``poll_s`` (and never more often than ``poll_s`` asks for)."""
    from cxrsynth.launch import POLL_MIN_S, _poll_interval

    assert _poll_interval(2.0, 0.0) == POLL_MIN_S and _poll_interval(2.0, 5.0) == 0.5
    assert _poll_interval(2.0, 60.0) == 2.0 and _poll_interval(0.05, 0.0) == 0.05
