"""Auditing a release: privacy and quality, per config and overall, with a calibrated verdict per test.

Takes artefacts, not a work folder (:func:`audit`): the release folder (parquet shards) and its
private mapping, the records, split and plan already read (:class:`~cxrsynth.artifacts.SplitData`),
the translator runs (their private reverse generators), where the fidelity encoder is cached and which
benchmark folder's own classifier ``--embedding auto`` may use. ``pipeline.audit_in`` reads a work
folder for it (the CLI and ``cxrsynth release`` go through it). Writes into ``out_dir`` (the pipeline's
default: ``WORKDIR/audit``):
``audit.json`` (``manifests/audit.schema.json``), ``per_image.csv`` (every score of every audited
synthetic image), ``figures/*.png``, ``report_section.html`` (picked up by the benchmark report) and,
when asked, ``exclude_ids.txt`` (the images closest to their sources).
``cxrsynth release`` puts ``audit.json``'s summary into the dataset card.

Fidelity (``fidelity.py``, section ``fidelity`` of audit.json, one sentence in the summary and the card):
the quality sample against real COVID-19, beside the untranslated sources and real training vs held-out
images, in pixels, a chest X-ray encoder (trained once per work folder, cached at ``encoder_cache``), the
audit's classifier embedding when it has one and Inception when its file is on disk.

Scale: the privacy measures run on a seeded random sample of synthetic images per config (``sample``),
searched against a pool of training images that holds their sources and others drawn at random
(``pool``), with up to ``heldout`` new real images as the reference (label-matched: each config is held
against new images of the label it was translated from, ``heldout_reference``); the reverse generator runs on
``inverse_sample`` images per config; quality compares equal-size subsamples. Every sample size is
written next to the numbers it produced, and each verdict carries its interval.
"""

from __future__ import annotations

import csv
import io
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image

from ... import __version__
from ...artifacts import AuditResult, Plan, ReleaseFolder, SplitData, TranslatorRun, as_release
from ...core.config import between, to_dict
from ...core.errors import ConfigError, DataNotFoundError
from ...measure.decoded import canonical as load_canonical  # decoded once per process
from ...core.layout import AuditFolder, BenchmarkFolder
from ...core.paths import atomic_write, shareable, write_json
from ...core.progress import duration, log
from ...core.runtime import Runtime
from ...core.schemas import validate
from ...core.vocab import CONFIG_TASK, SOURCE_LABEL
from . import fidelity as F
from . import privacy as P
from . import quality as Q
from .embed import embed, make_embedding
from .own_classifier import own_classifier
from .verdicts import ALPHA, THRESHOLDS, _select, evaluate, off_manifold, per_image, verdicts


@dataclass(frozen=True)
class AuditConfig:
    # auto: pixels, plus the benchmark classifier of WORKDIR when there is one (each verdict is taken on
    # the worse of them); or pixels | classifier:PATH | a comma-separated list of these
    embedding: str = "auto"
    shortlist: int = 10  # real images compared by SSIM per synthetic image (nearest by embedding)
    sample: int | None = 1000  # synthetic images per config for the privacy measures (seeded); null = all
    pool: int | None = 5000  # training images searched: the sampled images' sources + others at random; null = all
    heldout: int | None = 2000  # new real images (held-out splits, patient-disjoint) as the reference; null = all
    # which new real images each config is held against: source-label (held-out normals for g_nc,
    # pneumonias for g_pc: what a new X-ray of the kind it came from scores) | covid (held-out COVID-19)
    heldout_reference: Literal["source-label", "covid"] = "source-label"
    inverse_sample: int | None = 200  # synthetic images per config put through the private reverse generator
    quality_features: str = "auto"  # auto (Inception when its weights file is on disk) | inception | embedding
    inception_weights: str | None = None  # default: $TORCH_HOME/hub/checkpoints/weights-inception-2015-12-05-6726825d.pth
    quality_n: int | None = 1000  # largest equal-size subsample for KID / FID / PRDC
    quality_repeats: int = 10
    quality_sample: int | None = 1000  # synthetic images per config (and real ones per reference label) for quality
    prdc_k: int = 5
    bootstrap: int = 2000  # resamples for the intervals of the comparisons with new real images
    seed: int = 0
    exclude_closest: float = 0.0  # write exclude_ids.txt with this share of images closest to their source
    fidelity: bool = True  # the fidelity section (fidelity.py): KID, probe, spectrum against two baselines
    fidelity_encoder_epochs: int = 20  # of the chest X-ray encoder, trained once per work folder and cached
    # where the reverse generators of the inverse-recovery test run (the command's Runtime is built from
    # these): auto | cpu | cuda | cuda:N | mps, and their autocast (fp32 keeps the canonical numbers)
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "fp32"

    def __post_init__(self):
        between("exclude_closest", self.exclude_closest, 0, 1, "a share of the images, e.g. 0.05")


