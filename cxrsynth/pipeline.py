"""``cxrsynth release``: the maintainers' one command, a straight line of file-in/file-out stages.

    plan (made if missing)         records.parquet, splits.json        -> plan.json
    train each missing translator  plan.json, records.parquet          -> translators/<task>/ (resumed)
    generate                       plan.json, translators              -> generated/<config>/ (resumable)
    package                        generated/, plan.json, records      -> <out>/.<name>.staging-<pid>/
    audit                          the staged release + its mapping    -> WORKDIR/audit/ (stamped)
    describe                       manifest + that audit               -> card, croissant.json, SHA256SUMS
    verify                         the staged release                  -> problems, or none
    promote                        staging                             -> <out>/<name> (the old one moved aside)

The stages are the library's own functions; this module only orders them, so it sits above
``release/`` (packaging) rather than inside it. The stages take artefacts, not a work folder:
``generate(plan, records, translators, cfg, rt) -> GeneratedSet``, ``package(generated, ...) ->
ReleaseFolder`` and ``audit(release, split_data, cfg, rt, out_dir, translators) -> AuditResult``;
:func:`generate_in`, :func:`package_in`, :func:`audit_in` and :func:`benchmark_in` read the work
folder's files for them (the CLI commands use them; :func:`translator_runs` finds the translator runs). One :class:`~cxrsynth.core.runtime.Runtime`, made by the CLI, runs
train, generate and the audit's inverse step, each with its own precision setting. Its configuration is one tree, :class:`PipelineConfig`,
made of the stage configs: ``--set train.max_steps=5 --set generate.precision=fp32``.

Nothing finished is destroyed: a rerun resumes training and generation; an existing release folder
is only replaced with ``replace=True``, and then moved aside (``<name>.previous-<time>``), not deleted.

Concurrency and failure: the whole release holds an exclusive lock on ``--out`` (``locks.py``), so a
second release into the same place stops at once, naming the first one's pid; the final swap checks
``replace`` again just before renaming. The staging folders carry this process's pid, and a release
that fails for any reason (verification, a full disk, Ctrl-C) removes them, so it never leaves a
half-made copy filling the disk; staging folders of a killed release are removed by the next one.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .artifacts import (AuditResult, GeneratedSet, ReleaseFolder, SplitData, TranslatorRun, as_release,
                        final_pair, stale_staging, staging_pair)
from .stages.audit.run import AuditConfig
from .core.config import build as build_config
from .core.config import load_file, merge, nest, parse_overrides
from .core.errors import ConfigError, DataNotFoundError, VerifyFailed
from .stages.generate import GenerateConfig, check_ranks, generate, planned_shards
from .stages.generate import runtime_of as generate_runtime
from .launch import Job, Launcher, launch, raise_failed
from .core.layout import WorkLayout
from .core.locks import check_writable, hold
from .core.paths import read_json
from .core.progress import log, stage
from .stages.plan import PlanConfig
from .data.records import read_records
from .core.runtime import Runtime
from .stages.release.describe import describe, stamped_benchmark_or_none
from .stages.release.package import ReleaseConfig, package
from .stages.release.verify import verify
from .stages.translate.checkpoint import latest_checkpoint
from .stages.translate.train import resolve_train_config, train
from .core.vocab import CONFIG_TASK


@dataclass(frozen=True)
class PipelineConfig:
    """The configuration of a whole release, one section per stage (``--set SECTION.KEY=VALUE``).

    ``train`` holds TrainConfig keys (``preset`` included) checked at once, then laid over each
    translator's own saved config when the run exists (a resumed run keeps its recipe), or over the
    defaults; the task is set per translator. ``generate.configs`` defaults to ``release.configs`` and
    must equal it. A top-level key of the release section may be given without its prefix
    (``--set version=1.2.0`` is ``--set release.version=1.2.0``), as before the tree existed.
    """

    release: ReleaseConfig = ReleaseConfig()
    plan: PlanConfig = PlanConfig()
    train: dict[str, Any] = field(default_factory=dict)
    generate: GenerateConfig = GenerateConfig()
    audit: AuditConfig = AuditConfig()

    def __post_init__(self):
        if not isinstance(self.train, dict):
            raise ConfigError("train must be a mapping of TrainConfig keys", self.train, "e.g. --set train.max_steps=5")
        if "task" in self.train:
            raise ConfigError("train.task is set per translator by the release", self.train["task"],
                              "leave it out; the release trains every task its configs need")
        resolve_train_config(base=dict(self.train), prefix="train.")  # unknown keys and wrong types fail now
        if tuple(self.generate.configs) != tuple(self.release.configs):
            raise ConfigError("generate.configs differ from release.configs", self.generate.configs,
                              f"leave generate.configs out, or make it {','.join(self.release.configs)}")

    def train_config(self, task: str, saved: dict | None = None):
        """The TrainConfig of ``task``'s translator: its ``saved`` config (if any) <- ``train``."""
        return resolve_train_config(base=merge(dict(saved or {}), dict(self.train) | {"task": task}))


