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

from collections import Counter
from pathlib import Path

import numpy as np

from ..images import decode
from ..records import Record
from ..sources.base import read_csv_rows
from ..sources.covid_collection import NAME as COLLECTION
from ..sources.covid_collection import is_covid
from .. import metrics as M
from ..probe import PROBE_MAX, PROBE_SIDE, probe
from ..probe import cap as _cap
from ..vocab import CONFIGS, TASK_LABELS
from .arms import EvalItem
from .external import External, load_external, parse_externals  # noqa: F401  (external sets live in external.py)



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


# -- probes -----------------------------------------------------------------------------------------

def _pixels(paths: list[str]) -> np.ndarray:
    return np.stack([decode(p, PROBE_SIDE).pixels.astype(np.float32).ravel() / 255.0 for p in paths])


def _pil_pixels(images) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(im.convert("L").resize((PROBE_SIDE, PROBE_SIDE), Image.Resampling.BILINEAR),
                                dtype=np.float32).ravel() / 255.0 for im in images])


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
    x_real = _pixels([str(r.path) for r in real])
    out = {}
    for config in CONFIGS:
        ds = _synthetic(release, config)
        idx = _cap(len(ds), PROBE_MAX, 2)
        rows = ds.select(idx.tolist())
        x_syn = _pil_pixels(row["image"] for row in rows)
        # a synthetic image's "patient" is the image itself: its source patient is private
        out[config] = probe(x_real, x_syn, [r.patient_group or r.patient_id for r in real],
                            [f"synthetic:{row['id']}" for row in rows], bootstrap) | {
            "a": "real COVID-19 (train)", "b": f"synthetic COVID-19 ({config})"}
    return out
