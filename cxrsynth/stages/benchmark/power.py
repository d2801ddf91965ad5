"""Power, stated before the grid, and the comparisons' multiplicity after it.

Before any classifier trains, the benchmark says which differences its test set can detect at all:
the minimal detectable difference (MDD) in AUROC and in sensitivity, at two-sided alpha 0.05 and
power 0.8, for the test split's size counted in *patients* (a patient with several images is not
several independent observations; counting patients is the conservative choice).

- AUROC: Hanley & McNeil (1982) variance of one AUROC at an assumed base value A,
  ``Var = [A(1-A) + (n1-1)(Q1-A^2) + (n0-1)(Q2-A^2)] / (n1 n0)`` with ``Q1 = A/(2-A)``,
  ``Q2 = 2A^2/(1+A)``; the difference of two arms on the same test set has variance
  ``2 Var (1 - r)`` (Hanley & McNeil 1983), r the correlation of the two AUROCs. MDD =
  ``(z_{1-alpha/2} + z_power) * sqrt(2 Var (1 - r))``, given at r = 0 (unpaired, an upper bound) and
  r = 0.5 (a typical paired value).
- Sensitivity: the two-proportion normal approximation for n1 positives per arm at a base
  sensitivity p0, solved for the difference d:
  ``n1 = (z_a sqrt(2 p q) + z_b sqrt(p0 q0 + p1 q1))^2 / d^2``, p1 = p0 + d, p = (p0 + p1)/2.

After the grid: one pre-specified primary comparison per task, the best synthetic arm (by mean
*validation* AUROC, so the test set does not choose it) against ``real-oversampled`` (the count- and
step-matched control) on AUROC; every other comparison is secondary and Holm-corrected together.
"""

from __future__ import annotations

import math
import numpy as np
from scipy.stats import norm

from ...measure import metrics as M
from ...core.vocab import TASKS

ALPHA, POWER = 0.05, 0.8
BASE_AUROC, BASE_SENSITIVITY = 0.80, 0.80  # assumed before the grid; stated with every number
CONTROL = "real-oversampled"
REAL_ARMS = ("real", CONTROL)


def hanley_mcneil_var(auc: float, n_pos: int, n_neg: int) -> float:
    """Variance of one AUROC estimate (Hanley & McNeil 1982)."""
    q1, q2 = auc / (2 - auc), 2 * auc ** 2 / (1 + auc)
    return (auc * (1 - auc) + (n_pos - 1) * (q1 - auc ** 2) + (n_neg - 1) * (q2 - auc ** 2)) / (n_pos * n_neg)


def _z(alpha: float, power: float) -> float:
    return float(norm.ppf(1 - alpha / 2) + norm.ppf(power))


def mdd_auroc(n_pos: int, n_neg: int, auc: float = BASE_AUROC, r: float = 0.0, alpha: float = ALPHA,
              power: float = POWER) -> float | None:
    """Smallest AUROC difference between two arms on one test set detectable at ``alpha``, ``power``."""
    if n_pos < 1 or n_neg < 1:
        return None
    return _z(alpha, power) * math.sqrt(2 * hanley_mcneil_var(auc, n_pos, n_neg) * (1 - r))


def _n_two_proportions(p0: float, d: float, alpha: float, power: float) -> float:
    p1 = p0 + d
    pbar = (p0 + p1) / 2
    za, zb = norm.ppf(1 - alpha / 2), norm.ppf(power)
    return (za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p0 * (1 - p0) + p1 * (1 - p1))) ** 2 / d ** 2


