"""The work folder's layout: the one module that knows its file names.

Every stage reads the previous stage's files and writes its own into one work folder (``--workdir``).
Before this module, some forty places joined ``workdir / "plan.json"`` by hand, and stages read each
other's private files; a renamed file then broke a stage far away, silently. Now every stage asks a
:class:`WorkLayout` for a path, and nothing else in ``cxrsynth`` joins a work-folder file name
(``tests/test_layout.py`` scans the source to keep it so)::

    WORKDIR/
      records.parquet          ingest: one row per upstream image (records.py)
      ingest_report.json       ingest: counts, exclusions, problems
      ingest_config.json       ingest: the resolved IngestConfig
      splits.json              split: record id -> train / validation / test
      plan.json                plan: translator training sets, images to translate, arm skews
      translators/<task>/      train: one translator run (TranslatorFolder)
      generated/<config>/      generate: PNG shards with provenance (generate.py owns what is inside)
      generated/private/       generate: the id secret and the synthetic id -> record mapping
      release/                 release: default place of the release folders
      audit/                   audit: audit.json, per_image.csv, figures, report_section.html
      fidelity/                audit: the chest X-ray encoder of the fidelity measures (cached)
      benchmark/               benchmark: results.json, tables.md, runs/<task>/<arm>/seed-N/

The layout only names paths; it creates and reads nothing, so it is cheap to make anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def _at(*parts: str, doc: str | None = None) -> property:
    """A read-only attribute: the path ``parts`` below the folder's root."""
    return property(lambda self: self.root.joinpath(*parts), doc=doc)


@dataclass(frozen=True)
class _Folder:
    """A folder whose files are named by ``_at`` attributes; ``root`` may be given as a string."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))


@dataclass(frozen=True)
class TranslatorFolder(_Folder):
    """One translator run folder (``translators/<task>/`` or any ``train --out``).

    Written by ``translate/train.py``; what other stages need from it (the generator, its description,
    the private reverse generator) is named here, and read through ``artifacts.TranslatorRun``.
    """

    config = _at("config.json", doc="The resolved TrainConfig (a resumed run starts from it).")
    report = _at("train_report.json")
    generator = _at("generator.safetensors", doc="The published A -> COVID-19 generator (weights only).")
    generator_info = _at("generator.json", doc="Architecture and sha256 of the generator.")
    reverse_generator = _at("private", "reverse_generator.safetensors",
                            doc="COVID-19 -> A; never published, the audit's inverse-recovery test uses it.")
    checkpoints = _at("checkpoints", doc="Owned by translate/checkpoint.py (latest_checkpoint reads it).")
    losses = _at("losses.csv")
    card = _at("README.md")
    markers = _at("markers.jsonl", doc="With mask_markers: what was filled in each COVID-19 training image (translate/markers.py).")

    def sample_grid(self, step: int) -> Path:
        return self.root / "samples" / f"step-{step:08d}.png"


def translator_folder(path: str | Path) -> TranslatorFolder:
    """The run folder of ``path``, given as a run folder or as its ``generator.safetensors``
    (``--translator TASK=PATH`` accepts both)."""
    path = Path(path)
    return TranslatorFolder(path if path.is_dir() else path.parent)


@dataclass(frozen=True)
class AuditFolder(_Folder):
    """What ``cxrsynth audit`` writes (``WORKDIR/audit`` or ``--out``); the release card takes
    ``audit.json`` only when it is stamped with the release's ``data_sha256``."""

    json = _at("audit.json")
    per_image = _at("per_image.csv")
    exclude_ids = _at("exclude_ids.txt", doc="The ids closest to their sources (--exclude-closest), for release.exclude.")
    figures = _at("figures")
    report_section = _at("report_section.html", doc="The audit's HTML section that the benchmark report embeds.")


@dataclass(frozen=True)
class BenchmarkFolder(_Folder):
    """The parts of a benchmark run folder (``WORKDIR/benchmark`` or ``--out``) that other stages read;
    ``benchmark/run.py`` owns the rest (``runs/``, ``inputs.json``, ``results.json``)."""

    tables = _at("tables.md")
    results = _at("results.json", doc="Stamped with the release's data_sha256 (release_data_sha256).")
    report = _at("report.html")

    def cell(self, task: str, arm: str, seed: int) -> Path:
        """One cell's run folder (its result.json, model and figure inputs)."""
        return self.root / "runs" / task / arm / f"seed-{seed}"

    def models(self, arm: str = "real", seed: int = 0) -> list[Path]:
        """The classifiers saved for ``arm`` and ``seed``, one per task, sorted (the audit embeds
        images with one)."""
        return sorted((self.root / "runs").glob(f"*/{arm}/seed-{seed}/model.safetensors"))


#: the work folder's stage files, and the command that makes each (named when one is missing)
MADE_BY = {"records.parquet": "ingest", "splits.json": "split", "plan.json": "plan"}


def missing_hint(path: Path) -> str | None:
    """What to run when a stage file is missing: ``run `cxrsynth plan` first ...``; ``None`` for other files."""
    command = MADE_BY.get(Path(path).name)
    if command is None:
        return None
    return (f"run `cxrsynth {command}` first (or point -w/--workdir at the folder that has it; "
            "`cxrsynth release` makes the plan itself)" if command == "plan" else
            f"run `cxrsynth {command}` first (or point -w/--workdir at the folder that has it)")


@dataclass(frozen=True)
class WorkLayout(_Folder):
    """Every file and folder of one work folder, by name (see the module docstring)."""

    # ingest, split, plan
    records = _at("records.parquet")
    ingest_report = _at("ingest_report.json")
    ingest_config = _at("ingest_config.json")
    splits = _at("splits.json")
    plan = _at("plan.json")
    # train, generate
    translators = _at("translators")
    generated = _at("generated", doc="generate.py owns the shard layout inside (shards, markers, layout.json).")
    # release, audit, benchmark
    release = _at("release", doc="Default parent of release folders (cxrsynth release without --out).")
    audit = _at("audit")
    benchmark = _at("benchmark")
    cxr_encoder = _at("fidelity", "cxr_encoder.safetensors",
                      doc="The fidelity measures' chest X-ray encoder, trained on this folder's real training images.")
    cxr_encoder_info = _at("fidelity", "cxr_encoder.json", doc="How it was trained, and its sha256.")

    def translator(self, task: str) -> TranslatorFolder:
        """The default run folder of ``task`` (``cxrsynth train --task TASK`` without ``--out``)."""
        return TranslatorFolder(self.translators / task)

    def generated_config(self, config: str) -> Path:
        return self.generated / config

    @property
    def audit_files(self) -> AuditFolder:
        return AuditFolder(self.audit)

    @property
    def benchmark_files(self) -> BenchmarkFolder:
        return BenchmarkFolder(self.benchmark)
