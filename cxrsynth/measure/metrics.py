"""Metrics of a binary classifier (1 = COVID-19), with honest intervals.

Point metrics come from the confusion matrix (scikit-learn, ``labels=[0, 1]`` so it stays 2x2 when a
class is absent). Sensitivity gets a Wilson score interval (scipy). AUROC and the difference between two
arms get bootstrap intervals that resample *patients*, not images, because one patient can have several
test images (their scores are not independent).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score, roc_curve


def confusion(y_true, y_pred) -> dict:
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel())
    return {"tn": tn, "fp": fp, "fn": fn, "tp": tp}


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float] | None:
    if n == 0:
        return None
    ci = binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def from_confusion(cm: dict) -> dict:
    tp, fp, fn, tn = cm["tp"], cm["fp"], cm["fn"], cm["tn"]
    sens, spec, prec = _ratio(tp, tp + fn), _ratio(tn, tn + fp), _ratio(tp, tp + fp)
    f1 = 2 * prec * sens / (prec + sens) if prec and sens else (0.0 if prec is not None and sens is not None else None)
    return {"sensitivity": sens, "sensitivity_wilson95": wilson(tp, tp + fn), "specificity": spec,
            "specificity_wilson95": wilson(tn, tn + fp),
            "precision": prec, "f1": f1, "false_negatives": fn, "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
            "confusion": cm}


def threshold_metrics(y_true, scores, threshold: float) -> dict:
    y_true = np.asarray(y_true)
    y_pred = (np.asarray(scores) >= threshold).astype(int)
    return from_confusion(confusion(y_true, y_pred))


def auroc(y_true, scores) -> float | None:
    y_true = np.asarray(y_true)
    return float(roc_auc_score(y_true, scores)) if len(set(y_true.tolist())) == 2 else None


def auprc(y_true, scores) -> float | None:
    y_true = np.asarray(y_true)
    return float(average_precision_score(y_true, scores)) if len(set(y_true.tolist())) == 2 else None


def youden_threshold(y_true, scores) -> float:
    """The threshold maximising sensitivity + specificity - 1 (chosen on validation, never on test)."""
    y_true = np.asarray(y_true)
    if len(set(y_true.tolist())) < 2:
        return 0.5
    fpr, tpr, thr = roc_curve(y_true, scores)
    best = int(np.argmax(tpr - fpr))
    return float(min(max(thr[best], 0.0), 1.0))


def rows_by_patient(patients, *, sort: bool = False) -> list[np.ndarray]:
    """Each patient's row numbers, one array per patient: in order of first appearance, or sorted by
    patient id (``sort``) so that the grouping, and the seeded resamples that index it, do not depend on
    the order the rows came in (the audit's sets are read from folders)."""
    idx: dict = defaultdict(list)
    for i, p in enumerate(patients):
        idx[p].append(i)
    keys = sorted(idx) if sort else list(idx)
    return [np.asarray(idx[k]) for k in keys]


def resample_patients(groups: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One bootstrap draw of whole patients: as many patients as there are, with replacement, each with
    all of its rows (``groups`` from :func:`rows_by_patient`)."""
    return np.concatenate([groups[i] for i in rng.integers(0, len(groups), len(groups))])


def _patient_bootstrap(y_true: np.ndarray, patients, stat, n: int, seed: int) -> list[float]:
    """``stat(indices)`` over ``n`` resamples of whole patients (those holding both classes only)."""
    groups = rows_by_patient(patients)
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        pick = resample_patients(groups, rng)
        if len(set(y_true[pick].tolist())) == 2:
            vals.append(stat(pick))
    return vals


def _interval(vals: list[float], n: int, level: float) -> tuple[float, float] | None:
    if len(vals) < n // 2:
        return None
    a = (1 - level) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))


def bootstrap_auroc(y_true, scores, patients, n: int = 1000, seed: int = 0, level: float = 0.95):
    """Percentile interval of AUROC over patient-level resamples (None if too few of a class)."""
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    vals = _patient_bootstrap(y_true, patients, lambda p: _auc(y_true[p], scores[p]), n, seed)
    return _interval(vals, n, level)


def bootstrap_difference(y_true, scores_a, scores_b, patients, n: int = 1000, seed: int = 0, level: float = 0.95):
    """AUROC(b) - AUROC(a) on the same test images, with a paired patient-level bootstrap interval."""
    y_true, sa, sb = np.asarray(y_true), np.asarray(scores_a), np.asarray(scores_b)
    if len(set(y_true.tolist())) < 2:
        return None
    vals = _patient_bootstrap(y_true, patients,
                              lambda p: _auc(y_true[p], sb[p]) - _auc(y_true[p], sa[p]), n, seed)
    ci = _interval(vals, n, level)
    if ci is None:
        return None
    return {"difference": float(roc_auc_score(y_true, sb) - roc_auc_score(y_true, sa)), "ci95": ci,
            "p_b_not_better": float(np.mean(np.asarray(vals) <= 0))}


def summarise_seeds(values: list[float | None]) -> dict:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    arr = np.asarray(vals, dtype=float)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
            "min": float(arr.min()), "max": float(arr.max()), "n": len(arr)}


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    """AUROC by the Mann-Whitney rank sum (ties averaged): roc_auc_score's value, fast enough to call
    thousands of times in a bootstrap. ``y`` must hold both classes."""
    from scipy.stats import rankdata

    pos = y == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    return float((rankdata(s)[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


MIN_SEEDS_BOOTSTRAP = 5  # below this a bootstrap over seeds resamples k of k and carries (k-1)/k of their variance


def _seed_level_half_width(sd_boot: float, per_seed: list[float], level: float) -> float:
    """Half-width of a seed-level interval below :data:`MIN_SEEDS_BOOTSTRAP` seeds: the patients' normal
    term (``sd_boot``, the spread of a bootstrap that kept every seed) and, with 2 or more seeds, a
    Student-t term on the per-seed differences, in quadrature. One definition for the interval and its p."""
    from scipy.stats import norm, t as student_t

    a, k = (1 - level) / 2, len(per_seed)
    half_sq = (norm.ppf(1 - a) * sd_boot) ** 2
    if k >= 2:
        half_sq += (student_t.ppf(1 - a, k - 1) * float(np.std(per_seed, ddof=1)) / math.sqrt(k)) ** 2
    return math.sqrt(half_sq)


def seed_level_interval(point: float, boot: list[float], per_seed: list[float], n: int, level: float = 0.95,
                        bounds: tuple[float, float] = (-1.0, 1.0)) -> tuple[tuple[float, float] | None, str | None]:
    """Interval of a mean over seeds of paired differences, and how it was made.

    With at least :data:`MIN_SEEDS_BOOTSTRAP` seeds, ``boot`` resampled patients and seeds together:
    its percentile interval. With fewer, ``boot`` resampled patients only (all seeds in every draw),
    and the seed level is a Student-t term on the per-seed differences, added in quadrature to the
    patients' normal term (a bootstrap over 2 of 2 seeds would carry half their variance); that
    interval is clipped to ``bounds``, the range the quantity can take (a t with 1 df is wide)."""
    k = len(per_seed)
    if not n or len(boot) < n // 2:
        return None, None
    a = (1 - level) / 2
    if k >= MIN_SEEDS_BOOTSTRAP:
        return (float(np.quantile(boot, a)), float(np.quantile(boot, 1 - a))), "percentile bootstrap over test patients and seeds"
    half = _seed_level_half_width(float(np.std(boot, ddof=1)), per_seed, level)
    how = (f"patient bootstrap (all {k} seeds in each draw) plus a t-interval term on the per-seed differences "
           "({k - 1} df), in quadrature" if k >= 2 else
           "patient bootstrap only (one seed: the variance between training runs is not measured)")
    return (max(bounds[0], point - half), min(bounds[1], point + half)), how.replace("{k - 1}", str(k - 1))


def seed_level_p(point: float, boot: list[float], per_seed: list[float],
                 level: float = 0.95) -> tuple[float | None, float | None]:
    """Two-sided p, and the one-sided p that the arm is not better (difference <= 0), of a mean over seeds
    of paired differences, made as :func:`seed_level_interval` makes its interval, so that the two agree:
    p < 1 - ``level`` exactly when that interval (before clipping) excludes 0.

    With at least :data:`MIN_SEEDS_BOOTSTRAP` seeds, the bootstrap's share of draws at or beyond 0. With
    fewer, the draws resampled patients only, and a p read from them alone leaves out the variance between
    training runs that the interval adds (one seed of three at AUROC 0.49 gave p = 0 beside an interval
    spanning 0). Then the interval's half-width over the normal quantile is the standard error: the
    patients' bootstrap variance plus the seed-level t-term scaled to the normal's quantile, and p is normal."""
    from scipy.stats import norm

    if not boot:
        return None, None
    b = np.asarray(boot, dtype=float)
    k = len(per_seed)
    if k >= MIN_SEEDS_BOOTSTRAP:
        return float(min(1.0, 2 * min(np.mean(b <= 0), np.mean(b >= 0)))), float(np.mean(b <= 0))
    sd_boot = float(np.std(b, ddof=1)) if len(b) > 1 else 0.0
    se = _seed_level_half_width(sd_boot, per_seed, level) / norm.ppf(1 - (1 - level) / 2)
    if se == 0:
        return (1.0 if point == 0 else 0.0), (1.0 if point <= 0 else 0.0)
    return float(min(1.0, 2 * norm.sf(abs(point) / se))), float(norm.cdf(-point / se))


def paired_seed_difference(y_true, patients, ref: list, arm: list, ref_thr: list[float], arm_thr: list[float],
                           n: int = 1000, seed: int = 0, level: float = 0.95) -> dict | None:
    """``arm`` minus ``ref`` in AUROC and sensitivity, paired seed by seed on the same test images.

    ``ref``/``arm``: per-seed score arrays (seed k of one paired with seed k of the other), with their
    thresholds. The point estimate is the mean over seeds of the per-seed differences, which is exactly
    the difference of the two arms' mean AUROC (and mean sensitivity) columns. The interval resamples
    both the test patients (the same resample for both arms: the comparison is paired) and the seeds,
    so it carries the variance between training runs as well as that of the test set.
    """
    y = np.asarray(y_true)
    k = min(len(ref), len(arm))
    if k == 0 or len(set(y.tolist())) < 2:
        return None
    ref, arm = [np.asarray(r, float) for r in ref[:k]], [np.asarray(a, float) for a in arm[:k]]

    def stats(pick: np.ndarray, seeds) -> tuple[float, float]:
        yy = y[pick]
        da = [_auc(yy, arm[j][pick]) - _auc(yy, ref[j][pick]) for j in seeds]
        pos = yy == 1
        ds = [float(np.mean(arm[j][pick][pos] >= arm_thr[j]) - np.mean(ref[j][pick][pos] >= ref_thr[j])) for j in seeds]
        return float(np.mean(da)), float(np.mean(ds))

    point = stats(np.arange(len(y)), range(k))
    per_seed = [stats(np.arange(len(y)), [j]) for j in range(k)]
    seed_rng = np.random.default_rng([seed, 1])  # the seeds' resample, beside the patients'
    resample = k >= MIN_SEEDS_BOOTSTRAP  # fewer: every draw keeps all seeds, and a t term adds their level
    vals = _patient_bootstrap(y, patients, lambda pick: stats(pick, seed_rng.integers(0, k, k) if resample else range(k)),
                              n, seed)
    auc_ci, how = seed_level_interval(point[0], [v[0] for v in vals], [d[0] for d in per_seed], n, level)
    sens_ci, _ = seed_level_interval(point[1], [v[1] for v in vals], [d[1] for d in per_seed], n, level)
    p_two, p_not_better = seed_level_p(point[0], [v[0] for v in vals], [d[0] for d in per_seed], level)
    return {"difference": point[0], "ci95": auc_ci, "p_b_not_better": p_not_better, "p_two_sided": p_two,
            "sensitivity_difference": point[1], "sensitivity_ci95": sens_ci, "seeds_paired": k,
            "per_seed": [d[0] for d in per_seed], "interval": how,
            "method": "mean over seeds of per-seed paired differences; " + how}


def threshold_at_specificity(y_true, scores, specificity: float) -> float:
    """The lowest threshold whose specificity on (``y_true``, ``scores``) reaches ``specificity``.

    Used on validation to put every arm at the same operating point: comparing sensitivities taken at
    each arm's own threshold compares different points on the ROC curves (issue 20). A score is called
    positive when ``score >= threshold``; ties among negatives at the cut are all called negative, so
    the reached specificity can exceed the target, never fall short of it."""
    y, s = np.asarray(y_true), np.asarray(scores, float)
    neg = np.sort(s[y == 0])
    if len(neg) == 0:
        return 0.5
    k = math.ceil(specificity * len(neg) - 1e-9)  # negatives that must fall below the threshold
    return float(neg[0]) if k <= 0 else float(np.nextafter(neg[k - 1], np.inf))


def balanced_accuracy(sensitivity: float | None, specificity: float | None) -> float | None:
    """(sensitivity + specificity) / 2: accuracy that a class prior shift cannot buy."""
    return None if sensitivity is None or specificity is None else (sensitivity + specificity) / 2


def holm(pvalues: dict) -> dict:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), keyed as given; ``None``
    values stay ``None`` and do not count as tests."""
    items = sorted(((p, k) for k, p in pvalues.items() if p is not None), key=lambda t: t[0])
    m, out, running = len(items), {k: None for k in pvalues}, 0.0
    for i, (p, k) in enumerate(items):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return out


def _group_codes(patients) -> tuple[np.ndarray, int]:
    """Each image's patient as 0..G-1, numbered in order of first appearance (as :func:`rows_by_patient`)."""
    index: dict = {}
    return np.asarray([index.setdefault(p, len(index)) for p in patients], dtype=np.intp), len(index)


def resampled_proportions(hits, patients, n: int, rng: np.random.Generator) -> np.ndarray:
    """The share of hits in ``n`` resamples of whole patients (vectorised: per-patient sums, then ``n``
    draws of patient indices at once). ``hits``: 0/1 per image, or one row per seed on the same images
    (the share is then the mean over seeds)."""
    h = np.atleast_2d(np.asarray(hits, dtype=float))
    codes, g = _group_codes(patients)
    per_hits = np.bincount(codes, weights=h.sum(axis=0), minlength=g)
    per_n = np.bincount(codes, minlength=g) * h.shape[0]
    draws = rng.integers(0, g, (n, g))
    return per_hits[draws].sum(axis=1) / per_n[draws].sum(axis=1)


def proportion_ci(hits, patients, n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[tuple[float, float] | None, str]:
    """Interval of a proportion of images (e.g. sensitivity: the positives called positive), and how.

    ``hits``: 0/1 per image, or one row per seed on the same images (the proportion is then the mean
    over seeds). Wilson's interval assumes independent trials, which holds for per-patient counts: when
    every patient contributes one image (and one seed ran) it is used. When a patient has several images
    (44 test images of 21 patients in the paper split) they are not independent, and whole patients are
    resampled instead (so are the images of one patient in every seed)."""
    h = np.atleast_2d(np.asarray(hits, dtype=float))
    if h.shape[1] == 0:
        return None, "no images"
    if h.shape[0] == 1 and _group_codes(patients)[1] == h.shape[1]:
        return wilson(int(h.sum()), h.shape[1], level), "wilson (one image per patient)"
    if n <= 0:
        return None, "not computed (bootstrap 0; several images per patient or seed)"
    vals = resampled_proportions(h, patients, n, np.random.default_rng([seed, 4]))
    return _interval(list(vals), n, level), "patient bootstrap (several images per patient)"


def proportion_difference(hits_a, patients_a, hits_b, patients_b, n: int = 1000, seed: int = 0,
                          level: float = 0.95) -> dict | None:
    """Share of hits in ``a`` minus that in ``b`` (two independent sets of images, e.g. same-source
    negatives vs test negatives), with a percentile interval that resamples each set's patients apart,
    and the one-sided bootstrap p of "a is not above b". None without images on a side or draws."""
    if len(hits_a) == 0 or len(hits_b) == 0 or n <= 0:
        return None
    rng = np.random.default_rng([seed, 5])
    d = resampled_proportions(hits_a, patients_a, n, rng) - resampled_proportions(hits_b, patients_b, n, rng)
    return {"difference": float(np.mean(hits_a) - np.mean(hits_b)), "ci95": _interval(list(d), n, level),
            "p_not_above": float(np.mean(d <= 0))}


def _seed_shares(hits: np.ndarray, patients, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, seeds): each seed's share of hits in ``n`` resamples of whole patients, the same patients drawn
    for every seed in a draw (``hits``: one row per seed on the same images)."""
    codes, g = _group_codes(patients)
    per_hits = np.stack([np.bincount(codes, weights=row, minlength=g) for row in hits])  # seeds x patients
    per_n = np.bincount(codes, minlength=g).astype(float)
    draws = rng.integers(0, g, (n, g))
    times = np.bincount((draws + g * np.arange(n)[:, None]).ravel(), minlength=n * g).reshape(n, g)
    return (times @ per_hits.T) / (times @ per_n)[:, None]


def seed_proportion_difference(hits_a, patients_a, hits_b, patients_b, n: int = 1000, seed: int = 0,
                               level: float = 0.95) -> dict | None:
    """Share of hits in ``a`` minus that in ``b``, the mean over seeds, where every seed scored the same two
    sets of images (``hits_*``: one row per seed, e.g. same-source negatives called COVID-19 vs test
    negatives called COVID-19, each seed at its own threshold).

    One bootstrap for the arm, as :func:`paired_seed_difference` makes for AUROC: each draw resamples each
    set's patients apart (the same patients for every seed) and, with at least
    :data:`MIN_SEEDS_BOOTSTRAP` seeds, the seeds; with fewer, :func:`seed_level_interval` adds a t term on
    the per-seed differences. Taking the median of each seed's own interval bounds instead would let
    seeds that flag different patients look like no evidence, and seeds that disagree look like
    agreement. None without images on a side, draws, or the same seeds on both sides."""
    a, b = (np.atleast_2d(np.asarray(h, dtype=float)) for h in (hits_a, hits_b))
    if a.shape[1] == 0 or b.shape[1] == 0 or n <= 0 or a.shape[0] != b.shape[0]:
        return None
    k = a.shape[0]
    per_seed = a.mean(axis=1) - b.mean(axis=1)
    rng = np.random.default_rng([seed, 6])
    d = _seed_shares(a, patients_a, n, rng) - _seed_shares(b, patients_b, n, rng)
    if k >= MIN_SEEDS_BOOTSTRAP:
        d = np.take_along_axis(d, rng.integers(0, k, (n, k)), axis=1)
    boot = d.mean(axis=1)
    point = float(per_seed.mean())
    ci, how = seed_level_interval(point, boot.tolist(), per_seed.tolist(), n, level)
    return {"difference": point, "ci95": ci, "p_not_above": float(np.mean(boot <= 0)),
            "per_seed": per_seed.tolist(), "seeds": k,
            "interval": (how or "").replace("test patients", "the patients of both sets")}


def clustered_rates(y_true, scores, patients, threshold: float, n: int, seed: int) -> dict:
    """Sensitivity and specificity intervals that respect patients (:func:`proportion_ci`); Wilson's
    image-level fields are set to None where a class has several images of one patient, so no reader
    takes them for valid intervals."""
    y, pred = np.asarray(y_true), np.asarray(scores) >= threshold
    pats = np.asarray(patients, dtype=object)
    out = {}
    for name, cls, hit in (("sensitivity", 1, pred), ("specificity", 0, ~pred)):
        ci, how = proportion_ci(hit[y == cls], pats[y == cls].tolist(), n, seed)
        out[f"{name}_ci95"], out[f"{name}_interval"] = ci, how
        if not how.startswith("wilson"):
            out[f"{name}_wilson95"] = None
    return out
