"""Shortcut controls: can the benchmark tell "detects COVID-19" from "detects the source"?

Every COVID-19 image here is a publication figure from the COVID-19 Image Data Collection and every
negative an NIH or RSNA image, so a classifier can score well by recognising the collection (DeGrave
et al. 2021, Nature Machine Intelligence 3:610). A test set drawn from the same sources cannot reveal
that. These controls can:

- **same-source negatives, matched to the task**: the collection's own frontal X-rays of the task's
  negative class, 'No Finding' for normal-covid and non-COVID pneumonias for pneumonia-covid (a model
  that learned normal vs COVID-19 may rightly call a pneumonia positive, so pneumonias are no control
  there), scored by every model. A model that detects the source calls them COVID-19: a false-positive
  rate above the test negatives' (one-sided two-proportion test), and an AUROC of COVID-19 vs them near
  0.5. A control too small for its interval is "not measurable".
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

from ...artifacts.benchmark_run import MAX_READABLE_CI_WIDTH
from ...data.records import Record
from ...data.sources.base import read_csv_rows
from ...data.sources.covid_collection import NAME as COLLECTION
from ...data.sources.covid_collection import is_covid
from ...measure import metrics as M
from ...measure.decoded import canonical
from ...measure.probe import PROBE_MAX, PROBE_SIDE, probe, probe_pixels
from ...measure.seed_pvalues import order_statistic_p, pooled_permutation_p, two_proportion_p
from ...measure.probe import cap as _cap
from ...core.vocab import CONFIGS, TASK_LABELS, TASKS
from .arms import EvalItem


# -- same-source negatives --------------------------------------------------------------------------

#: Flat (2020) findings of the collection that are not pneumonias; hierarchical ones are pneumonias when
#: they start with "Pneumonia".
NOT_PNEUMONIA = {"no finding", "ards", "tuberculosis", "todo", "unknown"}
#: Below this many control images (or with a per-patient interval wider than half the scale) a
#: false-positive rate is "not measurable": its interval would admit almost anything.
MIN_CONTROL_IMAGES = 10
#: a shortcut is named only when the one-sided two-proportion test over the seeds (:func:`pooled_p`) gives p below this
SHORTCUT_ALPHA = 0.05
#: a task's negative label -> the same-source X-rays that are that class
CONTROL_OF_LABEL = {"normal": "'No Finding' X-rays", "pneumonia": "non-COVID pneumonias"}
CONTROL_OF_TASK = {task: CONTROL_OF_LABEL[TASK_LABELS[task][0]] for task in TASKS}


def is_frontal(view: str) -> bool:
    return view.strip().upper().startswith(("PA", "AP"))


def is_pneumonia(finding: str) -> bool:
    """A non-COVID pneumonia of the collection (bacterial, viral, fungal), not 'No Finding' nor ARDS alone."""
    if is_covid(finding):
        return False
    if "/" in finding:
        return finding.split("/")[0].strip().lower() == "pneumonia"
    return finding.strip().lower() not in NOT_PNEUMONIA


def same_source_negatives(records: list[Record]) -> tuple[list[EvalItem], list[str], dict]:
    """The COVID-19 collection's non-COVID frontal X-rays whose files are present (label 0), their
    findings, and a count report (laterals and missing files counted, not used).

    They are read from the collection's ``metadata.csv`` (the record table holds its COVID-19 rows only).
    """
    roots = sorted({r.source_root for r in records if r.source == COLLECTION})
    items, finding_of, findings, missing, lateral = [], [], Counter(), 0, 0
    for root in roots:
        meta = Path(root) / "metadata.csv"
        _, rows = read_csv_rows(meta)
        for row in rows:
            if row is None:
                continue
            finding, filename = row.get("finding", ""), row.get("filename", "")
            if not finding or not filename or is_covid(finding) or row.get("modality", "").upper() == "CT":
                continue
            if not is_frontal(row.get("view", "")):
                lateral += 1
                continue
            path = Path(root) / (row.get("folder") or "images") / filename
            if not path.is_file():
                missing += 1
                continue
            findings[finding] += 1
            finding_of.append(finding)
            items.append(EvalItem(str(path), 0, f"{COLLECTION}:{row.get('patientid', filename)}",
                                  f"same-source:{filename}"))
    per_task = {t: len(matched_negatives(finding_of, t)) for t in CONTROL_OF_TASK}
    return items, finding_of, {"n": len(items), "by_finding": dict(findings), "missing_files": missing,
                               "not_frontal": lateral, "per_task": per_task, "control_of_task": CONTROL_OF_TASK,
                               "collections": [Path(r).name for r in roots]}


def matched_negatives(findings: list[str], task: str) -> list[int]:
    """Indices of the same-source negatives that are the task's own negative class: 'No Finding' for
    normal-covid, non-COVID pneumonias for pneumonia-covid. A model that learned normal vs COVID-19 may
    rightly call a pneumonia positive, so pneumonias are no control for normal-covid."""
    if TASK_LABELS[task][0] == "normal":
        return [i for i, f in enumerate(findings) if f.strip().lower() == "no finding"]
    return [i for i, f in enumerate(findings) if is_pneumonia(f)]


def measurable(n: int, k: int, ci: tuple[float, float] | None = None) -> str | None:
    """Why a false-positive rate of k in n cannot be read, or None when it can. ``ci``: its interval when
    known (patient-level: :func:`cxrsynth.measure.metrics.proportion_ci`); else Wilson's, which takes the
    images as independent."""
    if n < MIN_CONTROL_IMAGES:
        return f"{n} images, at least {MIN_CONTROL_IMAGES} needed"
    lo, hi = ci or M.wilson(k, n)
    if hi - lo > MAX_READABLE_CI_WIDTH:
        return f"its 95% interval spans {100 * (hi - lo):.0f} points"
    return None


def same_source_metrics(covid_scores, covid_patients, neg_scores, neg_patients, threshold: float,
                        bootstrap: int, seed: int, test_confusion: dict | None = None, task: str | None = None,
                        test_negatives: tuple[list, list] | None = None) -> dict:
    """FPR of the same-source negatives at ``threshold`` (its interval per patient: Wilson only when each
    patient gave one image, else a patient bootstrap), AUROC of the COVID-19 test
    images against them (patient bootstrap interval), and, given the test set's confusion, the one-sided
    two-proportion test of "calls same-source negatives COVID-19 more often than the test negatives".

    ``test_negatives`` (the test negatives' scores and patients) adds the patient bootstrap of the FPR
    difference (``fpr_difference``): Fisher's test takes images as independent, but one patient may give
    several films, alike in what a model sees; resampling whole patients of both sets carries that."""
    neg = np.asarray(neg_scores, dtype=float)
    called = neg >= threshold  # each control image called COVID-19
    fp = int(called.sum())
    fpr_ci, fpr_how = M.proportion_ci(called, list(neg_patients), bootstrap, seed) if len(neg) else (None, "no images")
    y = np.r_[np.ones(len(covid_scores)), np.zeros(len(neg))].astype(int)
    s = np.r_[np.asarray(covid_scores, dtype=float), neg]
    pats = list(covid_patients) + list(neg_patients)
    out = {"control": CONTROL_OF_TASK.get(task, "non-COVID X-rays"), "n_negatives": len(neg),
           "n_covid": len(covid_scores), "false_positives": fp,
           "fpr": fp / len(neg) if len(neg) else None, "fpr_ci95": fpr_ci, "fpr_ci_method": fpr_how,
           "auroc": M.auroc(y, s), "auroc_ci95": M.bootstrap_auroc(y, s, pats, bootstrap, seed) if bootstrap else None,
           "not_measurable": measurable(len(neg), fp, fpr_ci),
           # each control image called COVID-19 or not, and its patient: what the arm's bootstrap over seeds
           # resamples (:func:`seed_fpr_difference`); kept in the run's result.json, not in results.json
           "per_image": {"hits": called.astype(int).tolist(), "patients": list(neg_patients)}}
    if test_confusion is not None:
        k2, n2 = test_confusion["fp"], test_confusion["fp"] + test_confusion["tn"]
        out |= {"test_false_positives": k2, "test_negatives": n2, "test_fpr": k2 / n2 if n2 else None,
                "p_more_than_test": two_proportion_p(fp, len(neg), k2, n2)}
    if test_negatives is not None:
        t_scores, t_patients = test_negatives
        out["fpr_difference"] = M.proportion_difference(called, list(neg_patients),
                                                        np.asarray(t_scores, dtype=float) >= threshold, list(t_patients),
                                                        bootstrap, seed)
    return out


def public(same_source: dict | None) -> dict | None:
    """A run's same-source entry as results.json keeps it: without its per-image lists."""
    return None if same_source is None else {k: v for k, v in same_source.items() if k != "per_image"}


def _seed_calls(runs: list[dict]) -> tuple[tuple | None, str | None]:
    """An arm's per-image calls over its seeds: (control hits, one row per seed; control patients; test
    negatives called COVID-19, one row per seed; their patients), or (None, why they cannot be had).
    ``runs``: the arm's cells as their ``result.json`` holds them."""
    ss = [r["controls"]["same_source"] for r in runs]
    if not runs:
        return None, "no runs"
    if any("per_image" not in s for s in ss) or any("test_scores" not in r for r in runs):
        return None, "the runs keep no per-image same-source calls"
    first, test = ss[0]["per_image"], runs[0]
    if any(s["per_image"]["patients"] != first["patients"] for s in ss) or any(
            (r["test_patients"], r["test_labels"]) != (test["test_patients"], test["test_labels"]) for r in runs):
        return None, "the seeds scored different images"
    neg = np.asarray(test["test_labels"]) == 0
    called = [np.asarray(r["test_scores"], dtype=float)[neg] >= r["threshold"] for r in runs]
    return ([s["per_image"]["hits"] for s in ss], first["patients"], called,
            np.asarray(test["test_patients"], dtype=object)[neg].tolist()), None


def seed_fpr_difference(runs: list[dict], bootstrap: int, seed: int = 0) -> tuple[dict | None, str | None]:
    """One arm's FPR difference (its matched same-source negatives minus the test negatives called COVID-19)
    over its seeds, in one bootstrap that resamples seeds and the patients of both sets together
    (:func:`cxrsynth.measure.metrics.seed_proportion_difference`). ``runs``: the arm's cells as their
    ``result.json`` holds them (the control's ``per_image`` calls; the test scores, labels, patients and
    threshold). Returns (the difference, None), or (None, why it cannot be made)."""
    if not runs or not bootstrap:
        return None, "no bootstrap"
    calls, why = _seed_calls(runs)
    if calls is None:
        return None, why
    hits, patients, called, test_patients = calls
    return M.seed_proportion_difference(hits, patients, called, test_patients, bootstrap, seed), None


def pooled_p(runs: list[dict]) -> tuple[float | None, str | None]:
    """One-sided p that the arm calls its same-source negatives COVID-19 more often than the test
    negatives, from one test over all its seeds (:func:`cxrsynth.measure.seed_pvalues.pooled_permutation_p`):
    each image's share of seeds calling it, permuted between the two sets. (None, why) without per-image calls."""
    calls, why = _seed_calls(runs)
    if calls is None:
        return None, why
    hits, _, called, _ = calls
    return pooled_permutation_p(hits, called)


def verdict_over_seeds(runs: list[dict], bootstrap: int, seed: int = 0) -> dict:
    """:func:`shortcut_verdict` of an arm's cells (``result.json`` content): its p from one test over the
    seeds (:func:`pooled_p`) and its interval from the one bootstrap over seeds and patients, where the
    cells carry their per-image calls."""
    runs = [r for r in runs if (r.get("controls") or {}).get("same_source")]
    pooled, why = seed_fpr_difference(runs, bootstrap, seed)
    p, how = pooled_p(runs)
    return shortcut_verdict([r["controls"]["same_source"] for r in runs], pooled, why,
                            (p, how) if p is not None else None)


def _p_over_seeds(runs: list[dict], pooled_test: tuple[float, str] | None) -> tuple[float | None, str]:
    """The arm's p and how it was made: the pooled test where the cells kept their per-image calls; else
    one run's own Fisher p, or several runs' Fisher p values combined by
    :func:`cxrsynth.measure.seed_pvalues.order_statistic_p` (a valid bound, never their bare median)."""
    if pooled_test is not None:
        return pooled_test[0], pooled_test[1] + (", seeds pooled per image" if len(runs) > 1 else "")
    ps = [r["p_more_than_test"] for r in runs if r.get("p_more_than_test") is not None]
    if len(ps) <= 1:
        return (ps[0] if ps else None), "Fisher exact"
    return order_statistic_p(ps), f"Fisher exact per seed, {len(ps)} seeds combined by a valid bound on their median"


def shortcut_verdict(per_seed: list[dict], pooled: dict | None = None, why_not_pooled: str | None = None,
                     pooled_test: tuple[float, str] | None = None) -> dict:
    """One arm's reading of its same-source control over seeds: ``not measurable`` (too few images),
    ``source`` or ``no evidence`` (``not measurable`` when most seeds' controls are). Takes the per-run
    dicts of :func:`same_source_metrics` and, when made, the arm's FPR difference bootstrapped over seeds
    and patients together (:func:`seed_fpr_difference`) and its one test over the seeds (:func:`pooled_p`).

    ``source`` needs the one-sided two-proportion test at p < SHORTCUT_ALPHA and a patient-bootstrap 95%
    interval of the FPR difference that excludes 0: two patients with twenty films each are two patients'
    worth of evidence, however small Fisher's p over forty images is.

    The p comes from one test over the seeds, not the median of per-seed p values, which is no p-value
    (:mod:`cxrsynth.measure.seed_pvalues`). Each image's share of seeds calling it is permuted between
    the two sets. This is Fisher's exact test when the seeds agree, and is exact because each image
    counts once. A Cochran-Mantel-Haenszel test across seeds was rejected: its strata would share images,
    so each image would count k times. Runs scored before per-image calls were kept fall back to
    :func:`_p_over_seeds`. Each seed's own Fisher p stays in ``p_per_seed``, for reading only.

    The interval is ``pooled``'s. Without it (``why_not_pooled``), it is the median of each run's own
    bounds, and ``test`` says so."""
    runs = [r for r in per_seed if r]
    if not runs:
        return {"verdict": None}
    # each seed reads its own rate's interval; the arm is not measurable when most of its seeds are not
    # (not seed 0's alone: seeds call different films, so their intervals differ in width)
    whys = [r.get("not_measurable") for r in runs]
    why = next((w for w in whys if w), None) if 2 * sum(map(bool, whys)) > len(whys) else None
    p, p_how = _p_over_seeds(runs, pooled_test)
    fpr = float(np.mean([r["fpr"] for r in runs])) if all(r["fpr"] is not None for r in runs) else None
    test = [r["test_fpr"] for r in runs if r.get("test_fpr") is not None]
    if pooled is not None and pooled.get("ci95"):
        ci = tuple(pooled["ci95"])
        how = f"{p_how} and patient bootstrap (one bootstrap over seeds and patients: {pooled['interval']})"
    else:
        cis = [r["fpr_difference"]["ci95"] for r in runs if (r.get("fpr_difference") or {}).get("ci95")]
        ci = (float(np.median([c[0] for c in cis])), float(np.median([c[1] for c in cis]))) if cis else None
        how = (f"{p_how} only (images taken as independent)" if not ci else f"{p_how} and patient bootstrap"
               + (f" (median of each seed's interval bounds: {why_not_pooled})" if len(runs) > 1 and why_not_pooled else ""))
    base = {"control": runs[0].get("control"), "n": runs[0]["n_negatives"], "fpr": fpr,
            "test_fpr": float(np.mean(test)) if test else None, "p": p, "p_method": p_how,
            "p_per_seed": [r.get("p_more_than_test") for r in runs], "seeds": len(runs),
            "difference_patient_ci95": ci, "test": how}
    if why:
        return base | {"verdict": "not measurable", "why": why}
    if p is None:
        return base | {"verdict": None}
    return base | {"verdict": "source" if p < SHORTCUT_ALPHA and (ci is None or ci[0] > 0) else "no evidence"}


# -- probes -----------------------------------------------------------------------------------------

def _pixels(paths: list[str], size: int = PROBE_SIDE) -> np.ndarray:
    """Real images decoded at ``size`` (the synthetic images' size when they are compared with them),
    then brought to the probe's 32 px by the probe's one path (:func:`cxrsynth.measure.probe.probe_pixels`).
    Decoded once per process (:mod:`cxrsynth.measure.decoded`): every benchmark run probes the same images."""
    return probe_pixels(np.stack([canonical(p, size) for p in paths]))


def _pil_pixels(images) -> tuple[np.ndarray, int]:
    """Synthetic images (PIL, as the release stores them, one size) by the same path; and their size."""
    arrays = np.stack([np.asarray(im.convert("L"), dtype=np.uint8) for im in images])
    return probe_pixels(arrays), int(arrays.shape[-1])


def source_probes(records: list[Record], same_source: list[EvalItem], findings: list[str], bootstrap: int) -> dict:
    """Per label held fixed: the COVID-19 collection's images of that label vs NIH/RSNA images of it.

    The collection's pneumonias are its non-COVID pneumonias (:func:`is_pneumonia`); its normals are 'No
    Finding'; frontal views only. Only labels with at least 5 images on each side are probed (the rest are listed as skipped).
    """
    coll = {TASK_LABELS[task][0]: [same_source[i] for i in matched_negatives(findings, task)]
            for task in sorted(TASKS, key=lambda t: TASK_LABELS[t][0] != "pneumonia")}  # pneumonia first, as before
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
    from ..load.loader import synthetic_config

    real = [r for r in records if r.has_pixels and r.label == "covid" and assign.get(r.record_id) == "train"]
    real = [real[i] for i in _cap(len(real), PROBE_MAX, 0)]
    if len(real) < 5:
        return {"skipped": f"{len(real)} real COVID-19 training images with pixels (need 5)"}
    x_real: dict[int, np.ndarray] = {}  # per synthetic size: real images decoded at it, then shrunk alike
    out = {}
    for config in CONFIGS:
        ds = synthetic_config(release, config)
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
