"""Where independent jobs run: in this process (``serial``, the default), as local subprocesses
(``local``) or as a SLURM job array (``slurm``), through submitit.

Why: the rigorous benchmark is 150 classifier trainings and a release is 2 translator trainings plus
tens of thousands of generations; one process does them one after another. submitit submits plain
Python functions to SLURM and ships a local executor that runs each job as a real subprocess, so the
same code path is tested here without a cluster. Hand-written schedulers are not the answer.

The caller (benchmark, generate, release) makes the work resumable itself (a finished cell or shard is
checked and skipped), so a failed job is simply run again by running the same command again:
:func:`launch` does not retry, it reports. For each job it writes ``job.json`` into the job's own
state folder (when given): the job id, its log files, and ``submitted``, ``done`` or ``failed`` with
the error's last line, so that ``--status`` can say where things stand without asking the scheduler.

Pickles: submitit pickles each job's function and arguments, and the job's return value, into the log
folder that the caller places inside its own output folder (``<out>/jobs/``). Only those pickles are
loaded, by the jobs and by this process; they are written by this process or by the jobs it launched,
never taken from elsewhere.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from .core.config import at_least, positive
from .core.errors import ConfigError, JobsFailed
from .core.extras import require
from .core.paths import read_json, write_json

KINDS = ("serial", "local", "slurm")
# Launcher field -> the command-line option that sets it (named in errors).
SLURM_OPTIONS = {"partition": "--slurm-partition", "gpus_per_job": "--slurm-gpus-per-job",
                 "cpus_per_job": "--slurm-cpus-per-job", "time_min": "--slurm-time",
                 "array_parallelism": "--slurm-array-parallelism", "options": "--slurm-option",
                 "setup": "--slurm-setup"}
LOCAL_OPTIONS = {"local_parallelism": "--local-parallelism"}
DEFAULT_SLURM_TIME_MIN = 240
LOCAL_TIME_MIN = 7 * 24 * 60  # a local job is never cut short by a time limit of ours
RESULT_GRACE_S = 15  # as submitit waits for a result file that SLURM's accounting announced
POLL_MIN_S = 0.1  # result files looked for at most this often, in a launch's first seconds
SCHEDULER_POLL_MAX_S = 60  # sacct/scontrol at most this seldom: a tenth of the time since submission, from poll_s


@dataclass(frozen=True)
class Launcher:
    """How jobs are run. ``serial`` runs them one after another in this process (exceptions propagate,
    as they always did); ``local`` starts each as a subprocess, at most ``local_parallelism`` at once;
    ``slurm`` submits them as one array (``array_parallelism``: at most that many running at once).

    ``options`` are extra sbatch options as ``KEY=VALUE`` (``KEY`` alone for a flag, e.g.
    ``exclusive``), e.g. ``account=proj42`` or ``qos=high`` or ``mem=32G``. ``setup`` are shell lines
    the job script runs before the job's command (``module load cuda``, ``source env/bin/activate``).
    """

    kind: Literal["serial", "local", "slurm"] = "serial"
    partition: str | None = None
    gpus_per_job: int | None = None
    cpus_per_job: int | None = None
    time_min: int | None = None
    array_parallelism: int | None = None
    options: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    local_parallelism: int | None = None
    poll_s: float = 2.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError("unknown launcher", self.kind, f"use one of {', '.join(KINDS)}")
        for names, kind in ((SLURM_OPTIONS, "slurm"), (LOCAL_OPTIONS, "local")):
            given = [opt for name, opt in names.items() if getattr(self, name) not in (None, ())]
            if given and self.kind != kind:
                raise ConfigError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} only for --launcher {kind}",
                                  f"--launcher {self.kind}", f"pass --launcher {kind}, or leave {'it' if len(given) == 1 else 'them'} out")
        for name in ("gpus_per_job",):
            if getattr(self, name) is not None:
                at_least(name, getattr(self, name), 0)
        for name in ("cpus_per_job", "time_min", "array_parallelism", "local_parallelism"):
            if getattr(self, name) is not None:
                at_least(name, getattr(self, name), 1)
        positive("poll_s", self.poll_s)
        self.sbatch_options()  # KEY=VALUE checked now, not at submission

    @classmethod
    def from_file(cls, path: str | Path, **given) -> Launcher:
        """A launcher from a YAML (or JSON) file, with the options given on the command line (``given``,
        ``None`` = not given) taking precedence.

        The file holds ``launcher: KIND`` (optional) and a section per kind, ``slurm:`` (``partition``,
        ``gpus_per_job``, ``cpus_per_job``, ``time_min``, ``array_parallelism``, ``options``: a mapping
        or a list of ``KEY=VALUE``, and ``setup``: a list of shell lines) and/or ``local:``
        (``local_parallelism``); only the chosen kind's section applies, so one file serves both. The
        kind: ``given``, else the file's, else ``slurm`` when the file has that section.
        """
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the launcher config: {exc}", path) from exc
        if not isinstance(data, dict) or set(data) - {"slurm", "local", "launcher"}:
            raise ConfigError("a launcher config holds `launcher: KIND` and `slurm:` and/or `local:` sections",
                              path, "e.g. slurm: {partition: gpu, gpus_per_job: 1, time_min: 120}")
        kind = given.pop("kind", None) or data.get("launcher") or ("slurm" if data.get("slurm") else "serial")
        known = {"slurm": set(SLURM_OPTIONS), "local": set(LOCAL_OPTIONS)}
        for section, names in known.items():
            sec = data.get(section) or {}
            if not isinstance(sec, dict) or set(sec) - names:
                raise ConfigError(f"unknown keys in the `{section}:` section", path, f"known: {', '.join(sorted(names))}")
        values = dict(data.get(kind) or {})
        opts = values.get("options")
        if isinstance(opts, dict):
            values["options"] = tuple(k if v is True else f"{k}={v}" for k, v in opts.items())
        elif opts is not None:
            values["options"] = tuple(str(o) for o in opts)
        if values.get("setup") is not None:
            setup = values["setup"]
            values["setup"] = (setup,) if isinstance(setup, str) else tuple(str(x) for x in setup)
        values |= {k: v for k, v in given.items() if v not in (None, ())}
        return cls(kind=kind, **values)

    def sbatch_options(self) -> dict[str, Any]:
        """``options`` as submitit's ``additional_parameters`` (``KEY`` alone is a flag)."""
        out: dict[str, Any] = {}
        for item in self.options:
            key, sep, value = item.partition("=")
            key = key.strip().lstrip("-")
            if not key or (sep and not value.strip()):
                raise ConfigError("--slurm-option takes KEY=VALUE (or KEY alone for a flag)", item,
                                  "e.g. --slurm-option account=proj42 --slurm-option exclusive")
            out[key] = value.strip() if sep else True
        return out

    def slurm_parameters(self) -> dict[str, Any]:
        """What :class:`submitit.SlurmExecutor` is given (its ``update_parameters`` names)."""
        params = {"partition": self.partition, "gpus_per_node": self.gpus_per_job, "cpus_per_task": self.cpus_per_job,
                  "time": self.time_min or DEFAULT_SLURM_TIME_MIN, "array_parallelism": self.array_parallelism,
                  "additional_parameters": self.sbatch_options() or None, "setup": list(self.setup) or None}
        return {k: v for k, v in params.items() if v is not None}

    def executor(self, folder: Path):
        """A submitit executor writing its pickles and logs into ``folder``."""
        submitit = require("submitit", f"--launcher {self.kind}", "use --launcher serial")

        folder.mkdir(parents=True, exist_ok=True)
        if self.kind == "local":
            ex = submitit.LocalExecutor(folder)
            ex.update_parameters(timeout_min=self.time_min or LOCAL_TIME_MIN)
            return ex
        if self.kind == "slurm":
            if shutil.which("srun") is None or shutil.which("sbatch") is None:
                raise ConfigError("--launcher slurm needs SLURM's sbatch and srun on PATH", "sbatch/srun not found",
                                  "run on the cluster's login node, or use --launcher local")
            # A timed-out job is not requeued (it would time out again): it fails, named with its state.
            ex = submitit.SlurmExecutor(folder, max_num_timeout=0)
            ex.update_parameters(**self.slurm_parameters())
            return ex
        raise ConfigError("the serial launcher has no executor", self.kind)