def resolve_pipeline(file: str | Path | None = None, overrides=(), given: dict | None = None) -> PipelineConfig:
    """Defaults <- config ``file`` <- ``--set`` overrides <- ``given`` (typed command-line options by
    dotted key), as :func:`cxrsynth.core.config.resolve`, for the tree."""
    data = merge(merge(load_file(file) if file else {}, parse_overrides(overrides)), nest(given))
    short = {f.name for f in dataclasses.fields(ReleaseConfig)} & set(data)
    if short:  # --set version=1.2.0 is release.version
        section = data.get("release", {})
        if not isinstance(section, dict):
            raise ConfigError("release must be a mapping", section)
        data["release"] = merge(section, {k: data.pop(k) for k in sorted(short)})
    gen, rel = data.get("generate", {}), data.get("release", {})
    if isinstance(gen, dict) and "configs" not in gen and isinstance(rel, dict) and "configs" in rel:
        data["generate"] = dict(gen, configs=rel["configs"])  # generate makes what the release packages
    return build_config(PipelineConfig, data)


def translator_runs(layout: WorkLayout, tasks, given: dict[str, str | Path] | None = None) -> dict[str, TranslatorRun]:
    """{task: run} for ``tasks``: the run folder or generator file ``given`` for it (``--translator`` /
    ``--generator TASK=PATH``), else the work folder's ``translators/<task>``. The one lookup of
    translator files for generate, package and the audit."""
    return {t: TranslatorRun.read((given or {}).get(t) or layout.translator(t).root) for t in dict.fromkeys(tasks)}


def generate_in(workdir: str | Path, cfg: GenerateConfig = GenerateConfig(), generators: dict[str, str] | None = None,
                rank: int | None = None, world: int | None = None, progress: bool = False,
                rt: Runtime | None = None) -> dict:
    """``cxrsynth generate`` on a work folder: its plan, records and translators (``generators``
    {task: file or run folder} instead of ``translators/<task>``) -> ``generated/``; returns the report.

    ``rt``: the command's Runtime (default: :func:`cxrsynth.stages.generate.runtime_of` ``cfg``, ``rank``, ``world``).
    """
    layout = WorkLayout(workdir)
    rt = rt or generate_runtime(cfg, rank, world)
    gens = {t: run.generator for t, run in translator_runs(layout, (CONFIG_TASK[c] for c in cfg.configs), generators).items()}
    return generate(read_json(layout.plan), read_records(layout.records), gens, cfg, rt, GeneratedSet(layout.generated),
                    progress).report


def generate_launched(workdir: Path, cfg, generators: dict[str, str] | None, world: int | None, launcher: Launcher,
                      echo: Callable[[str], None] | None = None) -> dict:
    """``generate --launcher local|slurm``: ``world`` jobs (default: one per shard), job ``i`` running
    :func:`generate_in` ``(rank=i, world=world)``, which splits the shards round-robin and keeps finished
    ones; logs in ``generated/jobs/``. Returns the ranks' reports merged (counts summed)."""
    layout = WorkLayout(workdir)
    world = planned_shards(read_json(layout.plan), cfg) if world is None else world
    check_ranks(0, world)
    jobs = [Job(f"generate rank {r} of {world}", generate_in, (layout.root, cfg, generators, r, world))
            for r in range(world)]
    outcomes = launch(launcher, jobs, GeneratedSet(layout.generated).jobs, echo)
    raise_failed(outcomes, "generation jobs", "rerun the same command: finished shards are kept, only the rest is made")
    reports = [o.value for o in outcomes]
    merged = dict(reports[0], rank=None, world=world)
    merged["configs"] = {}
    for config, first in reports[0]["configs"].items():
        per_rank = [r["configs"][config] for r in reports]
        merged["configs"][config] = dict(first, images_per_second=None, **{
            k: sum(s[k] for s in per_rank) for k in ("generated", "shards_skipped_done", "shards_mine")})
    return merged


