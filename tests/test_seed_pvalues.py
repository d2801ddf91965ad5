"""The shortcut verdict's p comes from one valid test over the seeds, not the median of per-seed p values:
exact with one seed, calibrated on nulls whose answer is known, and small on a clear shortcut."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import fisher_exact

from cxrsynth.measure import metrics as M
from cxrsynth.measure.seed_pvalues import order_statistic_p, pooled_permutation_p
from cxrsynth.stages.benchmark import controls as C

pytestmark = pytest.mark.no_data

TASK = "pneumonia-covid"


def _seed_hits(rng, propensity: np.ndarray, seeds: int) -> np.ndarray:
    """(seeds, images) calls: image i called COVID-19 with its own probability in every seed. Seeds share
    the images, so their calls are correlated, as a benchmark arm's are."""
    return (rng.random((seeds, len(propensity))) < propensity).astype(int)


def test_one_seed_is_fishers_exact_test():
    a, b = [1] * 7 + [0] * 33, [1] * 4 + [0] * 56
    p, how = pooled_permutation_p(a, b)
    assert p == pytest.approx(fisher_exact([[7, 33], [4, 56]], alternative="greater").pvalue) and how == "Fisher exact"
    # seeds that agree on every image are one seed's evidence, not k seeds' (a CMH test would count it k times)
    assert pooled_permutation_p([a, a, a], [b, b, b])[0] == pytest.approx(p)


def test_the_pooled_test_holds_its_level_on_nulls():
    """Controls and test negatives with the same mix of per-image propensities (the null holds): over 300
    simulated arms of 3 seeds, p < 0.05 in about 5% of them or fewer, never well above."""
    rng = np.random.default_rng(0)
    ps = []
    for _ in range(300):
        q = rng.beta(0.5, 2.0, 100)  # images differ in how often a model calls them; seeds share that
        hits = _seed_hits(rng, q, 3)
        ps.append(pooled_permutation_p(hits[:, :40], hits[:, 40:], draws=999, seed=int(rng.integers(1 << 30)))[0])
    rate = float(np.mean(np.asarray(ps) < 0.05))
    assert rate <= 0.08  # 0.05 plus twice the simulation's standard error (0.013)
    assert 0.3 < float(np.median(ps)) < 0.7  # not degenerate: p spreads over (0, 1) under the null


def test_the_pooled_test_finds_a_shift_the_seeds_share():
    rng = np.random.default_rng(1)
    hits_a, hits_b = _seed_hits(rng, np.full(40, 0.5), 3), _seed_hits(rng, np.full(60, 0.1), 3)
    p, how = pooled_permutation_p(hits_a, hits_b, draws=2000)
    assert p < 0.001 and "permutation" in how


def test_the_median_bound_is_the_median_made_valid():
    assert order_statistic_p([0.03]) == pytest.approx(0.03)
    assert order_statistic_p([0.02, 0.4]) == pytest.approx(0.04)  # two: twice the smaller (Bonferroni)
    assert order_statistic_p([0.01, 0.02, 0.9]) == pytest.approx(0.03)  # three: the median x 3/2
    assert order_statistic_p([0.4, 0.9]) == 0.8 and order_statistic_p([0.6, 0.9]) == 1.0 and order_statistic_p([]) is None


def _cells(rng, control_q: np.ndarray, test_q: np.ndarray, seeds: int) -> list[dict]:
    """An arm's cells as result.json keeps them: 20 COVID-19 test films called positive, negatives called
    with the given per-image probabilities (the same images in every seed), one patient per film."""
    n_c, n_t = len(control_q), len(test_q)
    pats = [f"t{i}" for i in range(20)] + [f"n{i}" for i in range(n_t)]
    ctl_pats = [f"collection:{i}" for i in range(n_c)]
    cells = []
    for seed in range(seeds):
        control = np.where(rng.random(n_c) < control_q, 0.9, 0.1)
        test_neg = np.where(rng.random(n_t) < test_q, 0.9, 0.1)
        scores, labels = np.r_[np.full(20, 0.9), test_neg], [1] * 20 + [0] * n_t
        cm = M.threshold_metrics(labels, scores, 0.5)["confusion"]
        ss = C.same_source_metrics(scores[:20], pats[:20], control, ctl_pats, 0.5, 300, seed, cm, TASK,
                                   test_negatives=(test_neg, pats[20:]))
        cells.append({"task": TASK, "seed": seed, "threshold": 0.5, "test_scores": scores.tolist(),
                      "test_labels": labels, "test_patients": pats, "controls": {"same_source": ss, "external": {}}})
    return cells


def test_a_clear_shortcut_is_flagged_and_a_null_is_not():
    """Known answers: a model calling 60% of same-source negatives COVID-19 against 10% of test negatives is
    flagged (one p over 3 seeds, per-image shares pooled); one calling both at 15% is not."""
    from cxrsynth.stages.benchmark.report import _verdict
    from cxrsynth.stages.benchmark.run import _control_summary

    rng = np.random.default_rng(2)
    shortcut = _control_summary(_cells(rng, np.full(40, 0.6), np.full(60, 0.1), 3), bootstrap=300)["same_source"]
    v = shortcut["verdict"]
    assert v["verdict"] == "source" and v["p"] < 1e-4 and v["difference_patient_ci95"][0] > 0
    assert "seeds pooled per image" in v["p_method"] and len(v["p_per_seed"]) == 3
    text = " ".join(_verdict(TASK, {"real": {"concrete_arm": "real", "controls": {"same_source": shortcut}}}))
    assert "part of what they detect is the source: real" in text and "one-sided exact test over all seeds" in text

    null = _control_summary(_cells(rng, np.full(40, 0.15), np.full(60, 0.15), 3), bootstrap=300)["same_source"]
    assert null["verdict"]["verdict"] == "no evidence" and null["verdict"]["p"] >= 0.05


def test_runs_without_per_image_calls_combine_their_p_values_by_a_valid_bound():
    """Cells scored before per-image calls were kept: each seed's Fisher p, combined by the median bound
    (twice the smaller of two), and the verdict says so."""
    rng = np.random.default_rng(3)
    cells = _cells(rng, np.full(40, 0.6), np.full(60, 0.1), 2)
    old = [dict(c, controls={"same_source": C.public(c["controls"]["same_source"]), "external": {}}) for c in cells]
    v = C.verdict_over_seeds(old, 300)
    per_seed = [c["controls"]["same_source"]["p_more_than_test"] for c in cells]
    assert v["p"] == pytest.approx(min(1.0, 2 * min(per_seed))) and "valid bound" in v["p_method"]
    assert v["p_per_seed"] == per_seed


def test_the_table_cell_says_how_the_p_was_made():
    from cxrsynth.stages.benchmark.report import _same_source_cells

    ss = {"fpr": M.summarise_seeds([0.4, 0.6]), "auroc": M.summarise_seeds([0.6, 0.6])}
    pooled = {"verdict": "source", "p": 0.001, "seeds": 3, "p_method": "Fisher exact, seeds pooled per image"}
    bound = dict(pooled, p_method="Fisher exact per seed, 3 seeds combined by a valid bound on their median")
    assert _same_source_cells(ss | {"verdict": pooled})[1] == "0.001 (one test over the seeds)"
    assert _same_source_cells(ss | {"verdict": bound})[1] == "0.001 (bound on the seeds' median)"
    assert _same_source_cells(ss | {"verdict": dict(pooled, seeds=1)})[1] == "0.001"
