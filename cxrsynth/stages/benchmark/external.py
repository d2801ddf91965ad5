"""External test sets (``--external NAME=DIR``): images from elsewhere, scored by every model.

An external set is worth something only if it is (1) not empty and (2) really external. So every image
left out is counted by reason (``bad_files``: undecodable, truncated or bomb-sized; ``outside_source``:
a path or link leading out of the folder; ``missing_files``; ``problems``: broken metadata rows), and
images that duplicate *any* image of the work folder's split (train, validation or test) are dropped and
counted per split: a copy of an internal test image scored as "external" would only re-score the test set.
A set left with no image for a task, or with one class only, gets a notice that every output prints.

A set of positives only (the Hannover repository: COVID-19 radiographs from one hospital's clinical
routine) measures sensitivity at each arm's operating point, with a patient-level bootstrap interval
(the patients are the unit: one patient has several films), beside the internal sensitivity.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...measure import metrics as M
from ...core.errors import BadInputError, ConfigError
from ...data.images import decode, thumbnail
from ...data.records import Record
from ...core.vocab import TASK_LABELS
from .arms import EvalItem
from .fit import score

SPLITS = ("train", "validation", "test")
#: the per-reason counts of images an external set lost, in the order the outputs list them
LOST = ("bad_files", "outside_source", "missing_files", "problems", "duplicates_of_training_dropped",
        "duplicates_of_validation_dropped", "duplicates_of_test_dropped", "within_set_duplicates_dropped")


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


def internal_duplicates(ext: list[Record], internal: list[Record], max_hamming: int, max_zmad: float) -> dict[str, str]:
    """External record id -> the internal record it duplicates (same pixels, or dhash close and
    thumbnails alike: the ingest's rule)."""
    internal = [r for r in internal if r.has_pixels and r.dhash is not None]
    if not internal:
        return {}
    by_sha = {r.pixel_sha256: r for r in internal}
    th = np.array([r.dhash for r in internal], dtype=np.uint64)
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
            if float(np.abs(thumb(e) - thumb(internal[j])).mean()) <= max_zmad:
                out[e.record_id] = internal[j].record_id
                break
    return out


def load_external(name: str, folder: str, data) -> External:
    """Ingest ``folder`` (any format ``cxrsynth ingest`` reads, the Hannover layout included) and drop
    images duplicating an image of the split, counted per split; every other loss is counted by reason.
    ``data``: the records and split (:class:`~.inputs.SplitData`)."""

    from ..ingest import IngestConfig, ingest

    icfg = IngestConfig()
    res = ingest([folder], icfg, external=True)
    assign = data.assign
    internal = [r for r in data.records if assign.get(r.record_id) in SPLITS]
    split_of = {r.record_id: assign[r.record_id] for r in internal}
    recs = [r for r in res.records if r.has_pixels]
    dups = internal_duplicates(recs, internal, icfg.dedupe_max_hamming, icfg.dedupe_max_zmad)
    dup_splits = Counter(split_of[v] for v in dups.values())
    kept = [r for r in recs if r.record_id not in dups]
    items = {}
    for task, (neg, pos) in TASK_LABELS.items():
        items[task] = [EvalItem(str(r.path), int(r.label == pos), f"{name}:{r.patient_group or r.patient_id}",
                                r.record_id) for r in kept if r.label in (neg, pos)]
    tot = res.report["totals"]
    formats = sorted({c["format"] for c in res.report["collections"].values()})
    report = {"folder": str(folder), "format": formats[0] if len(formats) == 1 else formats,
              "listed": len(res.records) + tot["bad_files"] + tot["outside_source"] + tot["duplicates_dropped"],
              "images": len(res.records), "with_pixels": len(recs), "label_only": len(res.records) - len(recs),
              "kept": len(kept), "patients": len({r.patient_group or r.patient_id for r in kept}),
              "duplicates_of_training_dropped": dup_splits["train"],
              "duplicates_of_validation_dropped": dup_splits["validation"],
              "duplicates_of_test_dropped": dup_splits["test"],
              "within_set_duplicates_dropped": tot["duplicates_dropped"],
              "bad_files": tot["bad_files"], "outside_source": tot["outside_source"],
              "missing_files": tot["missing_files"], "problems": tot["problems"],
              "problem_examples": [f"{p['path']}: {p['reason']}" for p in res.report["problems"][:5]]
              + [f"{b['path']}: {b['reason']}" for b in res.report["bad_files"][:5]],
              "by_label": dict(Counter(r.label for r in kept)),
              "by_view": dict(Counter(r.view or "unknown" for r in kept)),
              "per_task": {t: {"negatives": sum(i.label == 0 for i in v), "covid": sum(i.label == 1 for i in v)}
                           for t, v in items.items()}}
    return External(name, str(folder), items, report)


def lost_counts(report: dict) -> str:
    """'bad_files 4, outside_source 8': every non-zero count of images the set lost, by reason."""
    return ", ".join(f"{k} {report[k]}" for k in LOST if report.get(k)) or "nothing was left out"


def external_notices(reports: dict[str, dict]) -> list[str]:
    """What a reader must know about each external set before reading its columns: empty after filtering
    (with every reason), a task without images, a task with one class only."""
    out = []
    for name, rep in sorted(reports.items()):
        if rep["kept"] == 0:
            out.append(f"EXTERNAL SET {name} IS EMPTY after filtering: none of its {rep.get('listed', rep['images'])} images is scored "
                       f"({lost_counts(rep)})")
            continue
        for task, n in rep["per_task"].items():
            if n["negatives"] + n["covid"] == 0:
                out.append(f"external set {name} has no image for {task} (labels kept: {rep['by_label']})")
            elif n["negatives"] == 0:
                out.append(f"external set {name} has no negatives for {task} (COVID-19 only): only its sensitivity "
                           "is measured, with a patient-level interval, not its specificity or AUROC")
            elif n["covid"] == 0:
                out.append(f"external set {name} has no COVID-19 images for {task}: only its specificity is measured")
        dup = sum(rep.get(f"duplicates_of_{s}_dropped", 0) for s in ("validation", "test"))
        if dup:
            out.append(f"external set {name}: {dup} images duplicate images of the internal validation or test split "
                       f"and were dropped ({lost_counts(rep)})")
    return out


def score_external(labels, scores, items: list[EvalItem], threshold: float, bootstrap: int, seed: int) -> dict:
    """One model on one external set: the test set's metrics (those a one-class set allows), the
    patient-bootstrap interval of its sensitivity, and the per-image scores (kept in the cell's
    result.json for the seed-level interval, left out of results.json)."""
    patients = [i.patient for i in items]
    pos = [p for p, i in zip(patients, items) if i.label == 1]
    hits = (np.asarray(scores) >= threshold).astype(int)
    out = score(labels, scores, patients, threshold, bootstrap, seed)  # its sensitivity_ci95 resamples patients
    return out | {
        "n": len(items), "n_positive_patients": len(set(pos)), "sensitivity_patient_ci95": out["sensitivity_ci95"],
        "per_image": {"labels": [int(v) for v in labels], "hits": hits.tolist(), "patients": patients}}


def public(external: dict) -> dict:
    """An external entry of a run as results.json keeps it: without its per-image lists."""
    return {k: v for k, v in external.items() if k != "per_image"}


def seed_interval(runs_ext: list[dict], bootstrap: int, seed: int = 0):
    """Patient-bootstrap interval of the seed-mean sensitivity on one external set (the same images in
    every seed); None when the runs carry no per-image lists."""
    per = [e.get("per_image") for e in runs_ext]
    if not per or any(p is None for p in per) or not bootstrap:
        return None
    pos = np.asarray(per[0]["labels"]) == 1
    if not pos.any():
        return None
    hits = np.stack([np.asarray(p["hits"])[pos] for p in per])  # one row per seed, the same positives
    return M.proportion_ci(hits, np.asarray(per[0]["patients"], dtype=object)[pos].tolist(), bootstrap, seed)[0]
