"""Arms compared at one operating point: sensitivity at a fixed specificity chosen on validation.

Why: each run's own threshold (Youden's J on validation) puts each arm at a different specificity, so
subtracting their sensitivities mixes a move along the ROC curve with a better curve (review finding 4:
real+g_nc read "-19.5 points" of sensitivity with a specificity 25 points higher and an AUROC within
noise). Here every arm's threshold is re-picked on validation to reach one target specificity, the same
for all arms, and the test sensitivity there is compared. Targets: the ``real`` arm's own validation
specificity at its Youden threshold (mean over its seeds), and 90%.

The interval re-picks the threshold inside each bootstrap draw: validation patients and test patients
are both resampled (whole patients, the grouping stored in ``splits.json``), so the threshold's own
variance is carried. Seeds: with at least :data:`~cxrsynth.measure.metrics.MIN_SEEDS_BOOTSTRAP` seeds they are resampled inside
the draw; with fewer, the draw keeps every seed and the seed level is added as a Student-t term on the
per-seed differences (a bootstrap over 2 of 2 seeds would carry half their variance).

The draws are computed as numpy arrays, all at once (:class:`Draws`: how often each image is in each
draw; :func:`_thresholds`: every draw's threshold from cumulative counts over the sorted negatives),
with exactly the results of a loop over draws (``tests/test_operating_vectorised.py``): at full scale a
task has 7 arms x 2 targets x 1,000 draws x 5 seeds, each a sort of the validation negatives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...measure import metrics as M

FIXED_SPECIFICITY = 0.90


@dataclass
class Scored:
    """One arm's per-seed scores on the same validation and test images (seed k of two arms paired)."""

    val_labels: np.ndarray
    val_patients: list
    val: list[np.ndarray]
    test_labels: np.ndarray
    test_patients: list
    test: list[np.ndarray]

    @classmethod
    def from_runs(cls, runs: list[dict]) -> "Scored | None":
        """From cells' result.json dicts (sorted by seed); None when a run lacks its validation scores
        (paper protocol, or a cell finished by an older version)."""
        if not runs or any(r.get("validation_scores") is None for r in runs):
            return None
        r0 = runs[0]
        return cls(np.asarray(r0["validation_labels"]), list(r0["validation_patients"]),
                   [np.asarray(r["validation_scores"], float) for r in runs],
                   np.asarray(r0["test_labels"]), list(r0["test_patients"]),
                   [np.asarray(r["test_scores"], float) for r in runs])


def at_specificity(val_y, val_s, test_y, test_s, specificity: float) -> dict:
    """Threshold picked on validation for ``specificity``; the test sensitivity, specificity and
    balanced accuracy there."""
    thr = M.threshold_at_specificity(val_y, val_s, specificity)
    test_y, pred = np.asarray(test_y), np.asarray(test_s) >= thr
    sens, spec = float(pred[test_y == 1].mean()), float((~pred[test_y == 0]).mean())
    return {"threshold": thr, "sensitivity": sens, "specificity": spec,
            "balanced_accuracy": M.balanced_accuracy(sens, spec)}


@dataclass
class Draws:
    """``n`` paired resamples of (validation patients, test patients) as multiplicities: ``val[d, i]`` is
    how many times validation image i is in draw d (its patient drawn that often), ``test`` likewise.
    Draws missing a class are dropped (as ``metrics._patient_bootstrap`` does). One set of draws serves
    every arm and target of a task (the arms share their images), so the bootstrap is paired."""

    val: np.ndarray
    test: np.ndarray

    @classmethod
    def make(cls, ref: Scored, n: int, seed: int) -> "Draws":
        vc, gv = M._group_codes(ref.val_patients)
        tc, gt = M._group_codes(ref.test_patients)
        rng = np.random.default_rng([seed, 2])
        val, test = [], []
        for _ in range(n):  # one Generator call per side and draw, in the order the plain loop made them
            v = np.bincount(rng.integers(0, gv, gv), minlength=gv)[vc]
            t = np.bincount(rng.integers(0, gt, gt), minlength=gt)[tc]
            if _both_classes(ref.val_labels, v) and _both_classes(ref.test_labels, t):
                val.append(v)
                test.append(t)
        return cls(np.asarray(val, float).reshape(-1, len(vc)), np.asarray(test, float).reshape(-1, len(tc)))


def _both_classes(y: np.ndarray, weight: np.ndarray) -> bool:
    return bool(weight[y == 1].any() and weight[y == 0].any())


def _thresholds(y: np.ndarray, s: np.ndarray, spec: float, weight: np.ndarray) -> np.ndarray:
    """:func:`~cxrsynth.measure.metrics.threshold_at_specificity` in every draw at once: the k-th smallest drawn
    negative score (k = ceil(spec x drawn negatives)) is where the cumulative multiplicity, over the
    negatives sorted by score, first reaches k; the threshold sits just above it."""
    neg = np.nonzero(y == 0)[0]
    order = neg[np.argsort(s[neg], kind="stable")]
    cum = np.cumsum(weight[:, order], axis=1)
    k = np.ceil(spec * cum[:, -1] - 1e-9)
    at = s[order][np.argmax(cum >= np.maximum(k, 1)[:, None], axis=1)]
    return np.where(k <= 0, at, np.nextafter(at, np.inf))


