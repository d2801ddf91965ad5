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


def _valid(y: np.ndarray, pick: np.ndarray) -> bool:
    return len(set(y[pick].tolist())) == 2


def _draws(ref: Scored, n: int, seed: int):
    """``n`` paired resamples of (validation patients, test patients); draws missing a class are
    skipped (as ``metrics._patient_bootstrap`` does)."""
    vg, tg = M._groups(ref.val_patients), M._groups(ref.test_patients)
    rng = np.random.default_rng([seed, 2])
    for _ in range(n):
        v = np.concatenate([vg[i] for i in rng.integers(0, len(vg), len(vg))])
        t = np.concatenate([tg[i] for i in rng.integers(0, len(tg), len(tg))])
        if _valid(ref.val_labels, v) and _valid(ref.test_labels, t):
            yield v, t


def _sens(a: Scored, j: int, spec: float, v=None, t=None) -> float:
    v = np.arange(len(a.val_labels)) if v is None else v
    t = np.arange(len(a.test_labels)) if t is None else t
    return at_specificity(a.val_labels[v], a.val[j][v], a.test_labels[t], a.test[j][t], spec)["sensitivity"]


def real_target(real: Scored) -> float:
    """The ``real`` arm's validation specificity at its Youden threshold, mean over its seeds."""
    specs = []
    for s in real.val:
        thr = M.youden_threshold(real.val_labels, s)
        specs.append(float((s[real.val_labels == 0] < thr).mean()))
    return float(np.mean(specs))


def arm_at(arm: Scored, spec: float, n: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """One arm at a target specificity: mean over seeds of test sensitivity, specificity and balanced
    accuracy, with a patient-bootstrap interval of the sensitivity (threshold re-picked per draw)."""
    k = len(arm.val)
    per = [at_specificity(arm.val_labels, arm.val[j], arm.test_labels, arm.test[j], spec) for j in range(k)]
    point = {m: float(np.mean([p[m] for p in per])) for m in ("sensitivity", "specificity", "balanced_accuracy")}
    boot = [float(np.mean([_sens(arm, j, spec, v, t) for j in range(k)])) for v, t in _draws(arm, n, seed)] if n else []
    ci, how = M.seed_level_interval(point["sensitivity"], boot, [p["sensitivity"] for p in per], n, level, (0.0, 1.0))
    return point | {"target_specificity": spec, "thresholds": [p["threshold"] for p in per],
                    "sensitivity_ci95": ci, "interval": how, "seeds": k}


def difference_at(ref: Scored, arm: Scored, spec: float, n: int = 1000, seed: int = 0, level: float = 0.95) -> dict | None:
    """``arm`` minus ``ref`` in test sensitivity at one target specificity, each arm's threshold picked
    on validation; paired seed by seed and on the same patient resample."""
    if not (np.array_equal(ref.test_labels, arm.test_labels) and np.array_equal(ref.val_labels, arm.val_labels)):
        return None
    k = min(len(ref.val), len(arm.val))
    per_seed = [_sens(arm, j, spec) - _sens(ref, j, spec) for j in range(k)]
    point = float(np.mean(per_seed))
    boot = []
    seed_rng = np.random.default_rng([seed, 3])
    for v, t in (_draws(ref, n, seed) if n else []):
        seeds = seed_rng.integers(0, k, k) if k >= M.MIN_SEEDS_BOOTSTRAP else range(k)
        boot.append(float(np.mean([_sens(arm, j, spec, v, t) - _sens(ref, j, spec, v, t) for j in seeds])))
    ci, how = M.seed_level_interval(point, boot, per_seed, n, level)
    p = float(min(1.0, 2 * min(np.mean(np.asarray(boot) <= 0), np.mean(np.asarray(boot) >= 0)))) if boot else None
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
    out = {"targets": tg, "method": "threshold picked on validation per arm and seed to reach the target "
                                   "specificity; re-picked inside each bootstrap draw (validation and test "
                                   "patients resampled)", "arms": {}}
    for arm, s in scored.items():
        out["arms"][arm] = {name: arm_at(s, spec, n, seed) for name, spec in tg.items()}
        if arm != "real" and "real" in scored:
            for name, spec in tg.items():
                out["arms"][arm][name]["vs_real"] = difference_at(scored["real"], s, spec, n, seed)
    return out