@dataclass(frozen=True)
class Job:
    """One unit of work: ``fn(*args)`` must be picklable (a module-level function and plain data).
    ``state_dir``: where ``job.json`` records this job for ``--status`` (none: not recorded)."""

    name: str
    fn: Callable[..., Any]
    args: tuple = ()
    state_dir: Path | None = None


@dataclass
class Outcome:
    """What became of one job: ``ok`` with the function's return ``value``, or not, with the error's
    last line and the job's log files."""

    name: str
    ok: bool
    value: Any = None
    job_id: str | None = None
    stdout: Path | None = None
    stderr: Path | None = None
    error: str | None = None

    def line(self) -> str:
        if self.ok:
            return f"{self.name}: done" + (f" (job {self.job_id}, log {self.stderr})" if self.job_id else "")
        return f"{self.name}: FAILED (job {self.job_id}): {self.error}; log {self.stderr}"


JOB_RECORD = "job.json"


def record(state_dir: Path | None, **info) -> None:
    """Update ``<state_dir>/job.json`` (written atomically, read by ``--status``)."""
    if state_dir is None:
        return
    path = Path(state_dir) / JOB_RECORD
    old = read_json(path) if path.is_file() else {}
    write_json(path, old | {k: (str(v) if isinstance(v, Path) else v) for k, v in info.items()})