def _sensitivities(a: Scored, spec: float, draws: Draws) -> np.ndarray:
    """(draws, seeds): the test sensitivity in each draw at the threshold its validation draw picks."""
    pos = a.test_labels == 1
    w = draws.test[:, pos]
    out = np.empty((len(draws.val), len(a.val)))
    for j in range(len(a.val)):
        thr = _thresholds(a.val_labels, a.val[j], spec, draws.val)
        out[:, j] = (w * (a.test[j][pos][None, :] >= thr[:, None])).sum(axis=1) / w.sum(axis=1)
    return out


def _sens(a: Scored, j: int, spec: float) -> float:
    return at_specificity(a.val_labels, a.val[j], a.test_labels, a.test[j], spec)["sensitivity"]


def real_target(real: Scored) -> float:
    """The ``real`` arm's validation specificity at its Youden threshold, mean over its seeds."""
    specs = []
    for s in real.val:
        thr = M.youden_threshold(real.val_labels, s)
        specs.append(float((s[real.val_labels == 0] < thr).mean()))
    return float(np.mean(specs))


def arm_at(arm: Scored, spec: float, n: int = 1000, seed: int = 0, level: float = 0.95,
           draws: Draws | None = None) -> dict:
    """One arm at a target specificity: mean over seeds of test sensitivity, specificity and balanced
    accuracy, with a patient-bootstrap interval of the sensitivity (threshold re-picked per draw)."""
    k = len(arm.val)
    per = [at_specificity(arm.val_labels, arm.val[j], arm.test_labels, arm.test[j], spec) for j in range(k)]
    point = {m: float(np.mean([p[m] for p in per])) for m in ("sensitivity", "specificity", "balanced_accuracy")}
    draws = draws if draws is not None or not n else Draws.make(arm, n, seed)
    boot = _sensitivities(arm, spec, draws).mean(axis=1).tolist() if n else []
    ci, how = M.seed_level_interval(point["sensitivity"], boot, [p["sensitivity"] for p in per], n, level, (0.0, 1.0))
    return point | {"target_specificity": spec, "thresholds": [p["threshold"] for p in per],
                    "sensitivity_ci95": ci, "interval": how, "seeds": k}


def difference_at(ref: Scored, arm: Scored, spec: float, n: int = 1000, seed: int = 0, level: float = 0.95,
                  draws: Draws | None = None) -> dict | None:
    """``arm`` minus ``ref`` in test sensitivity at one target specificity, each arm's threshold picked
    on validation; paired seed by seed and on the same patient resample."""
    if not (np.array_equal(ref.test_labels, arm.test_labels) and np.array_equal(ref.val_labels, arm.val_labels)):
        return None
    k = min(len(ref.val), len(arm.val))
    per_seed = [_sens(arm, j, spec) - _sens(ref, j, spec) for j in range(k)]
    point = float(np.mean(per_seed))
    boot = []
    if n:
        draws = draws if draws is not None else Draws.make(ref, n, seed)
        d = _sensitivities(arm, spec, draws)[:, :k] - _sensitivities(ref, spec, draws)[:, :k]
        seed_rng = np.random.default_rng([seed, 3])
        if k >= M.MIN_SEEDS_BOOTSTRAP and len(d):  # the seeds resampled inside each draw, in the draws' order
            pick = np.stack([seed_rng.integers(0, k, k) for _ in range(len(d))])
            d = np.take_along_axis(d, pick, axis=1)
        boot = d.mean(axis=1).tolist()
    ci, how = M.seed_level_interval(point, boot, per_seed, n, level)
    p, _ = M.seed_level_p(point, boot, per_seed, level)  # made as the interval is, so the two agree
    return {"target_specificity": spec, "sensitivity_difference": point, "ci95": ci, "interval": how,
            "p_two_sided": p, "seeds_paired": k, "per_seed": per_seed}


def targets(real: Scored | None) -> dict[str, float]:
    """The operating points every arm is compared at, by name."""
    out = {"specificity_90": FIXED_SPECIFICITY}
    if real is not None:
        out = {"real_operating_point": real_target(real)} | out
    return out


def compare_arms(by_arm: dict[str, list[dict]], n: int = 1000, seed: int = 0) -> dict | None:
    """Per arm and target: the arm at that specificity, and (when ``real`` ran) its difference from
    ``real``. None when no run kept its validation scores (the paper protocol has no validation)."""
    scored = {a: Scored.from_runs(sorted(r, key=lambda x: x["seed"])) for a, r in by_arm.items()}
    scored = {a: s for a, s in scored.items() if s is not None}
    if not scored:
        return None
    tg = targets(scored.get("real"))
    made: dict = {}  # one set of draws per set of images (every arm of a task has the same ones)

    def draws_for(a: Scored) -> Draws | None:
        key = (tuple(a.val_patients), tuple(a.val_labels.tolist()), tuple(a.test_patients), tuple(a.test_labels.tolist()))
        if n and key not in made:
            made[key] = Draws.make(a, n, seed)
        return made.get(key)

    out = {"targets": tg, "method": "threshold picked on validation per arm and seed to reach the target "
                                   "specificity; re-picked inside each bootstrap draw (validation and test "
                                   "patients resampled)", "arms": {}}
    for arm, s in scored.items():
        out["arms"][arm] = {name: arm_at(s, spec, n, seed, draws=draws_for(s)) for name, spec in tg.items()}
        if arm != "real" and "real" in scored:
            for name, spec in tg.items():
                out["arms"][arm][name]["vs_real"] = difference_at(scored["real"], s, spec, n, seed,
                                                                    draws=draws_for(scored["real"]))
    return out
