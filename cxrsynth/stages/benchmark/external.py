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

from dataclasses import dataclass

import numpy as np

from ...measure import metrics as M
from ...core.vocab import TASK_LABELS
from ..external_sets import patient_key, read_external  # named, read and checked there: the audit reads the same sets
from .arms import EvalItem
from .fit import score

#: the per-reason counts of images an external set lost, in the order the outputs list them
LOST = ("bad_files", "outside_source", "missing_files", "problems", "duplicates_of_training_dropped",
        "duplicates_of_validation_dropped", "duplicates_of_test_dropped", "within_set_duplicates_dropped")


@dataclass
class External:
    name: str
    root: str
    items: dict[str, list[EvalItem]]  # per task
    report: dict


def load_external(name: str, folder: str, data) -> External:
    """The external set ``folder`` (:func:`cxrsynth.stages.external_sets.read_external`: ingested, images
    duplicating the split dropped and counted), as each task's evaluation items."""
    kept, report = read_external(folder, data)
    items = {}
    for task, (neg, pos) in TASK_LABELS.items():
        items[task] = [EvalItem(str(r.path), int(r.label == pos), patient_key(name, r), r.record_id) for r in kept if r.label in (neg, pos)]
    report["per_task"] = {t: {"negatives": sum(i.label == 0 for i in v), "covid": sum(i.label == 1 for i in v)}
                          for t, v in items.items()}
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