def package_in(workdir: str | Path, target: ReleaseFolder, cfg: ReleaseConfig = ReleaseConfig(),
               translators: dict[str, str] | None = None, describe_release: bool = True) -> ReleaseFolder:
    """``package`` of a work folder's generated images, plan, records and translator runs
    (``translators`` {task: run folder or generator file} instead of ``translators/<task>``) into ``target``."""
    layout = WorkLayout(workdir)
    runs = {t: run.generator for t, run in translator_runs(layout, (CONFIG_TASK[c] for c in cfg.configs), translators).items()}
    ingest = read_json(layout.ingest_report) if layout.ingest_report.is_file() else None
    return package(GeneratedSet(layout.generated), read_json(layout.plan), read_records(layout.records), runs, target,
                   cfg, ingest, describe_release)


def audit_in(workdir: str | Path, release: ReleaseFolder | str | Path, cfg: AuditConfig = AuditConfig(),
             private: str | Path | None = None, out_dir: str | Path | None = None, embedding=None,
             record_paths: bool = False, rt: Runtime | None = None,
             translators: dict[str, str | Path] | None = None, externals: dict[str, str] | None = None) -> AuditResult:
    """``cxrsynth audit`` on a work folder: its records, split and plan
    (:meth:`~cxrsynth.artifacts.SplitData.read`), its translator runs (``translators`` {task: run folder
    or generator file} instead of ``translators/<task>``), its fidelity encoder cache and its own
    benchmark folder are found here and handed to the stage :func:`~cxrsynth.stages.audit.run.audit`,
    which writes into ``out_dir`` (default ``WORKDIR/audit``). Returns the stamped
    :class:`~cxrsynth.artifacts.AuditResult`."""
    from .stages.audit import run as audit_stage  # looked up at call time: tests replace the stage

    layout = WorkLayout(workdir)
    return audit_stage.audit(as_release(release, private), SplitData.read(layout.root), cfg, rt=rt,
                             out_dir=out_dir if out_dir is not None else layout.audit,
                             translators=translator_runs(layout, CONFIG_TASK.values(), translators), embedding=embedding,
                             benchmark=layout.benchmark_files, encoder_cache=layout.cxr_encoder,
                             record_paths=record_paths, home=layout.root, externals=externals)


def _ensure_plan(layout: WorkLayout, cfg: PlanConfig) -> None:
    if layout.plan.is_file():
        return
    from .stages.plan import make_plan
    from .data.records import read_records

    if not layout.splits.is_file():
        raise DataNotFoundError("no splits in the work folder", layout.splits,
                                "run `cxrsynth ingest` and `cxrsynth split` first")
    make_plan(read_records(layout.records), read_json(layout.splits), cfg, layout.plan)


def _ensure_translator(layout: WorkLayout, task: str, cfg: PipelineConfig, progress: bool,
                       rt: Runtime | None = None) -> None:
    run = TranslatorRun.read(layout.translator(task).root)
    # A run that exists continues with its own saved config; the train section (e.g. max_steps) still applies.
    tcfg = cfg.train_config(task, run.config)
    if run.finished(tcfg.max_steps):
        return
    # any intact checkpoint, even when latest.json was lost (latest_checkpoint falls back and says so)
    resume = latest_checkpoint(run.folder.root) is not None
    train(layout.root, tcfg, resume=resume, progress=progress,
          rt=rt.with_numerics(tcfg.precision, tcfg.channels_last) if rt else None)


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


def release(workdir: str | Path, out_dir: str | Path, cfg: PipelineConfig = PipelineConfig(),
            translators: dict[str, str] | None = None, replace: bool = False, progress: bool = False,
            audit: bool = True, launcher: Launcher | None = None, rt: Runtime | None = None,
            externals: dict[str, str] | None = None) -> dict:
    """Run the whole release; returns the manifest of the release folder put in place.

    ``externals`` {name: folder}: real COVID-19 of other collections, which the audit measures as a
    third fidelity baseline ("another hospital"), so the card shows it.

    ``launcher`` (``local``/``slurm``): the translators to train are trained as one job each (logs in
    ``out_dir/jobs/``), at the same time; the rest runs here once both are done.

    ``translators`` ({task: generator file or run folder}) are used instead of training; ``audit=False``
    leaves the card saying "Not yet audited". Raises :class:`~cxrsynth.core.errors.LockedError` when another
    release writes into ``out_dir``, and :class:`~cxrsynth.core.errors.DestinationError` when ``out_dir``
    cannot be written, both before any work. ``rt``: the command's one Runtime (default: the one
    ``generate``'s settings give); its device serves train, generate and the audit, each stage with its
    own precision setting (:meth:`~cxrsynth.core.runtime.Runtime.with_numerics`).
    """
    workdir, out_dir = Path(workdir), Path(out_dir)
    final = out_dir / cfg.release.name
    _refuse_existing(final, replace)
    check_writable(out_dir, "release output folder")
    check_writable(workdir, "work folder")
    with hold(out_dir, "release", f"the release folder {out_dir}"):
        _refuse_existing(final, replace)  # another release may have finished while we waited to start
        return _release_locked(WorkLayout(workdir), out_dir, cfg, dict(translators or {}), replace, progress, audit,
                               launcher or Launcher(), rt or generate_runtime(cfg.generate), externals)