def runtime_of(cfg: AuditConfig) -> Runtime:
    """The audit's :class:`Runtime` (``device``, ``precision``), which the CLI builds once per command."""
    return Runtime.resolve(cfg.device, cfg.precision)


def _decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.uint8)


def release_index(release: Path) -> dict[str, list[str]]:
    """Ids per config, in file order, without decoding any image."""
    out: dict[str, list[str]] = {}
    for shard in ReleaseFolder(release).shards():
        for batch in pq.ParquetFile(shard).iter_batches(batch_size=4096, columns=["id", "config"]):
            for i, c in zip(batch.column("id").to_pylist(), batch.column("config").to_pylist()):
                out.setdefault(c, []).append(i)
    if not out:
        raise DataNotFoundError("no images in the release", release)
    return out


def read_release_images(release: Path, wanted: set[str]) -> dict[str, np.ndarray]:
    """Decode only the images whose id is in ``wanted``."""
    out = {}
    for shard in ReleaseFolder(release).shards():
        for batch in pq.ParquetFile(shard).iter_batches(batch_size=256, columns=["id", "image"]):
            ids = batch.column("id").to_pylist()
            hit = [k for k, i in enumerate(ids) if i in wanted]
            if hit:
                images = batch.column("image").to_pylist()
                for k in hit:
                    out[ids[k]] = _decode_png(images[k]["bytes"])
    return out


def embedding_specs(spec, benchmark: BenchmarkFolder | None = None,
                    assignment_sha256: str | None = None) -> dict[str, object]:
    """Short key (``pixels``, ``classifier``...) -> what :func:`make_embedding` takes. ``auto``: pixels,
    and the classifier of ``benchmark`` (the work folder's benchmark run folder) when it is that
    benchmark's own, run on the split ``assignment_sha256`` (:func:`own_classifier`)."""
    if isinstance(spec, dict):
        return dict(spec)
    if not isinstance(spec, str):
        return {"custom": spec}
    if spec == "auto":  # only this work folder's own benchmark classifier; any other file is skipped, said once
        model, skipped = own_classifier(benchmark, assignment_sha256) if benchmark is not None else (None, [])
        for line in skipped:
            print(f"cxrsynth: {line}", file=sys.stderr)
        return {"pixels": "pixels", **({"classifier": f"classifier:{model}"} if model else {})}
    out = {}
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        key = "pixels" if part == "pixels" else ("classifier" if part.startswith("classifier:") else part)
        if key in out:
            key = f"{key}{len(out)}"
        out[key] = part
    if not out:
        raise ConfigError("no embedding given", spec, "use auto, pixels, classifier:PATH or a comma-separated list")
    return out


def _take(n: int | None, total: int) -> int:
    return total if n is None else min(int(n), total)


