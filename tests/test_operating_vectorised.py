"""The operating-point bootstrap, vectorised over draws, gives exactly what the plain loop over draws gave:
the same patient draws (one Generator call per side and draw), the same thresholds, the same intervals."""

from __future__ import annotations

import numpy as np
import pytest

from cxrsynth.measure import metrics as M
from cxrsynth.stages.benchmark import operating as O

pytestmark = pytest.mark.no_data


def _runs(rng, k: int, nv: int, nt: int, shift: float) -> list[dict]:
    """k seeds' scores on one validation set (patients of 2 films) and one test set (patients of 3 films)."""
    yv, yt = (rng.random(nv) < 0.3).astype(int), (rng.random(nt) < 0.2).astype(int)

    def scores(y):  # rounded, so that ties between films occur as they do in result.json
        return np.round(1 / (1 + np.exp(-rng.normal(shift * y, 1))), 3).tolist()

    return [{"seed": j, "validation_labels": yv.tolist(), "validation_patients": [f"v{i // 2}" for i in range(nv)],
             "validation_scores": scores(yv), "test_labels": yt.tolist(), "test_patients": [f"t{i // 3}" for i in range(nt)],
             "test_scores": scores(yt)} for j in range(k)]


def _loop_draws(a: O.Scored, n: int, seed: int):
    """The plain loop the vectorised code replaced: whole patients drawn, images concatenated."""
    vg, tg = M.rows_by_patient(a.val_patients), M.rows_by_patient(a.test_patients)
    rng = np.random.default_rng([seed, 2])
    for _ in range(n):
        v, t = M.resample_patients(vg, rng), M.resample_patients(tg, rng)
        if len(set(a.val_labels[v].tolist())) == 2 and len(set(a.test_labels[t].tolist())) == 2:
            yield v, t


def _loop_sens(a: O.Scored, j: int, spec: float, v, t) -> float:
    return O.at_specificity(a.val_labels[v], a.val[j][v], a.test_labels[t], a.test[j][t], spec)["sensitivity"]


@pytest.mark.parametrize("k", [2, 5])  # under 5 seeds every draw keeps all seeds; from 5 they are resampled
def test_vectorised_bootstrap_equals_the_loop(k):
    rng = np.random.default_rng(k)
    real, own = (O.Scored.from_runs(_runs(rng, k, 50, 90, s)) for s in (1.0, 1.4))
    own.val_labels, own.test_labels = real.val_labels, real.test_labels  # one task: the same images
    own.val_patients, own.test_patients = real.val_patients, real.test_patients
    n, seed, spec = 200, 3, 0.9
    loop_arm = [float(np.mean([_loop_sens(own, j, spec, v, t) for j in range(k)])) for v, t in _loop_draws(own, n, seed)]
    seed_rng, loop_diff = np.random.default_rng([seed, 3]), []
    for v, t in _loop_draws(real, n, seed):
        seeds = seed_rng.integers(0, k, k) if k >= M.MIN_SEEDS_BOOTSTRAP else range(k)
        loop_diff.append(float(np.mean([_loop_sens(own, j, spec, v, t) - _loop_sens(real, j, spec, v, t) for j in seeds])))
    assert 150 < len(loop_arm) <= n  # most draws hold both classes; some do not, and are skipped alike

    draws = O.Draws.make(real, n, seed)
    assert O._sensitivities(own, spec, draws).mean(axis=1).tolist() == loop_arm
    arm = O.arm_at(own, spec, n, seed)
    want, _ = M.seed_level_interval(arm["sensitivity"], loop_arm, [O._sens(own, j, spec) for j in range(k)], n, 0.95,
                                    (0.0, 1.0))
    assert arm["sensitivity_ci95"] == want
    diff = O.difference_at(real, own, spec, n, seed)
    per_seed = [O._sens(own, j, spec) - O._sens(real, j, spec) for j in range(k)]
    assert diff["ci95"] == M.seed_level_interval(float(np.mean(per_seed)), loop_diff, per_seed, n)[0]
    assert diff["p_two_sided"] == M.seed_level_p(float(np.mean(per_seed)), loop_diff, per_seed)[0]
    # shared draws (compare_arms makes them once per task) change nothing
    assert O.difference_at(real, own, spec, n, seed, draws=draws) == diff


def test_thresholds_per_draw_match_threshold_at_specificity():
    """The cumulative-multiplicity rule picks, in every draw, the threshold the sorted drawn negatives give,
    for targets that fall on a film, between films and below the first one (spec 0)."""
    rng = np.random.default_rng(0)
    a = O.Scored.from_runs(_runs(rng, 1, 40, 30, 1.0))
    draws = O.Draws.make(a, 50, 1)
    picks = list(_loop_draws(a, 50, 1))
    for spec in (0.0, 0.5, 0.9, 0.97, 1.0):
        got = O._thresholds(a.val_labels, a.val[0], spec, draws.val)
        want = [M.threshold_at_specificity(a.val_labels[v], a.val[0][v], spec) for v, _ in picks]
        assert got.tolist() == want