def read_record(state_dir: Path) -> dict | None:
    path = Path(state_dir) / JOB_RECORD
    try:
        return read_json(path) if path.is_file() else None
    except (OSError, ValueError):
        return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _last_line(text: str | None) -> str:
    lines = [x.strip() for x in (text or "").splitlines() if x.strip() and not set(x.strip()) <= {"-"}]
    return lines[-1][:300] if lines else ""


def _finish(job, spec: Job, kind: str, slurm_state: str | None = None, time_min: int | None = None) -> Outcome:
    """The outcome of a finished submitit job. A local job writes its result before its process ends;
    a SLURM job that SLURM says completed or failed may have its result reach this node a little later
    (a shared file system), so it is waited for, briefly. A job without one was ended from outside: for
    SLURM, its state says how (TIMEOUT, CANCELLED, OUT_OF_MEMORY, NODE_FAIL ...), and it is named."""
    base = {"name": spec.name, "job_id": str(job.job_id), "stdout": job.paths.stdout, "stderr": job.paths.stderr}
    wait = kind == "slurm" and slurm_state in (None, "COMPLETED", "FAILED")
    deadline = time.monotonic() + (RESULT_GRACE_S if wait else 0)
    while not job.paths.result_pickle.exists() and time.monotonic() < deadline:
        time.sleep(1)
    if job.paths.result_pickle.exists():
        exc = job.exception()
        if exc is None:
            out = Outcome(ok=True, value=job.result(), **base)
            record(spec.state_dir, state="done", finished=_now(), scheduler_state=slurm_state)
            return out
        error = _last_line(str(exc).split("----------------------")[1] if "------" in str(exc) else str(exc))
        if kind == "slurm" and "timed-out" in error:  # submitit stopped it when SLURM signalled the time limit
            error = f"timed out: the job reached its time limit ({time_min} min, --slurm-time) and stopped " \
                    f"(SLURM state {slurm_state or 'unknown'}): {error}"
    else:
        tail = job.paths.stderr.read_text(errors="replace") if job.paths.stderr.is_file() else ""
        error = _ended_without_result(kind, slurm_state or (None if kind == "slurm" else job.state), time_min)
        if _last_line(tail):
            error += f", last log line: {_last_line(tail)}"
    record(spec.state_dir, state="failed", finished=_now(), error=error, scheduler_state=slurm_state)
    return Outcome(ok=False, error=error, **base)


def _ended_without_result(kind: str, state: str | None, time_min: int | None) -> str:
    """Why a job has no result, in words, from the scheduler's state when there is one."""
    if kind != "slurm":
        return f"the job ended without a result (state {state}: killed, out of time or out of memory?)"
    if state == "TIMEOUT":
        limit = f" ({time_min} min, --slurm-time)" if time_min else ""
        return f"timed out: SLURM ended the job at its time limit{limit}, state TIMEOUT"
    why = {"CANCELLED": "cancelled (scancel, or an administrator)",
           "OUT_OF_MEMORY": "out of memory (--slurm-option mem=...)", "NODE_FAIL": "its node failed",
           "PREEMPTED": "preempted and not requeued"}.get(state or "", "ended without a result")
    return f"{why}: SLURM state {state or 'unknown (no longer known to SLURM)'}"


class Requeueable:
    """A launched job's function, made checkpointable for submitit: when SLURM preempts the job,
    submitit calls :meth:`checkpoint` and requeues the same call, which then starts again. Every job
    launched here is resumable (a benchmark cell is redone, a generation rank keeps its finished
    shards, a translator resumes from its newest checkpoint), so nothing else is saved. A job past its
    time limit is not requeued (``max_num_timeout=0``): it would run out of time again."""

    def __init__(self, fn: Callable[..., Any], args: tuple):
        self.fn, self.args = fn, args

    def __call__(self):
        return self.fn(*self.args)

    def checkpoint(self):
        import submitit

        return submitit.helpers.DelayedSubmission(self)