def mdd_sensitivity(n_pos: int, p0: float = BASE_SENSITIVITY, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """Smallest rise of sensitivity above ``p0`` that ``n_pos`` positives per arm detect (two-proportion
    test); None when even a rise to 100% is not detectable."""
    if n_pos < 1 or _n_two_proportions(p0, 1 - p0 - 1e-9, alpha, power) > n_pos:
        return None
    lo, hi = 1e-6, 1 - p0 - 1e-9
    for _ in range(100):  # the needed n falls as d grows: bisect for n(d) = n_pos
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _n_two_proportions(p0, mid, alpha, power) > n_pos else (lo, mid)
    return hi


def test_set_power(items_by_task: dict[str, list]) -> dict:
    """Per task, from the test split's evaluation items (``arms.EvalItem``): its size in images and
    patients, and the minimal detectable differences."""
    out = {"alpha": ALPHA, "power": POWER, "assumed_auroc": BASE_AUROC, "assumed_sensitivity": BASE_SENSITIVITY,
           "counts": "patients (a patient with images of both classes counts in both)",
           "method": "AUROC: Hanley-McNeil variance of the difference, at correlation 0 (unpaired bound) and 0.5; "
                     "sensitivity: two-proportion normal approximation, positive patients per arm",
           "tasks": {}}
    for task, items in items_by_task.items():
        pos = {i.patient for i in items if i.label == 1}
        neg = {i.patient for i in items if i.label == 0}
        out["tasks"][task] = {
            "images": len(items), "positive_images": sum(i.label for i in items),
            "patients": len(pos | neg), "positive_patients": len(pos), "negative_patients": len(neg),
            "mdd_auroc_r0": mdd_auroc(len(pos), len(neg)), "mdd_auroc_r05": mdd_auroc(len(pos), len(neg), r=0.5),
            "mdd_sensitivity": mdd_sensitivity(len(pos))}
    return out


def power_before_grid(data, tasks, limit: int | None) -> dict:
    """:func:`test_set_power` for the test split of ``data`` (:class:`~.inputs.SplitData`)."""
    from .arms import eval_items

    return test_set_power({t: eval_items(data, t, "test", limit) for t in tasks if t in TASKS})


def power_lines(power: dict) -> list[str]:
    """The statement printed before the grid and put at the head of tables.md."""
    lines = [f"Power (stated before training; alpha {power['alpha']}, power {power['power']}, counted in patients; "
             f"AUROC {power['assumed_auroc']:.2f} and sensitivity {power['assumed_sensitivity']:.0%} assumed): "
             f"{power['method']}."]
    for task, p in power["tasks"].items():
        fmt = lambda v, pct=False: "not detectable" if v is None else (f"{100 * v:.1f} points" if pct else f"{v:.3f}")
        lines.append(f"- {task}: test {p['images']} images of {p['patients']} patients ({p['positive_patients']} "
                     f"COVID-19 patients); minimal detectable AUROC difference {fmt(p['mdd_auroc_r05'])} "
                     f"({fmt(p['mdd_auroc_r0'])} unpaired), sensitivity difference {fmt(p['mdd_sensitivity'], True)}.")
    return lines


def _best_synthetic(arms: dict) -> tuple[str | None, str]:
    """The synthetic arm with the highest mean validation AUROC (test AUROC in the paper protocol,
    which has no validation; said so)."""
    syn = {a: v for a, v in arms.items() if a not in REAL_ARMS}
    val = {a: v.get("validation_auroc") for a, v in syn.items() if v.get("validation_auroc") is not None}
    if val:
        return max(val, key=val.get), "highest mean validation AUROC"
    test = {a: (v.get("auroc") or {}).get("mean") for a, v in syn.items()}
    test = {a: m for a, m in test.items() if m is not None}
    return (max(test, key=test.get), "highest mean TEST AUROC (no validation in this protocol)") if test else (None, "")


def comparisons(results: list[dict], summary: dict, operating: dict, bootstrap: int) -> dict:
    """The primary comparison per task, and every secondary comparison with its Holm-adjusted p-value
    (across all tasks, arms and metrics of the benchmark)."""
    primary, secondary = {}, {}
    for task, arms in summary.items():
        best, why = _best_synthetic({a: {"validation_auroc": _mean_validation_auroc(results, task, a),
                                         "auroc": v.get("auroc")} for a, v in arms.items()})
        runs = {a: sorted((r for r in results if r["task"] == task and r["arm"] == a), key=lambda r: r["seed"])
                for a in (CONTROL, best) if a}
        if best and runs.get(CONTROL) and runs.get(best) and \
                runs[CONTROL][0]["test_record_ids"] == runs[best][0]["test_record_ids"]:
            k = min(len(runs[CONTROL]), len(runs[best]))
            a, b = runs[CONTROL][:k], runs[best][:k]
            d = M.paired_seed_difference(a[0]["test_labels"], a[0]["test_patients"], [r["test_scores"] for r in a],
                                         [r["test_scores"] for r in b], [r["threshold"] for r in a],
                                         [r["threshold"] for r in b], bootstrap)
            primary[task] = {"arm": best, "chosen_by": why, "against": CONTROL, "metric": "auroc",
                             "difference": d and d["difference"], "ci95": d and d["ci95"],
                             "p": d and d["p_two_sided"], "interval": d and d["interval"]}
        else:
            primary[task] = {"arm": best, "against": CONTROL, "not_measured": f"needs {CONTROL} and a synthetic arm"}
        for arm, v in arms.items():
            d = v.get("auroc_vs_real")
            if d:
                secondary[f"{task}: {arm} vs real, AUROC"] = d.get("p_two_sided")
            for name, op in ((operating or {}).get(task) or {}).get("arms", {}).get(arm, {}).items():
                if op.get("vs_real"):
                    secondary[f"{task}: {arm} vs real, sensitivity at {name}"] = op["vs_real"]["p_two_sided"]
    adjusted = M.holm(secondary)
    return {"primary": primary,
            "primary_rule": f"best synthetic arm (by validation AUROC) vs {CONTROL} on AUROC, per task; not corrected",
            "secondary": [{"comparison": k, "p": p, "p_holm": adjusted[k]} for k, p in secondary.items()],
            "secondary_rule": "Holm over every secondary comparison of this benchmark (bootstrap two-sided p)"}


def _mean_validation_auroc(results: list[dict], task: str, arm: str) -> float | None:
    vals = [(r.get("validation") or {}).get("auroc") for r in results if r["task"] == task and r["arm"] == arm]
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals)) if vals else None