def _inverse(run: TranslatorRun | None, syn: np.ndarray, rt: Runtime) -> np.ndarray | None:
    """``syn`` put back through ``run``'s private reverse generator, on ``rt``'s device and autocast;
    None when there is no run, no reverse generator or no image."""
    from ..generate import translate_batch
    from ..translate.checkpoint import load_generator

    path = run.reverse_generator if run is not None else None
    if path is None or not len(syn):
        return None
    net, info = load_generator(path, rt.device)
    size = int(info["arch"].get("size", syn.shape[-1]))
    x = syn if syn.shape[-1] == size else np.stack([np.asarray(Image.fromarray(a).resize((size, size))) for a in syn])
    out = np.concatenate([translate_batch(net, torch.from_numpy(x[i:i + 16]).unsqueeze(1), rt.device, rt.amp_dtype,
                                          False) for i in range(0, len(x), 16)])
    if out.shape[-1] != syn.shape[-1]:
        out = np.stack([np.asarray(Image.fromarray(a).resize(syn.shape[1:][::-1])) for a in out])
    return out


def _release_stamp(release: Path) -> dict:
    """Name, version and ``data_sha256`` (the fingerprint of its shards) of the release audited."""
    from ..release.package import data_fingerprint

    manifest = ReleaseFolder(release).manifest()
    return {"name": manifest.get("name"), "version": manifest.get("version"),
            "data_sha256": manifest.get("data_sha256") or data_fingerprint(manifest)}


