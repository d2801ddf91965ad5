"""``cxrsynth release``: the maintainers' one command.

plan (made if missing) -> train each translator unless one is given (resuming a run that stopped) ->
generate (resumable) -> package into a staging folder -> audit the staged images (``WORKDIR/audit``) ->
put the audit summary into the manifest and card -> verify -> rename into place.

Nothing finished is destroyed: a rerun resumes training and generation; an existing release folder
is only replaced with ``replace=True``, and then moved aside (``<name>.previous-<time>``), not deleted;
a release that fails verification stays in its staging folder for inspection.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ConfigError, CxrsynthError, DataNotFoundError
from ..generate import CONFIG_TASK, GenerateConfig, generate
from ..paths import read_json
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
    resume = (run / "checkpoints" / "latest.json").is_file()
    train(workdir, cfg, resume=resume, progress=progress)


def release(workdir: str | Path, out_dir: str | Path, cfg: ReleaseConfig = ReleaseConfig(),
            translators: dict[str, str] | None = None, train_overrides: list[str] = (),
            generate_cfg: GenerateConfig | None = None, replace: bool = False, progress: bool = False,
            audit: bool = True, audit_cfg=None) -> dict:
    """Run the whole release; returns the manifest of the release folder put in place."""
    workdir, out_dir = Path(workdir), Path(out_dir)
    final, final_priv = out_dir / cfg.name, out_dir / f"{cfg.name}.private"
    if final.exists() and not replace:
        raise ConfigError("a release folder already exists", final, "pass --replace to move it aside and make a new one")
    _ensure_plan(workdir)
    translators = dict(translators or {})
    for config in cfg.configs:
        task = CONFIG_TASK[config]
        if task not in translators:
            _ensure_translator(workdir, task, list(train_overrides), progress)
    gcfg = generate_cfg or GenerateConfig(configs=cfg.configs)
    if tuple(gcfg.configs) != tuple(cfg.configs):
        raise ConfigError("generate configs differ from the release configs", gcfg.configs)
    generate(workdir, gcfg, translators, progress=progress)
    staging, staging_priv = out_dir / f".{cfg.name}.staging", out_dir / f".{cfg.name}.private.staging"
    shutil.rmtree(staging_priv, ignore_errors=True)
    manifest = build(workdir, staging, staging_priv, cfg)
    if audit:
        from ..audit.run import AuditConfig, audit as run_audit

        run_audit(staging, workdir, audit_cfg or AuditConfig(), private=staging_priv)
        manifest = attach_audit(workdir, staging)  # the card and manifest now carry the audit
    problems = verify(staging, staging_priv)
    if problems:
        raise VerifyFailed(f"the release failed verification with {len(problems)} problems: " + "; ".join(problems[:5]),
                           staging, "the staging folder is kept for inspection")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    for src, dst in ((staging, final), (staging_priv, final_priv)):
        if dst.exists():
            os.replace(dst, dst.with_name(f"{dst.name}.previous-{stamp}"))
        os.replace(src, dst)
    return manifest
