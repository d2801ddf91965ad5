"""Building a release folder from a work folder's generated images.

:func:`package` takes a :class:`~cxrsynth.artifacts.GeneratedSet` (every shard must be finished), the
plan, the records and the translator runs (``pipeline.package_in`` reads them from a work folder);
it writes into a :class:`~cxrsynth.artifacts.ReleaseFolder`:

- ``data/<config>-XXXXX-of-YYYYY.parquet``: images embedded as PNG bytes (``{bytes, path}``) with their
  id, label and public provenance fields, row groups of 256 rows, shards of at most ``max_shard_bytes``
  (300 MB by default, inside the Hub's advice of 100-500 MB); the ``datasets`` features ride along in
  the parquet schema metadata, so the files load as PIL images and ClassLabels on their own too;
- ``provenance.jsonl``, ``manifest.json``, ``croissant.json``, ``README.md`` (the card),
  ``sample_grid.png`` and ``SHA256SUMS``;

and, beside the release and never uploaded, ``<private>/mapping.jsonl`` (synthetic id -> source record)
and ``<private>/identifiers.json`` (every source id, patient id and path used, for the leak check).
Images are streamed shard by shard: memory stays bounded whatever the release size.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ... import __version__
from ...artifacts import GeneratedSet, ReleaseFolder
from ...core.config import to_dict
from ...core.errors import ConfigError
from ...core.paths import atomic_path, atomic_write, sha256_file, write_json
from ..plan import plan_sha256
from ...data.records import LABELS
from ..translate import TranslatorRun, describe_run
from ...core.vocab import CONFIG_TASK, CONFIGS
from .describe import describe, write_manifest
from .features import arrow_schema
from ...data.sources.terms import SOURCE_TERMS, SOURCES, licence_counts, licence_name, release_licence

PUBLIC_FIELDS = ("config", "source_label", "translator_id", "checkpoint_sha256", "png_sha256", "seed",
                 "code_version", "created")


@dataclass(frozen=True)
class ReleaseConfig:
    name: str = "covid-cxr-synth"
    pretty_name: str = "COVID-CXR-Synth: synthetic COVID-19 chest X-rays"
    version: str = "1.0.0"
    configs: tuple[str, ...] = CONFIGS
    max_shard_bytes: int = 300_000_000
    rows_per_group: int = 256
    license: str = "auto"  # auto: from the licences of the images used (sources.terms.release_licence)
    grid_images: int = 8  # per config, in sample_grid.png
    exclude: str | None = None  # a file of synthetic ids to leave out (e.g. the audit's exclude_ids.txt)

    def __post_init__(self):
        import re

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.name):
            raise ConfigError("release name must be letters, digits, '.', '_' or '-'", self.name)
        if not re.fullmatch(r"\d+\.\d+\.\d+", self.version):
            raise ConfigError("version must look like 1.2.3", self.version)


def _plan_shards(items: list[tuple[dict, int]], max_bytes: int) -> list[list[dict]]:
    shards, cur, size = [], [], 0
    for prov, nbytes in items:
        if cur and size + nbytes > max_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append(prov)
        size += nbytes
    if cur:
        shards.append(cur)
    return shards


def _write_shard(path: Path, rows: list[dict], gen: GeneratedSet, schema: pa.Schema, rows_per_group: int) -> dict:
    label_idx = {n: i for i, n in enumerate(LABELS)}
    # PNG bytes do not compress further
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema, compression="none") as writer:
        for start in range(0, len(rows), rows_per_group):
            group = rows[start:start + rows_per_group]
            cols = {
                "id": [p["id"] for p in group],
                "image": [{"bytes": gen.image(p).read_bytes(), "path": f"{p['id']}.png"} for p in group],
                "label": [label_idx["covid"]] * len(group),
                "config": [p["config"] for p in group],
                "source_label": [label_idx[p["source_label"]] for p in group],
                **{k: [p[k] for p in group] for k in ("translator_id", "checkpoint_sha256", "png_sha256", "seed",
                                                      "code_version", "created")},
            }
            writer.write_table(pa.Table.from_pydict(cols, schema=schema))
    return {"path": f"data/{path.name}", "num_rows": len(rows), "num_bytes": path.stat().st_size,
            "sha256": sha256_file(path)}


def _sample_grid(path: Path, gen: GeneratedSet, per_config: dict[str, list[dict]], n: int) -> None:
    from PIL import Image

    rows = []
    for config, provs in per_config.items():
        tiles = [np.asarray(Image.open(gen.image(p)).convert("L").resize((128, 128))) for p in provs[:n]]
        tiles += [np.zeros((128, 128), np.uint8)] * (n - len(tiles))
        rows.append(np.concatenate(tiles, axis=1))
    with atomic_write(path, "wb") as fh:
        Image.fromarray(np.concatenate(rows, axis=0)).save(fh, format="PNG")


def _environment() -> dict:
    import datasets
    import torch

    return {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
            "datasets": datasets.__version__, "numpy": np.__version__, "pyarrow": pa.__version__}


def package(generated: GeneratedSet, plan: dict, records, translators: dict[str, str | Path], target: ReleaseFolder,
            cfg: ReleaseConfig = ReleaseConfig(), ingest_report: dict | None = None,
            describe_release: bool = True) -> ReleaseFolder:
    """Write a complete release of ``generated``'s finished shards into ``target.root`` (created fresh)
    and its private files into ``target.private``; returns ``target``, its manifest written.

    ``plan`` and ``records`` (``records.read_records``) are what the images were planned and made from;
    ``translators`` ({task: run folder or generator file}) are described in the manifest (a run folder
    whose generator did not make the images is not described); ``ingest_report``: what ingest left out
    by licence (None: nothing said). With ``describe_release=False`` only the data, ``manifest.json``
    and the private files are written: the release pipeline audits them first and then renders the
    card, Croissant file and checksums once (``describe.describe``).
    """
    per_config, mapping = generated.collect(cfg.configs)
    per_config, mapping, filtered = _exclude(per_config, mapping, cfg.exclude)
    files, config_info = _write_data(target, generated, per_config, cfg)
    records = {r.record_id: r for r in records}
    described = [_translator_entry(translators, config, per_config[config][0], plan, records)
                 for config in cfg.configs]
    used_ids = {m["record_id"] for m in mapping} | {i for c in cfg.configs for side in ("source", "covid")
                                                    for i in plan["tasks"][CONFIG_TASK[c]]["translator_train"][side]}
    used = [records[i] for i in sorted(used_ids) if i in records]
    licensing = _licensing(ingest_report, records, {i for c in cfg.configs for i in plan["tasks"][CONFIG_TASK[c]]["translator_train"]["covid"]},
                           {m["record_id"] for m in mapping}, cfg)
    manifest = {
        "kind": "cxrsynth.release_manifest", "name": cfg.name, "pretty_name": cfg.pretty_name, "version": cfg.version,
        "license": licensing.pop("license"), "licensing": licensing, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "code_version": __version__, "environment": _environment(),
        # paths are never published: the exclude file is named, not located
        "config": {**to_dict(cfg), "exclude": Path(cfg.exclude).name if cfg.exclude else None},
        "counts": {**{c: len(p) for c, p in per_config.items()}, "all": sum(len(p) for p in per_config.values())},
        "configs": config_info, "translators": described, "sources": _sources(used),
        "split_method": plan["split_method"],
        # what `cxrsynth benchmark` checks a release against: the split assignment and the plan it came from
        "split_assignment_sha256": plan["splits_sha256"], "plan_sha256": plan_sha256(plan),
        "plan": {"per_domain": plan["config"]["per_domain"], "seed": plan["config"]["seed"],
                 "planned": {c: plan["tasks"][CONFIG_TASK[c]]["translate"]["n"] for c in cfg.configs}},
        "audit": None,  # only an audit of these very images is attached (describe.with_audit checks the stamp)
        "filtered": filtered,
        "files": files,
    }
    manifest["data_sha256"] = data_fingerprint(manifest)
    if describe_release:
        describe(target, manifest)
    else:
        write_manifest(target, manifest)
    _write_private(target, mapping, used_ids, used)
    return target


def _exclude(per_config: dict[str, list[dict]], mapping: list[dict], exclude: str | None):
    """Leave out the synthetic ids listed in the file ``exclude`` (e.g. the audit's exclude_ids.txt);
    returns the kept provenance, the kept mapping and what the manifest says about the removal."""
    if not exclude:
        return per_config, mapping, None
    drop = {line.strip() for line in Path(exclude).read_text().splitlines() if line.strip()}
    before = sum(len(p) for p in per_config.values())
    per_config = {c: [p for p in provs if p["id"] not in drop] for c, provs in per_config.items()}
    mapping = [m for m in mapping if m["id"] not in drop]
    filtered = {"removed": before - sum(len(p) for p in per_config.values()), "file": Path(exclude).name,
                "reason": "images closest to their sources in the privacy audit (per_image.csv: linkage rank, SSIM margin)"}
    return per_config, mapping, filtered


def _write_data(target: ReleaseFolder, gen: GeneratedSet, per_config: dict[str, list[dict]],
                cfg: ReleaseConfig) -> tuple[list, dict]:
    """``target.root`` made fresh with ``data/`` (the parquet shards), ``provenance.jsonl`` and
    ``sample_grid.png``; returns the shard entries and the per-config summary of the manifest."""
    if target.root.exists():
        shutil.rmtree(target.root)
    target.data.mkdir(parents=True)
    schema = arrow_schema()
    files, config_info = [], {}
    for config, provs in per_config.items():
        items = [(p, gen.image(p).stat().st_size) for p in provs]
        shards = _plan_shards(items, cfg.max_shard_bytes)
        written = [_write_shard(target.data / f"{config}-{i:05d}-of-{len(shards):05d}.parquet", rows, gen, schema,
                                cfg.rows_per_group) for i, rows in enumerate(shards)]
        files += written
        config_info[config] = {"task": CONFIG_TASK[config], "num_examples": len(provs), "files": written,
                               "num_bytes": sum(w["num_bytes"] for w in written)}
    with atomic_write(target.provenance_path) as fh:
        for provs in per_config.values():
            for p in provs:
                fh.write(json.dumps({k: p[k] for k in ("id", "file", *PUBLIC_FIELDS, "label", "source_split",
                                                       "width", "height")}, sort_keys=True) + "\n")
    _sample_grid(target.sample_grid, gen, per_config, cfg.grid_images)
    return files, config_info


def _translator_entry(translators: dict[str, str | Path], config: str, first: dict, plan: dict, records: dict) -> dict:
    """The manifest's description of the translator that made ``config`` (``first``: one of its images'
    provenance, which names the generator's checksum)."""
    task = CONFIG_TASK[config]
    sha = first["checkpoint_sha256"]
    run = _translator_run(translators[task], sha)
    tt = plan["tasks"][task]["translator_train"]
    return {
        "config": config, "task": task, "translator_id": first["translator_id"],
        "generator_sha256": sha, "arch": run.info.get("arch", {}), **_recipe(run),
        "steps": run.report.get("steps"), "total_steps": run.report.get("total_steps"),
        "finished": run.report.get("finished"), "seed": run.config.get("seed"),
        "train_images": {"source": len(tt["source"]), "covid": len(tt["covid"]),
                         "covid_licences": licence_counts(records[i].license for i in tt["covid"] if i in records)},
    }


RECIPE_FIELDS = ("generator", "disc_base", "gan_loss", "lambda_cycle", "lambda_identity", "loop", "batch_size",
                 "diff_augment", "spectral_norm", "ema_decay", "disc_thumbnail", "disc_views", "size")


def _recipe(run: TranslatorRun) -> dict:
    """What the dataset card says about a translator beyond its generator's ``arch``: the preset, the
    training settings that shape its images, and its architecture in the words of its own model card
    (``translate.card``), so the two cards cannot disagree. Empty for a run that is not described."""
    if not run.config:
        return {}
    from ..translate.card import architecture_words
    from ..translate.train import resolve_train_config

    try:
        cfg = resolve_train_config(base=run.config)
    except ConfigError:  # a run of another cxrsynth version: its settings as saved, without the words
        cfg = None
    recipe = {k: run.config.get(k) for k in RECIPE_FIELDS if k in run.config}
    if cfg is not None:
        recipe["disc_base"] = cfg.disc_base or cfg.base
    return {"preset": run.config.get("preset"), "recipe": recipe,
            **({"architecture": architecture_words(cfg)} if cfg is not None else {})}


def _sources(used: list) -> list[dict]:
    """Per upstream source of the records ``used``: its terms, citation, and how many images came from it."""
    sources = []
    for src in sorted({r.source for r in used}):
        meta = SOURCES[src]
        mine = [r for r in used if r.source == src]
        sources.append({"source": src, "name": meta["name"], "url": meta["url"], "licence": meta["licence"],
                        "attribution": meta["attribution"], "licences": _source_licences(src, mine),
                        "citation": meta["citation"], "collections": sorted({r.collection for r in mine}),
                        "images_used": len(mine), "by_label": {lab: sum(r.label == lab for r in mine) for lab in LABELS
                                                               if any(r.label == lab for r in mine)}})
    return sources


def _write_private(target: ReleaseFolder, mapping: list[dict], used_ids: set[str], used: list) -> None:
    """``mapping.jsonl`` (synthetic id -> source record) and ``identifiers.json`` (for the leak check)."""
    target.private.mkdir(parents=True, exist_ok=True)
    with atomic_write(target.mapping_path) as fh:
        for m in mapping:
            fh.write(json.dumps(m, sort_keys=True) + "\n")
    write_json(target.identifiers_path, {
        "note": "private: every source identifier this release derives from; used by `cxrsynth verify` to prove none leaks",
        "record_ids": sorted(used_ids),
        "patient_ids": sorted({r.patient_id for r in used if len(r.patient_id) >= 4}),
        "image_keys": sorted({r.image_key for r in used}),
        "source_paths": sorted({r.source_path for r in used}),
        "source_roots": sorted({r.source_root for r in used}),
    })


def _source_licences(src: str, records: list) -> dict[str, int]:
    """Per-licence image counts of one source: per record where the licence is per image (COVID-19
    collection, image folders), else the publisher's terms for all of its images."""
    if src in SOURCE_TERMS:
        return {SOURCES[src]["terms"]: len(records)}
    return licence_counts(r.license for r in records)


def _licensing(ingest_report: dict | None, records: dict, covid_ids: set[str], translated_ids: set[str],
               cfg: ReleaseConfig) -> dict:
    """The release licence and its grounds: what the translators learnt from (each COVID-19 image once, by
    licence), which sources were translated, what grants no right to adapt, and what ingest left out by
    licence (the ``covid_collection.licenses`` allow-list)."""
    learnt = licence_counts(records[i].license for i in sorted(covid_ids) if i in records)
    translated = sorted({records[i].source for i in translated_ids if i in records})
    per_image = licence_counts(records[i].license for i in sorted(translated_ids)
                               if i in records and records[i].source not in SOURCE_TERMS)
    hub_id, why, restricted = release_licence(learnt, translated, per_image)
    excluded = {}
    if ingest_report:
        for coll in ingest_report.get("collections", {}).values():
            for reason, n in coll.get("excluded", {}).items():
                if reason.startswith("licence not allowed: "):
                    name = licence_name(reason.removeprefix("licence not allowed: "))
                    excluded[name] = excluded.get(name, 0) + n
    return {"license": hub_id if cfg.license == "auto" else cfg.license, "derived": hub_id, "why": why,
            "learnt_from": learnt, "translated_sources": translated, "no_right_to_adapt": restricted,
            "excluded_at_ingest": excluded}


def _translator_run(path: str | Path, sha: str) -> TranslatorRun:
    """The run at ``path`` (a run folder or its generator file) when it made generator ``sha``. A run
    folder whose generator is another one is not described at all (empty dicts), rather than described
    wrongly."""
    run = describe_run(path)
    return run if run.made(sha) else TranslatorRun(run.folder, run.generator, {}, {}, {})


def data_fingerprint(manifest: dict) -> str:
    """What a release's images are: the sha256 of its shard list (paths and checksums). The card, the
    Croissant file and the audit summary change around the same data; this does not."""
    shards = sorted((f["path"], f["sha256"]) for f in manifest["files"])
    return hashlib.sha256(json.dumps(shards).encode()).hexdigest()