def audit(release: ReleaseFolder | str | Path, inputs: SplitData, cfg: AuditConfig, rt: Runtime | None,
          out_dir: str | Path, translators: dict[str, TranslatorRun] | None = None, *, embedding=None,
          benchmark: BenchmarkFolder | None = None, encoder_cache: str | Path | None = None,
          record_paths: bool = False, home: str | Path | None = None,
          externals: dict[str, str] | None = None) -> AuditResult:
    """Audit ``release`` (its private mapping included: ``ReleaseFolder(root, private)``) against the
    records, split and plan it was made from (``inputs``); returns the result (audit.json's content,
    stamped with the release's ``data_sha256``). Opens no work folder: ``pipeline.audit_in`` reads one
    for it.

    ``translators`` {task: run}: the runs whose private reverse generators the inverse-recovery test
    uses (a task without one: the test is left out). ``rt``: the command's Runtime, where the reverse
    generators run (None: ``cfg.device`` and ``cfg.precision``). ``embedding``: instead of
    ``cfg.embedding``; ``auto`` takes ``benchmark``'s own classifier when it was run on this split
    (:func:`embedding_specs`). ``encoder_cache``: where the fidelity section's chest X-ray encoder is
    kept between audits (None: trained each time). Set-up (:func:`_sample`, :func:`_real_sets`), the
    measures (:func:`_inverse_images`, :func:`_privacy`, :func:`_quality`), then the summary and the
    files (:func:`_write`) into ``out_dir``. Absolute local paths (a ``classifier:PATH`` embedding, the
    Inception weights) are recorded relative to ``out_dir`` or ``home`` (the work folder), or by name
    and sha256, unless ``record_paths`` (:func:`~cxrsynth.core.paths.shareable`). ``externals``
    {name: folder}: real COVID-19 X-rays of other collections, a third fidelity baseline (by name only).
    """
    if not isinstance(inputs, SplitData):  # the signature before the stage took artefacts: audit(release, workdir)
        raise TypeError(f"audit takes the records, split and plan as SplitData, not {type(inputs).__name__}; "
                        "for a work folder call cxrsynth.pipeline.audit_in(workdir, release, ...)")
    folder = as_release(release)
    release, out = folder.root, Path(out_dir)
    rt = rt or runtime_of(cfg)
    if not folder.has_mapping():
        raise DataNotFoundError("the private id mapping is needed to audit linkage", folder.mapping_path,
                                "pass --private DIR (the folder `cxrsynth release` wrote beside the release)")
    mapping = {m["id"]: m["record_id"] for m in folder.mapping()}
    spec = embedding if embedding is not None else cfg.embedding
    modules = {k: make_embedding(s) for k, s in embedding_specs(spec, benchmark, inputs.assignment_sha256).items()}
    names = {k: getattr(m, "name", type(m).__name__) for k, m in modules.items()}
    rng = np.random.default_rng(cfg.seed)
    timing: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(step: str) -> None:
        now = time.perf_counter()
        timing[step] = round(timing.get(step, 0.0) + now - clock[0], 2)
        log.info(f"stage audit {step.replace('_', ' ')}: done in {duration(now - clock[0])}")  # off a TTY too
        clock[0] = now

    sample = _sample(release, cfg, rng)
    lap("read_release")
    sets = _real_sets(inputs, mapping, sample, cfg, rng)
    lap("load_real_images")
    inv_px, inv_index = _inverse_images(translators or {}, sample, sets, rt)
    lap("inverse_generator")
    fidelity = _fidelity(inputs, modules, sample, mapping, cfg, encoder_cache, externals) if cfg.fidelity else None
    lap("fidelity")  # first: its probe says whether the distance verdicts can be read as privacy evidence
    priv = _privacy(modules, names, sets, inv_px, inv_index, sample, cfg, lap, fidelity)
    lap("privacy_measures")
    quality, n_covid = _quality(modules, sets, sample, cfg, rng)
    lap("quality")
    order, n_priv = sample.order, sample.n_priv
    flagged = [v["name"] for v in priv.summary if v["flagged"]]
    for c, pc in priv.per_config.items():
        flagged += [f"{n} ({c})" for n in pc["flagged"] if n not in flagged]
    low = [f"{v['name']}: {v['verdict']}" for v in priv.summary if v["significant"] and not v["flagged"]]
    refs = "; ".join(f"{c} against {r['n']:,} held-out {r['label']} images" for c, r in sets.references.items())
    population = sum(len(ids) for ids in order.values())
    sampled = any(n_priv[c] < len(order[c]) for c in order)
    text = (f"Audited {len(sets.syn_ids):,} synthetic images"
            + (f" (a seeded random sample of the {population:,})" if sampled else "")
            + f" against {len(sets.pool_ids):,} real training images and {len(sets.held_ids):,} new real images "
              f"(held-out, patient-disjoint; {refs}), with the embeddings: {'; '.join(names.values())}. Each "
              "verdict is calibrated against new real images of the label the images were translated from, the "
              "same procedure on them (the null), or chance, and taken on the worse embedding. "
            + (f"**Flagged: {', '.join(flagged)}.** Do not treat these images as anonymous." if flagged else
               "No test flagged the images; this is evidence, not proof, of anonymity (other attacks exist).")
            + (f" Significant but under the margin: {'; '.join(low)}." if low else ""))
    result = {
        "kind": "cxrsynth.audit", "code_version": __version__, "config": to_dict(cfg), "release": str(release.name),
        # the stamp a card checks before it shows these results: which images were audited
        "audited_release": _release_stamp(release),
        "embedding": "; ".join(names.values()), "embeddings": list(names.values()),
        "counts": {c: len(ids) for c, ids in order.items()},
        "sampled": {c: {"privacy": n_priv[c], "inverse": sample.n_inv[c] if inv_px is not None else 0,
                        "quality": sample.n_qual[c]} for c in order},
        "pools": {"train": len(sets.train_all), "searched": len(sets.pool_ids), "heldout_available": len(sets.held_all),
                  "heldout": len(sets.held_ids), "heldout_dropped_shared_patient": len(sets.not_train) - len(sets.held_all),
                  "heldout_reference": sets.references,
                  "covid_translator_train": len(sets.ct_ids), "covid_heldout": len(sets.ch_ids), "covid_real": n_covid},
        "privacy": {"overall": priv.overall, "per_config": priv.per_config, "closer_to_training_share": priv.closer},
        "quality": quality,
        **({"fidelity": fidelity} if fidelity else {}),
        "thresholds": {"alpha": ALPHA, "tests": list(THRESHOLDS)},
        "summary": {"text": text, "verdicts": priv.summary, "flagged": flagged, "caveat": priv.caveat,
                    **({"fidelity": F.sentence(fidelity)} if fidelity else {})},
        "timing": timing,
        "runtime": {"device": str(rt.device), "precision": rt.precision},  # of the reverse generators
    }
    result = shareable(_jsonable(result), (out,) + ((Path(home),) if home is not None else ()), record_paths)
    validate(result, "audit")
    _write(AuditFolder(out), result, sets, priv, modules, names, cfg)
    lap("write")
    result["timing"] = timing
    return AuditResult(result, write_json(AuditFolder(out).json, result))