def _release_locked(layout: WorkLayout, out_dir: Path, cfg: PipelineConfig, translators: dict[str, str],
                    replace: bool, progress: bool, audit: bool, launcher: Launcher, rt: Runtime,
                    externals: dict[str, str] | None = None) -> dict:
    name = cfg.release.name
    final, staging = final_pair(out_dir, name), _fresh_staging(out_dir, name)
    with stage("plan", progress):
        _ensure_plan(layout, cfg.plan)
    to_train = [t for t in dict.fromkeys(CONFIG_TASK[c] for c in cfg.release.configs) if t not in translators]
    serial = launcher.kind == "serial"
    with stage(f"train ({', '.join(to_train) or 'translators given'})", progress):
        # launched jobs may run on other machines: they choose their device where they run
        outcomes = launch(launcher, [Job(f"train {task}", _ensure_translator,
                                         (layout, task, cfg, progress and serial, rt if serial else None))
                                     for task in to_train], out_dir / "jobs", echo=log.info)
        raise_failed(outcomes, "translator trainings", "rerun the same command: training resumes from its last checkpoint")
    with stage("generate", progress):
        generate_in(layout.root, cfg.generate, translators, progress=progress,
                    rt=rt.with_numerics(cfg.generate.precision, cfg.generate.channels_last))
    try:
        with stage("package", progress):
            manifest = package_in(layout.root, staging, cfg.release, translators, describe_release=False).manifest()
        result = None
        if audit:
            with stage("audit", progress):
                result = audit_in(layout.root, staging, cfg.audit, rt=rt.with_numerics(cfg.audit.precision),
                                  translators=translators, externals=externals)
        # the audit (stamped with these very images) and the work folder's benchmark, only if it judged
        # these very images (a rerun of the same release); card, croissant.json, SHA256SUMS: once
        with stage("card", progress):
            manifest = describe(staging, manifest, stamped_benchmark_or_none(layout.benchmark, manifest["data_sha256"]),
                                audit=result)
        with stage("verify", progress):
            _verify(staging, final)
        with stage("promote", progress):
            _promote([(staging.root, final.root), (staging.private, final.private)], replace)
    except BaseException:
        # A failed release leaves nothing half-made behind (a full disk stays full otherwise).
        shutil.rmtree(staging.root, ignore_errors=True)
        shutil.rmtree(staging.private, ignore_errors=True)
        raise
    return manifest


def _fresh_staging(out_dir: Path, name: str) -> ReleaseFolder:
    """This process's staging release (and its private folder). Under the release lock no other release
    uses staging folders here: any left are from a killed run, and are removed."""
    for stale in stale_staging(out_dir, name):
        shutil.rmtree(stale, ignore_errors=True)
    return staging_pair(out_dir, name, os.getpid())


def _verify(staging: ReleaseFolder, final: ReleaseFolder) -> None:
    problems = verify(staging.root, staging.private)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise VerifyFailed(f"the release failed verification with {len(problems)} problems: "
                           + "; ".join(problems[:5]) + more, final.root,
                           "nothing was put in place; fix the cause and rerun (training and images are reused)")


def _promote(moves: list[tuple[Path, Path]], replace: bool) -> None:
    """Rename each staging folder onto its final name, moving what is there aside (``replace`` checked
    again here: another release may have put one in place while this one was verifying)."""
    _refuse_existing(moves[0][1], replace)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    for src, dst in moves:
        if dst.exists():
            os.replace(dst, _aside(dst, stamp))
        os.replace(src, dst)


def __getattr__(name: str):
    """``benchmark_in``: `cxrsynth benchmark` on a work folder. It lives in the stage (one implementation,
    which the stage's older ``run_benchmark`` also calls) and is offered here beside the other stages'
    work-folder calls, imported on first use: the benchmark stage brings torchvision and scikit-learn
    (about 2 s), which `cxrsynth generate`, `release` and `audit` processes never need (PEP 562)."""
    if name == "benchmark_in":
        from .stages.benchmark.run import benchmark_in

        return benchmark_in
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
