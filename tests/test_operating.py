"""Arms compared at one specificity (issue 20), and the statistics helpers behind it, on constructed
score vectors whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from cxrsynth.measure import metrics as M
from cxrsynth.stages.benchmark import operating as O

pytestmark = pytest.mark.no_data


def _set(rng, n_pat, p_pos, shift=1.5):
    """Patients with 1-2 images each; a positive image scores higher by ``shift`` logits on average."""
    y, pat, z = [], [], []
    for p in range(n_pat):
        lab = int(rng.random() < p_pos)
        for _ in range(1 + int(rng.random() < 0.3)):
            y.append(lab), pat.append(f"p{p}"), z.append(rng.normal(shift * lab, 1.0))
    return np.asarray(y), pat, np.asarray(z)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _runs(arm, vy, vp, vz_list, ty, tp, tz_list):
    return [{"seed": k, "arm": arm, "validation_labels": vy.tolist(), "validation_patients": vp,
             "validation_scores": _sigmoid(vz).tolist(), "test_labels": ty.tolist(), "test_patients": tp,
             "test_scores": _sigmoid(tz).tolist()} for k, (vz, tz) in enumerate(zip(vz_list, tz_list))]


def test_threshold_at_specificity_reaches_the_target_and_no_more_than_ties_force():
    y = np.array([0] * 10 + [1] * 3)
    s = np.array([.1, .2, .3, .4, .5, .6, .7, .8, .9, .95, .5, .85, .99])
    thr = M.threshold_at_specificity(y, s, 0.9)
    assert 0.9 < thr <= 0.95  # 9 of 10 negatives below it, the 10th (0.95) above
    assert np.mean(s[y == 0] < thr) == pytest.approx(0.9)
    assert np.mean(s[y == 1] >= thr) == pytest.approx(1 / 3)
    tied = np.array([.1, .5, .5, .5, .9] + [.95])
    thr = M.threshold_at_specificity(np.array([0] * 5 + [1]), tied, 0.5)  # 3 of 5 needed; ties pushed together
    assert np.mean(tied[:5] < thr) == pytest.approx(0.8)


def test_a_monotone_shift_gives_the_same_sensitivity_at_a_fixed_specificity():
    """Arm B's scores are arm A's pushed towards COVID-19 (logit + 2: what a prior shift does). Same
    ranking, so at one specificity they have the same sensitivity, in every seed and every bootstrap
    draw; at each arm's own 0.5 cut (the paper's argmax) B gains a lot of sensitivity and loses
    specificity, with no better classifier."""
    rng = np.random.default_rng(0)
    vy, vp, vz = _set(rng, 60, 0.3)
    ty, tp, tz = _set(rng, 80, 0.3)
    seeds_v = [vz - 2.5 + rng.normal(0, .3, len(vz)) for _ in range(3)]  # A: few positives called at 0.5
    seeds_t = [tz - 2.5 + rng.normal(0, .3, len(tz)) for _ in range(3)]
    a = _runs("real", vy, vp, seeds_v, ty, tp, seeds_t)
    b = _runs("real+own", vy, vp, [v + 2 for v in seeds_v], ty, tp, [t + 2 for t in seeds_t])
    out = O.compare_arms({"real": a, "real+own": b}, n=200, seed=1)
    for name in ("real_operating_point", "specificity_90"):
        d = out["arms"]["real+own"][name]["vs_real"]
        assert d["sensitivity_difference"] == 0.0
        assert d["ci95"] == (0.0, 0.0)
        assert out["arms"]["real+own"][name]["sensitivity"] == out["arms"]["real"][name]["sensitivity"]
    assert out["targets"]["specificity_90"] == 0.9
    assert 0.3 < out["targets"]["real_operating_point"] < 1
    assert out["arms"]["real"]["specificity_90"]["sensitivity_ci95"][0] < out["arms"]["real"]["specificity_90"]["sensitivity"]
    # at their own 0.5 cuts: the shift reads as a large sensitivity gain and a specificity loss
    own = [M.threshold_metrics(ty, _sigmoid(t), 0.5) for t in seeds_t]
    own_b = [M.threshold_metrics(ty, _sigmoid(t + 2), 0.5) for t in seeds_t]
    gain = np.mean([q["sensitivity"] - p["sensitivity"] for p, q in zip(own, own_b)])
    loss = np.mean([p["specificity"] - q["specificity"] for p, q in zip(own, own_b)])
    assert gain > 0.2 and loss > 0.2
    assert M.auroc(ty, _sigmoid(seeds_t[0])) == M.auroc(ty, _sigmoid(seeds_t[0] + 2))


def test_own_youden_thresholds_compare_different_points_of_the_same_curve():
    """Two arms with the same test ranking whose validation curves differ by noise: Youden's J picks
    points far apart (different specificities), so their sensitivities differ although the test ROC
    curves are identical; at one fixed specificity the difference is small and its interval holds 0."""
    rng = np.random.default_rng(3)
    vy, vp, vz = _set(rng, 40, 0.4, shift=1.0)
    ty, tp, tz = _set(rng, 80, 0.3, shift=1.0)
    gaps = []
    for k in range(40):
        noisy = vz + np.random.default_rng(k).normal(0, 0.6, len(vz))
        ta, tb = M.youden_threshold(vy, vz), M.youden_threshold(vy, noisy)
        gaps.append(M.threshold_metrics(ty, tz, tb)["sensitivity"] - M.threshold_metrics(ty, tz, ta)["sensitivity"])
    k = int(np.argmax(np.abs(gaps)))
    assert abs(gaps[k]) > 0.2  # one test ROC curve, two Youden points: 20+ points of "sensitivity difference"
    noisy = vz + np.random.default_rng(k).normal(0, 0.6, len(vz))
    d = O.difference_at(O.Scored(vy, vp, [vz], ty, tp, [tz]), O.Scored(vy, vp, [noisy], ty, tp, [tz]), 0.9, n=300)
    assert d["ci95"][0] <= 0 <= d["ci95"][1]
    assert abs(d["sensitivity_difference"]) < abs(gaps[k])


def test_seed_level_is_a_t_term_under_five_seeds_and_resampled_from_five():
    rng = np.random.default_rng(5)
    vy, vp, vz = _set(rng, 50, 0.3)
    ty, tp, tz = _set(rng, 60, 0.3)
    ref = O.Scored(vy, vp, [vz, vz], ty, tp, [tz, tz])
    arm = O.Scored(vy, vp, [vz, vz], ty, tp, [tz + rng.normal(0, 1, len(tz)), tz + rng.normal(0, 1, len(tz))])
    two = O.difference_at(ref, arm, 0.9, n=200)
    assert "t-interval" in two["interval"] and "1 df" in two["interval"]
    lo, hi = two["ci95"]
    assert hi - lo > 0 and lo < two["sensitivity_difference"] < hi
    ref5 = O.Scored(vy, vp, [vz] * 5, ty, tp, [tz] * 5)
    arm5 = O.Scored(vy, vp, [vz] * 5, ty, tp, [tz + rng.normal(0, 1, len(tz)) for _ in range(5)])
    assert O.difference_at(ref5, arm5, 0.9, n=200)["interval"].startswith("percentile bootstrap")


def test_holm_on_a_known_set():
    # sorted p: .01 (x4), .02 (x3), .03 (x2), .04 (x1) -> .04, .06, .06 (monotone), .06; None untouched
    adj = M.holm({"a": 0.04, "b": 0.01, "c": 0.03, "d": 0.02, "e": None})
    assert adj == pytest.approx({"a": 0.06, "b": 0.04, "c": 0.06, "d": 0.06, "e": None})
    assert M.holm({"x": 0.6, "y": 0.5}) == {"x": 1.0, "y": 1.0}


def test_seed_t_term_by_hand_and_balanced_accuracy():
    # no patient spread; per-seed differences 0.1 and 0.3: mean 0.2, sd 0.1414, se 0.1, t(1, .975) = 12.706
    ci, how = M.seed_level_interval(0.2, [0.2] * 100, [0.1, 0.3], 100, bounds=(-5, 5))
    assert ci == pytest.approx((0.2 - 1.27062, 0.2 + 1.27062), abs=1e-4) and "1 df" in how
    assert M.seed_level_interval(0.2, [0.2] * 100, [0.1, 0.3], 100)[0] == pytest.approx((-1.0, 1.0))  # clipped
    assert M.seed_level_interval(0.2, [0.2] * 10, [0.1, 0.3], 100) == (None, None)  # too few valid draws
    assert M.balanced_accuracy(0.8, 0.6) == pytest.approx(0.7)
    assert M.balanced_accuracy(None, 0.6) is None


def test_wilson_only_for_per_patient_counts_else_a_wider_patient_bootstrap():
    hits = [True] * 12 + [False] * 8
    ci, how = M.proportion_ci(hits, [f"p{i}" for i in range(20)])
    assert how.startswith("wilson") and ci == pytest.approx(M.wilson(12, 20))
    # the same 20 images as 4 patients of 5 identical outcomes: 4 trials' worth of information, not 20
    clustered = [True] * 10 + [False] * 5 + [True] * 2 + [False] * 3
    ci_b, how_b = M.proportion_ci(clustered, [f"p{i // 5}" for i in range(20)], n=500)
    assert how_b.startswith("patient bootstrap")
    assert ci_b[1] - ci_b[0] > (ci[1] - ci[0]) * 1.3
    rates = M.clustered_rates([1, 1, 1, 0, 0], [.9, .8, .2, .1, .7], ["a", "a", "b", "c", "d"], 0.5, 200, 0)
    assert rates["sensitivity_interval"].startswith("patient bootstrap") and rates["sensitivity_wilson95"] is None
    assert rates["specificity_interval"].startswith("wilson") and "specificity_wilson95" not in rates


def test_auroc_difference_under_five_seeds_uses_the_t_term():
    rng = np.random.default_rng(7)
    y, pats, z = _set(rng, 60, 0.4)
    ref = [z + rng.normal(0, .5, len(z)) for _ in range(2)]
    arm = [z + rng.normal(0, .5, len(z)) for _ in range(2)]
    d = M.paired_seed_difference(y, pats, ref, arm, [0.0, 0.0], [0.0, 0.0], n=300)
    assert "1 df" in d["interval"] and len(d["per_seed"]) == 2
    assert d["difference"] == pytest.approx(np.mean(d["per_seed"]))
    # the t term (12.7 x se over 2 seeds) makes it wider than the patient level alone
    t_half = 12.706 * np.std(d["per_seed"], ddof=1) / np.sqrt(2)
    assert d["ci95"][1] - d["ci95"][0] > min(2 * t_half * 0.99, 1.0)
    assert 0 <= d["p_two_sided"] <= 1