# SLURM states after which a job never runs again (PREEMPTED is not one: a requeued job runs again).
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE",
         "SPECIAL_EXIT", "REVOKED"}


def _task_ids(spec: str) -> list[str]:
    """Array task ids from SLURM's notation: ``3``, ``2-4%2``, ``[5,7-8]`` -> each id."""
    out: list[str] = []
    for part in spec.strip("[]").split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit():
            out += [str(i) for i in range(int(lo), int(hi or lo) + 1)]
    return out


def _parse_sacct(text: str) -> dict[str, str]:
    states: dict[str, str] = {}
    for line in text.splitlines():
        job_id, _, state = line.partition("|")
        base, sep, tasks = job_id.partition("_")
        if "." in job_id or not state:
            continue
        for key in ([f"{base}_{t}" for t in _task_ids(tasks)] if sep else [base]):
            states[key] = state.split()[0]  # "CANCELLED by 0" -> CANCELLED
    return states


def _parse_scontrol(text: str) -> dict[str, str]:
    states: dict[str, str] = {}
    for line in text.splitlines():
        field = dict(re.findall(r"\b(JobId|ArrayJobId|ArrayTaskId|JobState)=(\S+)", line))
        if "JobState" not in field:
            continue
        keys = ([f"{field['ArrayJobId']}_{t}" for t in _task_ids(field["ArrayTaskId"])]
                if "ArrayTaskId" in field else [field.get("JobId", "")])
        states.update(dict.fromkeys(keys, field["JobState"]))
    return states


def scheduler_states(job_ids: list[str]) -> tuple[str, dict[str, str]]:
    """SLURM's state of each job id (``123`` or array task ``123_4``), and where it came from:
    ``sacct`` (the accounting database: every job, also long after it ended) when it answers, else
    ``scontrol`` (jobs that ended within the controller's MinJobAge, default 5 min), else ``files``
    (no scheduler reachable: no states). A job neither knows is left out."""
    bases = sorted({str(j).split("_")[0] for j in job_ids if j})
    if not bases:
        return "files", {}
    why = "sacct not on PATH"
    if shutil.which("sacct"):
        got = _run(["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", ",".join(bases)])
        if isinstance(got, str):
            return "sacct", _parse_sacct(got)
        why = got[1]
    if shutil.which("scontrol"):
        states: dict[str, str] = {}
        answered = False
        for base in bases:
            got = _run(["scontrol", "-o", "show", "job", base])
            if isinstance(got, str):
                answered = True
                states |= _parse_scontrol(got)
            elif "Invalid job id" in got[1]:
                answered = True  # the controller answered: it has forgotten this job
        if answered:
            return f"scontrol (sacct: {why})", states
    return f"files (no scheduler answered; sacct: {why})", {}


def _run(cmd: list[str]) -> str | tuple[int, str]:
    """stdout of ``cmd``, or (exit status, its last error line)."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return (-1, str(exc))
    return p.stdout if p.returncode == 0 else (p.returncode, _last_line(p.stderr) or f"exit status {p.returncode}")


def scheduler_view(cells: list[dict]) -> str:
    """``--status``: correct what the files say about each unfinished SLURM job (``cells``: dicts with
    ``state``, ``job_id``, ``launcher``, ``detail``, updated in place, ``scheduler_state`` added) with SLURM's own
    state: a job SLURM ended without a result is failed (TIMEOUT, CANCELLED ...) even when the command
    that launched it was killed before it could write so; a pending or running one is running. Returns
    where the states came from (see :func:`scheduler_states`), ``files`` when no job was SLURM's."""
    ids = [str(c["job_id"]) for c in cells if c["state"] != "done" and c.get("launcher") == "slurm" and c.get("job_id")]
    if not ids:
        return "files"
    source, states = scheduler_states(ids)
    for c in cells:
        state = states.get(str(c.get("job_id"))) if c["state"] != "done" and c.get("launcher") == "slurm" else None
        if state is None:
            continue
        c["scheduler_state"] = state
        if state in ENDED:
            if c["state"] != "failed" or not c["detail"]:
                c["detail"] = _ended_without_result("slurm", state, None)
            c["state"] = "failed"
        else:
            c["state"], c["detail"] = "running", f"SLURM job {c['job_id']}: {state}"
    return source