@dataclass
class _Sample:
    """The synthetic images read: a seeded order per config, how many of each config go to the privacy
    measures, the inverse generator and the quality measures, and their pixels."""

    order: dict[str, list[str]]
    n_priv: dict[str, int]
    n_qual: dict[str, int]
    n_inv: dict[str, int]
    pixels: dict[str, np.ndarray]
    size: int


def _sample(release: Path, cfg: AuditConfig, rng: np.random.Generator) -> _Sample:
    index = release_index(release)
    order = {c: [ids[j] for j in rng.permutation(len(ids))] for c, ids in sorted(index.items())}
    n_priv = {c: _take(cfg.sample, len(ids)) for c, ids in order.items()}
    n_qual = {c: _take(cfg.quality_sample, len(ids)) for c, ids in order.items()}
    n_inv = {c: min(_take(cfg.inverse_sample, len(ids)), n_priv[c]) for c, ids in order.items()}
    if cfg.exclude_closest > 0 and any(n_priv[c] < len(ids) for c, ids in order.items()):
        raise ConfigError("exclude_closest needs every synthetic image scored, but the audit samples them",
                          f"sample={cfg.sample}", "run the audit with --set sample=null to write exclude_ids.txt")
    pixels = read_release_images(release, {i for c, ids in order.items() for i in ids[:max(n_priv[c], n_qual[c])]})
    return _Sample(order, n_priv, n_qual, n_inv, pixels, next(iter(pixels.values())).shape[-1])


@dataclass
class _RealSets:
    """The privacy sample (``syn_*``; ``src``: each image's source, as an index into the pool) and the
    real images it is compared with: the training pool searched, new (held-out) real images, and the
    real COVID-19 images the translators learnt from (``ct``) or never saw (``ch``)."""

    records: dict
    train_all: list[str]
    not_train: list[str]
    held_all: list[str]
    held_ids: list[str]
    pool_ids: list[str]
    syn_ids: list[str]
    syn_cfg: np.ndarray
    src: np.ndarray
    syn_px: np.ndarray
    pool_px: np.ndarray
    held_px: np.ndarray
    ct_ids: list[str]
    ch_ids: list[str]
    ct_px: np.ndarray
    ch_px: np.ndarray
    references: dict  # config -> {"label", "n"}: the new real images each config is held against
    refs: dict  # config -> {"held": indices into held_ids, "pseudo_source": a random source of the config each}


def _load(records: dict, ids: list[str], size: int) -> np.ndarray:
    """The real images ``ids``, decoded at ``size`` (uint8, N x size x size)."""
    if not ids:
        return np.zeros((0, size, size), np.uint8)
    return np.stack([load_canonical(records[i].path, size) for i in ids])


