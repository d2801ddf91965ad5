"""Shortcut controls: can the benchmark tell "detects COVID-19" from "detects the source"?

Every COVID-19 image here is a publication figure from the COVID-19 Image Data Collection and every
negative an NIH or RSNA image, so a classifier can score well by recognising the collection (DeGrave
et al. 2021, Nature Machine Intelligence 3:610). A test set drawn from the same sources cannot reveal
that. These controls can:

- **same-source negatives**: the collection's own non-COVID X-rays (other pneumonias, 'No Finding'),
  scored by every model. A model that detects the source calls them COVID-19: a high false-positive
  rate at the operating threshold, and an AUROC of COVID-19 vs these negatives near 0.5.
- **external sets** (``--external NAME=DIR``, any folder ``cxrsynth ingest`` reads): scored by every
  model with the test set's metrics and intervals; images that duplicate a training image are dropped
  and counted.
- **source probe**: with the label held fixed (e.g. pneumonia), a small classifier (logistic
  regression on 32x32 pixels, cross-validated by patient) tells the collection from NIH/RSNA. An AUROC
  near 1 means the sources differ in ways any model can learn, whatever the label.
- **real-vs-synthetic probe** (a classifier two-sample test): the same probe between real COVID-19
  training images and synthetic ones. Near 0.5: indistinguishable to it; near 1: the synthetic images
  carry their own signature (NIH/RSNA acquisition, the translator's texture).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInputError, ConfigError
from ..images import decode, thumbnail
from ..layout import WorkLayout
from ..paths import read_json
from ..records import Record, read_records
from ..sources.base import read_csv_rows
from ..sources.covid_collection import NAME as COLLECTION
from ..sources.covid_collection import is_covid
from .. import metrics as M
from ..probe import PROBE_MAX, PROBE_SIDE, probe, probe_pixels
from ..probe import cap as _cap
from ..vocab import CONFIGS, TASK_LABELS
from .arms import EvalItem



# -- same-source negatives --------------------------------------------------------------------------

def same_source_negatives(records: list[Record]) -> tuple[list[EvalItem], list[str], dict]:
    """The COVID-19 collection's non-COVID X-rays whose files are present (label 0), their findings,
    and a count report.

    They are read from the collection's ``metadata.csv`` (the record table holds its COVID-19 rows only).
    """
    roots = sorted({r.source_root for r in records if r.source == COLLECTION})
    items, finding_of, findings, missing = [], [], Counter(), 0
    for root in roots:
        meta = Path(root) / "metadata.csv"
        _, rows = read_csv_rows(meta)
        for row in rows:
            finding, filename = row.get("finding", ""), row.get("filename", "")
            if not finding or not filename or is_covid(finding) or row.get("modality", "").upper() == "CT":
                continue
            path = Path(root) / (row.get("folder") or "images") / filename
            if not path.is_file():
                missing += 1
                continue
            findings[finding] += 1
            finding_of.append(finding)
            items.append(EvalItem(str(path), 0, f"{COLLECTION}:{row.get('patientid', filename)}",
                                  f"same-source:{filename}"))
    return items, finding_of, {"n": len(items), "by_finding": dict(findings), "missing_files": missing,
                   "collections": [Path(r).name for r in roots]}


def same_source_metrics(covid_scores, covid_patients, neg_scores, neg_patients, threshold: float,
                        bootstrap: int, seed: int) -> dict:
    """FPR of the same-source negatives at ``threshold`` (Wilson interval) and AUROC of the COVID-19
    test images against them (patient bootstrap interval)."""
    neg = np.asarray(neg_scores, dtype=float)
    fp = int((neg >= threshold).sum())
    y = np.r_[np.ones(len(covid_scores)), np.zeros(len(neg))].astype(int)
    s = np.r_[np.asarray(covid_scores, dtype=float), neg]
    pats = list(covid_patients) + list(neg_patients)
    return {"n_negatives": len(neg), "n_covid": len(covid_scores), "false_positives": fp,
            "fpr": fp / len(neg) if len(neg) else None, "fpr_wilson95": M.wilson(fp, len(neg)),
            "auroc": M.auroc(y, s), "auroc_ci95": M.bootstrap_auroc(y, s, pats, bootstrap, seed) if bootstrap else None}


# -- external sets ----------------------------------------------------------------------------------

@dataclass
class External:
    name: str
    root: str
    items: dict[str, list[EvalItem]]  # per task
    report: dict


EXTERNAL_NAME = re.compile(r"[A-Za-z0-9._-]+")


def parse_externals(specs) -> dict[str, str]:
    """``["NAME=DIR", ...]`` -> {NAME: DIR}; a clear error for a malformed or repeated name."""
    out: dict[str, str] = {}
    for spec in specs or ():
        name, sep, folder = str(spec).partition("=")
        if not sep or not name or not folder:
            raise ConfigError("an external set is NAME=DIR", spec, "e.g. --external site-b=/data/site-b")
        if not EXTERNAL_NAME.fullmatch(name):  # it becomes a column of tables.md / tables.csv and a JSON key
            raise ConfigError("an external set's NAME may hold only letters, digits, '.', '_' and '-'", name,
                              "e.g. --external site-b=/data/site-b")
        if name in out:
            raise ConfigError("external set named twice", name)
        if not Path(folder).is_dir():
            raise BadInputError("external set folder not found", folder)
        out[name] = folder
    return out


def _training_duplicates(ext: list[Record], train: list[Record], max_hamming: int, max_zmad: float) -> dict[str, str]:
    """External record id -> the training record it duplicates (same pixels, or dhash close and
    thumbnails alike: the ingest's rule)."""
    train = [r for r in train if r.has_pixels and r.dhash is not None]
    if not train:
        return {}
    by_sha = {r.pixel_sha256: r for r in train}
    th = np.array([r.dhash for r in train], dtype=np.uint64)
    out, thumbs = {}, {}

    def thumb(r: Record):
        if r.record_id not in thumbs:
            thumbs[r.record_id] = thumbnail(decode(r.path, 256).pixels).astype(np.float32)
        return thumbs[r.record_id]

    for e in ext:
        if e.pixel_sha256 in by_sha:
            out[e.record_id] = by_sha[e.pixel_sha256].record_id
            continue
        near = np.nonzero(np.bitwise_count(th ^ np.uint64(e.dhash)) <= max_hamming)[0]
        for j in near:
            if float(np.abs(thumb(e) - thumb(train[j])).mean()) <= max_zmad:
                out[e.record_id] = train[j].record_id
                break
    return out


def load_external(name: str, folder: str, workdir: Path) -> External:
    """Ingest ``folder`` (any format ``cxrsynth ingest`` reads), drop images duplicating a training image."""
    from ..ingest import IngestConfig, ingest

    icfg = IngestConfig()
    res = ingest([folder], icfg)
    layout = WorkLayout(workdir)
    assign = read_json(layout.splits)["assignments"]
    train = [r for r in read_records(layout.records) if assign.get(r.record_id) == "train"]
    recs = [r for r in res.records if r.has_pixels]
    dups = _training_duplicates(recs, train, icfg.dedupe_max_hamming, icfg.dedupe_max_zmad)
    kept = [r for r in recs if r.record_id not in dups]
    items = {}
    for task, (neg, pos) in TASK_LABELS.items():
        items[task] = [EvalItem(str(r.path), int(r.label == pos), f"{name}:{r.patient_group or r.patient_id}",
                                r.record_id) for r in kept if r.label in (neg, pos)]
    report = {"folder": str(folder), "images": len(res.records), "with_pixels": len(recs),
              "label_only": len(res.records) - len(recs), "duplicates_of_training_dropped": len(dups),
              "within_set_duplicates_dropped": res.report["totals"]["duplicates_dropped"],
              "bad_files": res.report["totals"]["bad_files"], "by_label": dict(Counter(r.label for r in kept)),
              "per_task": {t: {"negatives": sum(i.label == 0 for i in v), "covid": sum(i.label == 1 for i in v)}
                           for t, v in items.items()}}
    return External(name, str(folder), items, report)


# -- probes -----------------------------------------------------------------------------------------

def _pixels(paths: list[str], size: int = PROBE_SIDE) -> np.ndarray:
    """Real images decoded at ``size`` (the synthetic images' size when they are compared with them),
    then brought to the probe's 32 px by the probe's one path (:func:`cxrsynth.probe.probe_pixels`)."""
    return probe_pixels(np.stack([decode(p, size).pixels for p in paths]))


def _pil_pixels(images) -> tuple[np.ndarray, int]:
    """Synthetic images (PIL, as the release stores them, one size) by the same path; and their size."""
    arrays = np.stack([np.asarray(im.convert("L"), dtype=np.uint8) for im in images])
    return probe_pixels(arrays), int(arrays.shape[-1])


def source_probes(records: list[Record], same_source: list[EvalItem], findings: list[str], bootstrap: int) -> dict:
    """Per label held fixed: the COVID-19 collection's images of that label vs NIH/RSNA images of it.

    The collection's pneumonias are its non-COVID findings other than 'No Finding'; its normals are 'No
    Finding'. Only labels with at least 5 images on each side are probed (the rest are listed as skipped).
    """
    coll = {"pneumonia": [i for i, f in zip(same_source, findings) if f != "No Finding"],
            "normal": [i for i, f in zip(same_source, findings) if f == "No Finding"]}
    out = {}
    for label, mine in coll.items():
        others = [r for r in records if r.has_pixels and r.label == label and r.source != COLLECTION]
        if len(mine) < 5 or len(others) < 5:
            out[label] = {"skipped": f"{len(mine)} collection and {len(others)} NIH/RSNA images (need 5 each)"}
            continue
        a = [others[i] for i in _cap(len(others), PROBE_MAX, 0)]
        b = [mine[i] for i in _cap(len(mine), PROBE_MAX, 1)]
        res = probe(_pixels([str(r.path) for r in a]), _pixels([i.path for i in b]),
                    [r.patient_group or r.patient_id for r in a], [i.patient for i in b], bootstrap)
        out[label] = res | {"a": f"NIH/RSNA {label}", "b": f"COVID-19 collection {label} (non-COVID findings)"}
    return out


def real_vs_synthetic(records: list[Record], assign: dict, release, bootstrap: int) -> dict:
    """Per synthetic config: real COVID-19 training images (0) vs that config's synthetic images (1)."""
    from ..loader import _synthetic

    real = [r for r in records if r.has_pixels and r.label == "covid" and assign.get(r.record_id) == "train"]
    real = [real[i] for i in _cap(len(real), PROBE_MAX, 0)]
    if len(real) < 5:
        return {"skipped": f"{len(real)} real COVID-19 training images with pixels (need 5)"}
    x_real: dict[int, np.ndarray] = {}  # per synthetic size: real images decoded at it, then shrunk alike
    out = {}
    for config in CONFIGS:
        ds = _synthetic(release, config)
        idx = _cap(len(ds), PROBE_MAX, 2)
        rows = ds.select(idx.tolist())
        x_syn, size = _pil_pixels(row["image"] for row in rows)
        if size not in x_real:
            x_real[size] = _pixels([str(r.path) for r in real], size)
        # a synthetic image's "patient" is the image itself: its source patient is private
        out[config] = probe(x_real[size], x_syn, [r.patient_group or r.patient_id for r in real],
                            [f"synthetic:{row['id']}" for row in rows], bootstrap) | {
            "a": "real COVID-19 (train)", "b": f"synthetic COVID-19 ({config})"}
    return out
