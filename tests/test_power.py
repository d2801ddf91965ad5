"""Power before the grid and multiplicity after it, against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from cxrsynth.stages.benchmark import power as P
from cxrsynth.stages.benchmark.arms import EvalItem

pytestmark = pytest.mark.no_data


def test_mdd_auroc_against_a_hand_computation():
    # A = 0.8, 40 positives, 100 negatives: Q1 = 0.8/1.2 = 2/3, Q2 = 1.28/1.8 = 0.71111
    # Var = [0.16 + 39 (0.66667 - 0.64) + 99 (0.71111 - 0.64)] / 4000 = (0.16 + 1.04 + 7.04) / 4000 = 0.00206
    assert P.hanley_mcneil_var(0.8, 40, 100) == pytest.approx(0.00206, rel=1e-4)
    # MDD = (1.959964 + 0.841621) * sqrt(2 * 0.00206) = 2.801585 * 0.0641872 = 0.179826
    assert P.mdd_auroc(40, 100) == pytest.approx(0.179826, rel=1e-4)
    assert P.mdd_auroc(40, 100, r=0.5) == pytest.approx(0.179826 / np.sqrt(2), rel=1e-4)
    assert P.mdd_auroc(400, 1000) < P.mdd_auroc(40, 100)
    assert P.mdd_auroc(0, 10) is None


def test_mdd_sensitivity_against_a_hand_computation():
    # p0 = 0.5, d = 0.2: pbar 0.6; 1.959964 sqrt(0.48) + 0.841621 sqrt(0.25 + 0.21) = 1.357905 + 0.570815
    # = 1.92872; n = 1.92872^2 / 0.04 = 93.0 positives per arm
    assert P._n_two_proportions(0.5, 0.2, 0.05, 0.8) == pytest.approx(93.0, abs=0.05)
    assert P.mdd_sensitivity(93, p0=0.5) == pytest.approx(0.2, abs=2e-3)
    assert P.mdd_sensitivity(3, p0=0.8) is None  # 3 positives cannot show any rise from 80%


def test_test_set_power_counts_patients_not_images():
    items = ([EvalItem("x", 1, f"c{i // 2}", f"r{i}") for i in range(80)]  # 80 positive images, 40 patients
             + [EvalItem("x", 0, f"n{i}", f"s{i}") for i in range(100)])
    pw = P.test_set_power({"normal-covid": items})
    t = pw["tasks"]["normal-covid"]
    assert (t["images"], t["positive_images"], t["positive_patients"], t["patients"]) == (180, 80, 40, 140)
    assert t["mdd_auroc_r0"] == pytest.approx(P.mdd_auroc(40, 100))
    lines = P.power_lines(pw)
    assert "Hanley-McNeil" in lines[0] and "40 COVID-19 patients" in lines[1]


def _runs(task, arm, seeds, auc_shift, val_auc, rng_seed):
    rng = np.random.default_rng(rng_seed)
    y = np.array([0] * 30 + [1] * 20)
    out = []
    for s in range(seeds):
        z = rng.normal(0, 1, 50) + auc_shift * y
        out.append({"task": task, "arm": arm, "seed": s, "test_labels": y.tolist(), "test_patients": [f"p{i}" for i in range(50)],
                    "test_scores": (1 / (1 + np.exp(-z))).tolist(), "threshold": 0.5, "test_record_ids": list(range(50)),
                    "validation": {"auroc": val_auc}, "concrete_arm": arm, "train": None,
                    "test": {k: None for k in ("sensitivity", "false_negatives", "specificity", "precision", "f1",
                                               "auroc", "auprc")}})
    return out


def test_primary_is_chosen_on_validation_and_the_rest_holm_corrected():
    from cxrsynth.stages.benchmark.run import aggregate

    results = (_runs("normal-covid", "real", 2, 1.0, 0.7, 0) + _runs("normal-covid", "real-oversampled", 2, 1.0, 0.7, 1)
               + _runs("normal-covid", "real+own", 2, 1.5, 0.6, 2) + _runs("normal-covid", "real+all", 2, 3.0, 0.9, 3))
    summary = aggregate(results, 200)
    cmp = P.comparisons(results, summary, {}, 200)
    prim = cmp["primary"]["normal-covid"]
    assert prim["arm"] == "real+all" and "validation" in prim["chosen_by"]  # highest validation AUROC
    assert prim["difference"] > 0.1 and prim["ci95"][0] < prim["difference"] < prim["ci95"][1]
    ps = {c["comparison"]: c for c in cmp["secondary"]}
    assert set(ps) == {"normal-covid: real-oversampled vs real, AUROC", "normal-covid: real+own vs real, AUROC",
                       "normal-covid: real+all vs real, AUROC"}
    raw = sorted(c["p"] for c in ps.values())
    assert min(c["p_holm"] for c in ps.values()) == pytest.approx(min(1.0, 3 * raw[0]))
    assert all(c["p_holm"] >= c["p"] for c in ps.values())