def _real_sets(inputs: SplitData, mapping: dict[str, str], sample: _Sample, cfg: AuditConfig,
               rng: np.random.Generator) -> _RealSets:
    records = {r.record_id: r for r in inputs.grouped if r.has_pixels}  # the split's patients (--patient-map too)
    assign = inputs.assign
    plan = Plan(inputs.need_plan("the audit's copy test (the real COVID-19 images the translators learnt from)"))
    patient = lambda r: r.patient_group or f"{r.source}:{r.patient_id}"

    train_all = sorted(i for i in records if assign.get(i) == "train")
    train_patients = {patient(records[i]) for i in train_all}
    not_train = sorted(i for i in records if assign.get(i) not in (None, "train"))
    held_all = [i for i in not_train if patient(records[i]) not in train_patients]
    # label-matched references: each config is held against new real images of its sources' label
    # (or held-out COVID-19 with heldout_reference=covid), never a mix of labels
    ref_label = {c: (SOURCE_LABEL[c] if cfg.heldout_reference == "source-label" else "covid") for c in sample.order}
    wanted = [i for i in held_all if records[i].label in set(ref_label.values())]
    held_ids = sorted(wanted[j] for j in rng.permutation(len(wanted))[:_take(cfg.heldout, len(wanted))])

    syn_ids, syn_cfg = [], []
    for c, ids in sample.order.items():
        syn_ids += ids[:sample.n_priv[c]]
        syn_cfg += [c] * sample.n_priv[c]
    missing = [i for i in syn_ids if mapping.get(i) not in records or assign.get(mapping.get(i)) != "train"]
    if missing:
        raise DataNotFoundError(f"{len(missing)} synthetic images have no train-split source in the records audited",
                                missing[0], "audit with the work folder the release was made from")
    sources = list(dict.fromkeys(mapping[i] for i in syn_ids))
    others = sorted(set(train_all) - set(sources))
    extra = _take(None if cfg.pool is None else max(0, cfg.pool - len(sources)), len(others))
    pool_ids = sorted(sources + [others[j] for j in rng.permutation(len(others))[:extra]])
    pos = {rid: k for k, rid in enumerate(pool_ids)}
    src = np.array([pos[mapping[i]] for i in syn_ids], dtype=np.int64)
    syn_px = np.stack([sample.pixels[i] for i in syn_ids])
    ct_ids = sorted(plan.translator_train("covid") & set(records))
    ch_ids = [i for i in held_all if records[i].label == "covid"]
    size = sample.size
    syn_cfg = np.array(syn_cfg)
    refs, references = {}, {}
    for c, label in ref_label.items():
        held = np.array([k for k, i in enumerate(held_ids) if records[i].label == label], dtype=np.int64)
        own = src[syn_cfg == c]  # the null's pseudo-sources are drawn as the real sources were: this config's
        pseudo = rng.choice(own, len(held)) if len(own) else np.zeros(0, np.int64)
        refs[c] = {"held": held, "pseudo_source": pseudo.astype(np.int64)}
        references[c] = {"label": label, "n": int(len(held))}
    return _RealSets(records, train_all, not_train, held_all, held_ids, pool_ids, syn_ids, syn_cfg, src,
                     syn_px, _load(records, pool_ids, size), _load(records, held_ids, size), ct_ids, ch_ids,
                     _load(records, ct_ids, size), _load(records, ch_ids, size), references, refs)