def launch(launcher: Launcher, jobs: list[Job], log_dir: Path, echo: Callable[[str], None] | None = None) -> list[Outcome]:
    """Run ``jobs`` as ``launcher`` says, wait for all, and return their outcomes in order.

    ``serial``: each runs here, in order; an exception propagates at once (today's behaviour).
    ``local``/``slurm``: submitit jobs with pickles and logs in ``log_dir``; nothing is raised for a
    failed job, its :class:`Outcome` says what failed and where its log is (see :func:`raise_failed`).
    A SLURM job is finished when its result file is there (looked for every ``poll_s``, more often in the
    first seconds: :func:`_poll_interval`) or SLURM says it
    ended (:func:`scheduler_states`, asked every ``poll_s`` at first and then more seldom, a tenth of the
    time since submission, at most every minute: a cancelled or timed-out job is seen soon, and a long
    array does not hammer the controller or the accounting database).
    Interrupting this process leaves submitted jobs running (a SLURM array stays queued): rerunning
    the command skips what they finished.
    """
    echo = echo or (lambda _: None)
    if launcher.kind == "serial":
        return [Outcome(name=j.name, ok=True, value=j.fn(*j.args)) for j in jobs]
    if not jobs:
        return []
    ex = launcher.executor(Path(log_dir))
    by_spec: dict[int, Any] = {}
    outcomes: dict[int, Outcome] = {}
    pending = list(range(len(jobs)))
    for j in jobs:  # --status: waiting for a slot while this process lives
        record(j.state_dir, state="queued", launcher=launcher.kind, job_id=None, launcher_pid=os.getpid(),
               host=socket.gethostname(), error=None, finished=None, scheduler_state=None)

    def submitted(i: int, job) -> None:
        by_spec[i] = job
        record(jobs[i].state_dir, state="submitted", launcher=launcher.kind, job_id=str(job.job_id),
               stdout=job.paths.stdout, stderr=job.paths.stderr, submitted=_now())
        echo(f"{jobs[i].name}: submitted as job {job.job_id} (log {job.paths.stderr})")

    if launcher.kind == "slurm":  # one array; SLURM itself holds back all but array_parallelism
        for i, job in zip(pending, ex.submit_array([Requeueable(j.fn, j.args) for j in jobs])):
            submitted(i, job)
        pending = []
    at_once = launcher.local_parallelism or max(1, min(4, os.cpu_count() or 1))
    began, asked = time.monotonic(), float("-inf")  # the first poll asks SLURM
    while pending or len(outcomes) < len(jobs):
        while pending and len(by_spec) - len(outcomes) < at_once:
            i = pending.pop(0)
            submitted(i, ex.submit(jobs[i].fn, *jobs[i].args))
        open_ = [i for i in by_spec if i not in outcomes]
        states = {}
        now = time.monotonic()
        if launcher.kind == "slurm" and now - asked >= min(SCHEDULER_POLL_MAX_S, max(launcher.poll_s, (now - began) / 10)):
            states, asked = scheduler_states([str(by_spec[i].job_id) for i in open_])[1], now
        for i in open_:
            job, state = by_spec[i], states.get(str(by_spec[i].job_id))
            if launcher.kind == "slurm":
                ended = job.paths.result_pickle.exists() or state in ENDED
            else:
                ended = job.done()
            if ended:
                outcomes[i] = _finish(job, jobs[i], launcher.kind, state, launcher.time_min or DEFAULT_SLURM_TIME_MIN)
                echo(outcomes[i].line())
        if len(outcomes) < len(jobs):
            time.sleep(_poll_interval(launcher.poll_s, time.monotonic() - began))
    return [outcomes[i] for i in range(len(jobs))]


def _poll_interval(poll_s: float, elapsed_s: float) -> float:
    """How long to wait before looking for results again: a tenth of the time since submission, from
    ``POLL_MIN_S`` up to ``poll_s``. A job that ends within seconds (a cached cell, a failed start) is
    seen at once instead of up to ``poll_s`` later; a long one is looked for every ``poll_s``."""
    return min(poll_s, max(POLL_MIN_S, elapsed_s / 10))


def raise_failed(outcomes: list[Outcome], what: str, rerun: str) -> None:
    """Raise :class:`JobsFailed` naming every failed job and its log, when any failed."""
    bad = [o for o in outcomes if not o.ok]
    if bad:
        shown = "; ".join(f"{o.name}: {o.error} (log {o.stderr})" for o in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise JobsFailed(f"{len(bad)} of {len(outcomes)} {what} failed", shown + more, rerun)


def launcher_from_cli(kind: str | None, config_file: str | None, **given) -> Launcher:
    """The launcher the command-line options describe (``given``: field -> value, ``None`` = not given)."""
    if config_file:
        return Launcher.from_file(config_file, **({"kind": kind} if kind else {}), **given)
    return Launcher(kind=kind or "serial", **{k: v for k, v in given.items() if v not in (None, ())})
