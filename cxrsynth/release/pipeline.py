"""``cxrsynth release``: the maintainers' one command.

plan (made if missing) -> train each translator unless one is given (resuming a run that stopped) ->
generate (resumable) -> package into a staging folder -> audit the staged images (``WORKDIR/audit``) ->
put the audit summary into the manifest and card -> verify -> rename into place.

Nothing finished is destroyed: a rerun resumes training and generation; an existing release folder
is only replaced with ``replace=True``, and then moved aside (``<name>.previous-<time>``), not deleted.

Concurrency and failure: the whole release holds an exclusive lock on ``--out`` (``locks.py``), so a
second release into the same place stops at once, naming the first one's pid; the final swap checks
``replace`` again just before renaming. The staging folders carry this process's pid, and a release
that fails for any reason (verification, a full disk, Ctrl-C) removes them, so it never leaves a
half-made copy filling the disk; staging folders of a killed release are removed by the next one.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ConfigError, CxrsynthError, DataNotFoundError
from ..generate import CONFIG_TASK, GenerateConfig, generate
from ..launch import Job, Launcher, launch, raise_failed
from ..locks import check_writable, hold
from ..paths import read_json
from ..translate.checkpoint import latest_checkpoint
from ..translate.train import resolve_train_config, train
from .package import ReleaseConfig, attach_audit, build
from .verify import verify


class VerifyFailed(CxrsynthError):
    """A release did not pass verification."""


def _ensure_plan(workdir: Path) -> None:
    if (workdir / "plan.json").is_file():
        return
    from ..plan import PlanConfig, make_plan
    from ..records import read_records

    if not (workdir / "splits.json").is_file():
        raise DataNotFoundError("no splits in the work folder", workdir / "splits.json",
                                "run `cxrsynth ingest` and `cxrsynth split` first")
    make_plan(read_records(workdir / "records.parquet"), read_json(workdir / "splits.json"), PlanConfig(),
              workdir / "plan.json")


def _ensure_translator(workdir: Path, task: str, train_overrides: list[str], progress: bool) -> None:
    run = workdir / "translators" / task
    report = run / "train_report.json"
    # A run that exists continues with its own saved config; overrides (e.g. max_steps) still apply.
    base = read_json(run / "config.json") if (run / "config.json").is_file() else {}
    cfg = resolve_train_config(base=base, overrides=list(train_overrides) + [f"task={task}"])
    if report.is_file() and (run / "generator.safetensors").is_file():
        rep = read_json(report)
        target = min(rep["total_steps"], cfg.max_steps) if cfg.max_steps else rep["total_steps"]
        if rep["steps"] >= target:
            return
    # any intact checkpoint, even when latest.json was lost (latest_checkpoint falls back and says so)
    resume = latest_checkpoint(run) is not None
    train(workdir, cfg, resume=resume, progress=progress)


def _refuse_existing(final: Path, replace: bool) -> None:
    if final.exists() and not replace:
        raise ConfigError("a release folder already exists", final, "pass --replace to move it aside and make a new one")


def _aside(path: Path, stamp: str) -> Path:
    """A free ``<name>.previous-<stamp>[-N]`` beside ``path``: two replaced releases in one second must
    not collide."""
    target, n = path.with_name(f"{path.name}.previous-{stamp}"), 1
    while target.exists():
        target, n = path.with_name(f"{path.name}.previous-{stamp}-{n}"), n + 1
    return target


def release(workdir: str | Path, out_dir: str | Path, cfg: ReleaseConfig = ReleaseConfig(),
            translators: dict[str, str] | None = None, train_overrides: list[str] = (),
            generate_cfg: GenerateConfig | None = None, replace: bool = False, progress: bool = False,
            audit: bool = True, audit_cfg=None, launcher: Launcher | None = None) -> dict:
    """Run the whole release; returns the manifest of the release folder put in place.

    ``launcher`` (``local``/``slurm``): the translators to train are trained as one job each (logs in
    ``out_dir/jobs/``), at the same time; the rest runs here once both are done.

    Raises :class:`~cxrsynth.errors.LockedError` when another release writes into ``out_dir``, and
    :class:`~cxrsynth.errors.DestinationError` when ``out_dir`` cannot be written, both before any work.
    """
    workdir, out_dir = Path(workdir), Path(out_dir)
    final = out_dir / cfg.name
    _refuse_existing(final, replace)
    check_writable(out_dir, "release output folder")
    check_writable(workdir, "work folder")
    with hold(out_dir, "release", f"the release folder {out_dir}"):
        _refuse_existing(final, replace)  # another release may have finished while we waited to start
        return _release_locked(workdir, out_dir, cfg, translators, train_overrides, generate_cfg, replace,
                               progress, audit, audit_cfg, launcher or Launcher())


def _release_locked(workdir: Path, out_dir: Path, cfg: ReleaseConfig, translators, train_overrides, generate_cfg,
                    replace: bool, progress: bool, audit: bool, audit_cfg, launcher: Launcher) -> dict:
    final, final_priv = out_dir / cfg.name, out_dir / f"{cfg.name}.private"
    # Under the lock no other release uses staging folders here: any left are from a killed run.
    for stale in [*out_dir.glob(f".{cfg.name}.staging*"), *out_dir.glob(f".{cfg.name}.private.staging*")]:
        shutil.rmtree(stale, ignore_errors=True)
    _ensure_plan(workdir)
    translators = dict(translators or {})
    to_train = [CONFIG_TASK[c] for c in cfg.configs if CONFIG_TASK[c] not in translators]
    serial = launcher.kind == "serial"
    outcomes = launch(launcher, [Job(f"train {task}", _ensure_translator,
                                     (workdir, task, list(train_overrides), progress and serial)) for task in to_train],
                      out_dir / "jobs", echo=functools.partial(print, file=sys.stderr))
    raise_failed(outcomes, "translator trainings", "rerun the same command: training resumes from its last checkpoint")
    gcfg = generate_cfg or GenerateConfig(configs=cfg.configs)
    if tuple(gcfg.configs) != tuple(cfg.configs):
        raise ConfigError("generate configs differ from the release configs", gcfg.configs)
    generate(workdir, gcfg, translators, progress=progress)
    pid = os.getpid()
    staging, staging_priv = out_dir / f".{cfg.name}.staging-{pid}", out_dir / f".{cfg.name}.private.staging-{pid}"
    try:
        manifest = build(workdir, staging, staging_priv, cfg, translators)
        if audit:
            from ..audit.run import AuditConfig, audit as run_audit

            run_audit(staging, workdir, audit_cfg or AuditConfig(), private=staging_priv)
            manifest = attach_audit(workdir, staging)  # the card and manifest now carry the audit
        problems = verify(staging, staging_priv)
        if problems:
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise VerifyFailed(f"the release failed verification with {len(problems)} problems: "
                               + "; ".join(problems[:5]) + more, final,
                               "nothing was put in place; fix the cause and rerun (training and images are reused)")
        _refuse_existing(final, replace)  # checked again at the swap itself
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        for src, dst in ((staging, final), (staging_priv, final_priv)):
            if dst.exists():
                os.replace(dst, _aside(dst, stamp))
            os.replace(src, dst)
    except BaseException:
        # A failed release leaves nothing half-made behind (a full disk stays full otherwise).
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(staging_priv, ignore_errors=True)
        raise
    return manifest