def _inverse_images(translators: dict[str, TranslatorRun], sample: _Sample, sets: _RealSets,
                    rt: Runtime) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The sampled synthetic images put back through the private reverse generators of ``translators``
    ({task: run}; the inverse recovery test), and their positions in the privacy sample; (None, None)
    when a generator is missing."""
    order, n_inv, syn_cfg = sample.order, sample.n_inv, sets.syn_cfg
    inv_index = np.concatenate([np.flatnonzero(syn_cfg == c)[:n_inv[c]] for c in order]).astype(np.int64)
    inv_parts = {c: _inverse(translators.get(CONFIG_TASK[c]), sets.syn_px[np.flatnonzero(syn_cfg == c)[:n_inv[c]]], rt)
                 for c in order}
    if all(v is not None for c, v in inv_parts.items() if n_inv[c]) and len(inv_index):
        return np.concatenate([inv_parts[c] for c in order if n_inv[c]]), inv_index
    return None, None


@dataclass
class _Privacy:
    feats: dict
    measures: dict
    overall: dict
    summary: list
    per_config: dict
    closer: dict
    caveat: str | None


def _privacy(modules: dict, names: dict, sets: _RealSets, inv_px, inv_index, sample: _Sample,
             cfg: AuditConfig, lap, fidelity: dict | None = None) -> _Privacy:
    """Per-image measures under each embedding, their tests overall and per config, and the verdicts
    (``lap("embed")`` is called once the embeddings are made, for the timing table). ``fidelity``: the
    fidelity section, whose probe puts a caveat beside the distance verdicts when the images sit off
    the real-image manifold (:func:`off_manifold`)."""
    feats = {}
    for k, m in modules.items():
        feats[names[k]] = {"syn": embed(m, sets.syn_px), "pool": embed(m, sets.pool_px), "held": embed(m, sets.held_px),
                           "ct": embed(m, sets.ct_px), "ch": embed(m, sets.ch_px),
                           "inv": embed(m, inv_px) if inv_px is not None else None}
    lap("embed")
    measures = per_image(sets.syn_px, sets.src, sets.pool_px, sets.held_px, feats, sets.ct_px, sets.ch_px, inv_px,
                         inv_index, cfg.shortlist, sets.syn_cfg, sets.refs)
    overall = {e: evaluate(m, cfg.bootstrap, cfg.seed) for e, m in measures.items()}
    caveat = off_manifold((fidelity or {}).get("overall"))
    summary = verdicts(overall, sum(len(ids) for ids in sample.order.values()), caveat)
    per_config = {}
    for c in sample.order:
        mask = sets.syn_cfg == c
        t = {e: evaluate(_select(m, mask), cfg.bootstrap, cfg.seed) for e, m in measures.items()}
        v = verdicts(t, len(sample.order[c]), off_manifold(((fidelity or {}).get("per_config") or {}).get(c)))
        per_config[c] = {"tests": t, "flagged": [x["name"] for x in v if x["flagged"]],
                         "significant": [x["name"] for x in v if x["significant"] and not x["flagged"]],
                         "caveat": next((x["caveat"] for x in v if x.get("caveat")), None)}
    closer = {e: P.closer_to_training(f["syn"], f["pool"], f["held"], cfg.seed) for e, f in feats.items()}
    return _Privacy(feats, measures, overall, summary, per_config, closer, caveat)


def _quality(modules: dict, sets: _RealSets, sample: _Sample, cfg: AuditConfig,
             rng: np.random.Generator) -> tuple[dict, int]:
    """Synthetic vs real COVID-19 (and the real reference pairs) on equal-size repeated subsamples;
    returns the quality section and the number of real COVID-19 images used."""
    order, n_qual, records = sample.order, sample.n_qual, sets.records
    qual_module = modules.get("classifier", next(iter(modules.values())))
    extractor, q_note = Q.make_extractor(cfg.quality_features, qual_module, cfg.inception_weights)
    ext_name = getattr(extractor, "name", type(extractor).__name__)
    covid_ids = sorted(i for i in records if records[i].label == "covid")  # every real COVID-19 image, any split
    real_covid = _load(records, covid_ids, sample.size)
    f_covid = embed(extractor, real_covid)
    f_syn = {c: embed(extractor, np.stack([sample.pixels[i] for i in order[c][:n_qual[c]]])) for c in order}
    f_all = np.concatenate(list(f_syn.values()))
    qkw = {"n_max": cfg.quality_n, "repeats": cfg.quality_repeats, "seed": cfg.seed, "k": cfg.prdc_k}
    labels = {lab: [k for k, i in enumerate(sets.pool_ids + sets.held_ids) if records[i].label == lab]
              for lab in ("normal", "pneumonia")}
    real_other = np.concatenate([sets.pool_px, sets.held_px])
    quality = {
        "extractor": ext_name, "note": q_note,
        "synthetic_vs_real_covid": Q.compare(f_covid, f_all, **qkw),
        "per_config": {c: Q.compare(f_covid, f, **qkw) for c, f in f_syn.items()},
        "reference_pairs": {f"{lab}_vs_covid": Q.compare(
            f_covid, embed(extractor, real_other[rng.permutation(idx)[:_take(cfg.quality_sample, len(idx))]]), **qkw)
            for lab, idx in labels.items() if idx},
        "pixels": {"synthetic": Q.pixel_stats(sets.syn_px),
                   "real_covid": Q.pixel_stats(real_covid) if len(real_covid) else None},
    }
    return quality, len(covid_ids)


def _fidelity(inputs: SplitData, modules: dict, sample: _Sample, mapping: dict[str, str], cfg: AuditConfig,
              encoder_cache: str | Path | None, externals: dict[str, str] | None = None) -> dict:
    """The fidelity section (:mod:`cxrsynth.stages.audit.fidelity`) of the quality sample, overall and per
    config, in pixels, the chest X-ray encoder (kept at ``encoder_cache``), the audit's classifier
    embedding when it has one, and Inception when its file is on disk."""
    ids = [i for c in sample.order for i in sample.order[c][:sample.n_qual[c]]]
    configs = [c for c in sample.order for _ in range(sample.n_qual[c])]
    spaces, notes = F.feature_spaces(inputs, classifier=None, inception_weights=cfg.inception_weights,
                                     encoder_epochs=cfg.fidelity_encoder_epochs, seed=cfg.seed,
                                     encoder_cache=encoder_cache)
    if "classifier" in modules:
        spaces["classifier"] = modules["classifier"]
    else:
        notes["classifier"] = "the audit has no classifier embedding (--embedding classifier:PATH): not measured"
    fcfg = F.FidelityConfig(n_max=cfg.quality_n, probe_bootstrap=cfg.bootstrap,
                            encoder_epochs=cfg.fidelity_encoder_epochs, seed=cfg.seed)
    external = F.external_real(inputs, externals, sample.size) if externals else None
    return F.score(inputs, np.stack([sample.pixels[i] for i in ids]), [mapping[i] for i in ids], configs, fcfg,
                   (spaces, notes), external)


def _write(files: AuditFolder, result: dict, sets: _RealSets, priv: _Privacy, modules: dict, names: dict,
           cfg: AuditConfig) -> None:
    """audit.json, per_image.csv, exclude_ids.txt (with ``exclude_closest``), figures, report_section.html."""
    from . import figures

    files.root.mkdir(parents=True, exist_ok=True)
    write_json(files.json, result)
    rows = _rows(sets.syn_ids, sets.syn_cfg, priv.measures, modules, names)
    with atomic_write(files.per_image) as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    if cfg.exclude_closest > 0:
        worst = sorted(rows, key=lambda r: (r["linkage_rank"], -r["margin"]))[: int(round(cfg.exclude_closest * len(rows)))]
        with atomic_write(files.exclude_ids) as fh:
            fh.write("".join(f"{r['id']}\n" for r in worst))
    first = next(iter(priv.measures.values()))
    figs = figures.write_all(files.figures, first, sets.syn_px, sets.pool_px, sets.src)
    if result.get("fidelity"):
        figs.append(F.spectrum_figure(result["fidelity"], files.figures / "spectrum.png"))
    figures.report_section(files.report_section, result, figs)


def _rows(syn_ids, syn_cfg, measures, modules, names) -> list[dict]:
    """per_image.csv: one row per audited image; ``linkage_rank`` and ``margin`` are the worst (smallest
    rank, largest margin) over the embeddings, then each embedding's own columns."""
    rows = []
    first = next(iter(measures.values()))
    inv_at = {}
    if "inverse" in first:
        inv_at = {int(j): k for k, j in enumerate(first["inverse_index"])}
    r5 = lambda x: None if x is None or not np.isfinite(x) else round(float(x), 5)
    for k, i in enumerate(syn_ids):
        row = {"id": i, "config": str(syn_cfg[k]),
               "linkage_rank": min(float(measures[names[e]]["linkage"]["ranks"][k]) for e in modules),
               "margin": max(r5(measures[names[e]]["similarity"]["margin"][k]) for e in modules),
               "ssim_source": r5(first["similarity"]["ssim_source"][k]),
               "psnr_source": r5(first["similarity"]["psnr_source"][k])}
        for e in modules:
            m = measures[names[e]]
            row.update({f"{e}_linkage_rank": float(m["linkage"]["ranks"][k]),
                        f"{e}_ssim_best_other": r5(m["similarity"]["ssim_best_other"][k]),
                        f"{e}_dcr": r5(m["syn"]["dcr"][k]), f"{e}_nndr": r5(m["syn"]["nndr"][k]),
                        f"{e}_authentic": bool(m["syn"]["authentic"][k]),
                        f"{e}_max_ssim_covid_train": r5(m["copy_syn"][k]) if "copy_syn" in m else None,
                        f"{e}_inverse_ssim_source": (r5(m["inverse"]["ssim_source"][inv_at[k]])
                                                     if "inverse" in m and k in inv_at else None)})
        rows.append(row)
    return rows


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return None  # per-image arrays go to per_image.csv, not audit.json
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x
