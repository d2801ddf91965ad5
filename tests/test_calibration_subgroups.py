"""Calibration (ECE, reliability diagram) and subgroup results on score vectors with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from cxrsynth.stages.benchmark import calibration as C
from cxrsynth.stages.benchmark import subgroups as S

pytestmark = pytest.mark.no_data


def test_ece_by_hand_and_a_prior_shift_is_miscalibration():
    # bin [0.1, 0.2): scores .15 .15, one positive -> |0.15 - 0.5| = 0.35 x 2/4
    # bin [0.9, 1.0]: scores .95 1.0, both positive -> |0.975 - 1| = 0.025 x 2/4
    rel = C.reliability([0, 1, 1, 1], [0.15, 0.15, 0.95, 1.0])
    assert rel["ece"] == pytest.approx(0.5 * 0.35 + 0.5 * 0.025)
    assert rel["count"][1] == 2 and rel["count"][9] == 2 and rel["mean_score"][0] is None
    assert rel["in_the_large"] == pytest.approx(np.mean([0.15, 0.15, 0.95, 1.0]) - 0.75)
    # calibrated scores (label drawn with probability = score) have a small ECE; the same ranking pushed
    # towards COVID-19 (logit + 2, a prior shift) has a large one and a positive calibration-in-the-large
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 20000)
    y = (rng.uniform(0, 1, 20000) < p).astype(int)
    shifted = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + 2)))
    good, bad = C.reliability(y, p), C.reliability(y, shifted)
    assert good["ece"] < 0.02 and bad["ece"] > 0.15 and bad["in_the_large"] > 0.15


def test_calibration_per_arm_and_its_figure(tmp_path):
    runs = [{"task": "normal-covid", "arm": a, "seed": s, "test_labels": [0, 0, 1, 1],
             "test_scores": [0.1, 0.2 + d, 0.8, 0.9]} for a, d in (("real", 0.0), ("real+own", 0.5)) for s in (0, 1)]
    cal = C.calibration(runs)
    arms = cal["tasks"]["normal-covid"]
    assert arms["real"]["ece"]["n"] == 2 and arms["real+own"]["ece"]["mean"] > arms["real"]["ece"]["mean"]
    assert sum(arms["real"]["reliability_pooled"]["count"]) == 8
    path = C.reliability_figure(tmp_path / "rel.png", "normal-covid", arms)
    assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"


def test_views_and_sexes_normalised():
    assert [S.view_of(v) for v in ("PA", "AP", "AP Supine", "AP_SUPINE", "L", None)] == [
        "PA", "AP", "AP supine", "AP supine", None, None]
    assert [S.sex_of(v) for v in ("M", "F", "female", "O", None)] == ["male", "female", "female", None, None]


def test_subgroups_measured_with_enough_patients_else_not_measurable():
    """PA holds 12 COVID-19 and 15 other patients (measured); AP supine holds 3 COVID-19 patients only
    (not measurable, with its counts). Within PA the scores separate perfectly: AUROC 1."""
    rng = np.random.default_rng(1)
    ids, labels, pats, meta, scores = [], [], [], {}, []
    for k in range(12 + 15 + 3 + 20):
        view, lab = ("PA", 1) if k < 12 else ("PA", 0) if k < 27 else ("AP Supine", 1) if k < 30 else ("AP Supine", 0)
        ids.append(f"r{k}"), labels.append(lab), pats.append(f"p{k}"), meta.__setitem__(f"r{k}", (view, "F" if k % 2 else "M"))
        scores.append(0.6 + 0.3 * rng.random() if lab else 0.4 * rng.random())
    runs = [{"task": "normal-covid", "arm": "real", "seed": s, "test_record_ids": ids, "test_labels": labels,
             "test_patients": pats, "test_scores": scores, "threshold": 0.5} for s in (0, 1)]
    out = S.subgroups(runs, meta, n=100)["tasks"]["normal-covid"]
    pa = out["view"]["PA"]
    assert (pa["covid_patients"], pa["other_patients"]) == (12, 15)
    assert pa["arms"]["real"]["auroc"] == 1.0 and pa["arms"]["real"]["sensitivity"] == 1.0
    sup = out["view"]["AP supine"]
    assert "not_measurable" in sup and "3 COVID-19" in sup["not_measurable"] and "arms" not in sup
    assert out["view"]["unrecorded_or_other_images"] == 0
    assert set(out["sex"]) == {"male", "female", "unrecorded_or_other_images"}
