"""The same-source shortcut sentence rests on a patient bootstrap, not only on images taken as
independent: forty control films of two patients are two patients' worth of evidence."""

from __future__ import annotations

import numpy as np
import pytest

from cxrsynth.measure import metrics as M
from cxrsynth.stages.benchmark import controls as C

pytestmark = pytest.mark.no_data

TASK = "pneumonia-covid"
#: the test split: 20 COVID-19 films of 20 patients, all called COVID-19; 60 negatives of 60 patients, 6 called
TEST_POS = np.full(20, 0.9)
TEST_NEG = np.r_[np.full(6, 0.9), np.full(54, 0.1)]


def _control(patients: list[str]) -> dict:
    """One run's same-source metrics for a model that calls 20 of 40 control films COVID-19 (50% vs the test
    negatives' 10%): films 0-19 high, 20-39 low, grouped into patients as given."""
    neg = np.r_[np.full(20, 0.9), np.full(20, 0.1)]
    cm = M.threshold_metrics([1] * 20 + [0] * 60, np.r_[TEST_POS, TEST_NEG], 0.5)["confusion"]
    return C.same_source_metrics(TEST_POS, [f"t{i}" for i in range(20)], neg, patients, 0.5, 1000, 0, cm, TASK,
                                 test_negatives=(TEST_NEG, [f"n{i}" for i in range(60)]))


def _sentences(per_run: list[dict]) -> str:
    from cxrsynth.stages.benchmark.report import _verdict
    from cxrsynth.stages.benchmark.run import _control_summary

    arm = {"concrete_arm": "real", "controls": _control_summary([{"controls": {"same_source": m, "external": {}}}
                                                                  for m in per_run])}
    return " ".join(_verdict(TASK, {"real": arm}))


def test_two_patients_with_many_films_do_not_make_a_shortcut():
    two = _control(["collection:A"] * 20 + ["collection:B"] * 20)  # A: every film called COVID-19; B: none
    forty = _control([f"collection:{i}" for i in range(40)])  # the same films, one per patient
    # the image-level test cannot tell them apart: the same counts, the same (tiny) p
    assert two["p_more_than_test"] == forty["p_more_than_test"] < 1e-4
    assert two["false_positives"] == forty["false_positives"] == 20 and two["test_fpr"] == pytest.approx(0.1)
    # resampling whole patients can: with two, a draw of B twice has no false positive at all
    lo2, hi2 = two["fpr_difference"]["ci95"]
    lo40, hi40 = forty["fpr_difference"]["ci95"]
    assert two["fpr_difference"]["difference"] == pytest.approx(0.4) == forty["fpr_difference"]["difference"]
    assert lo2 < 0 < hi2 and lo40 > 0.1
    # the FPR's own interval is per patient too: two patients' films span it from 0 to 1 (Wilson over
    # the 40 films would say [35%, 65%]), so the two-patient control is not measurable at all
    assert two["fpr_ci_method"].startswith("patient bootstrap") and two["fpr_ci95"] == (0.0, 1.0)
    assert forty["fpr_ci_method"].startswith("wilson") and forty["fpr_ci95"] == pytest.approx(M.wilson(20, 40))
    v_two, v_forty = C.shortcut_verdict([two]), C.shortcut_verdict([forty])
    assert (v_two["verdict"], v_two["why"]) == ("not measurable", "its 95% interval spans 100 points")
    assert v_forty["verdict"] == "source" and "patient bootstrap" in v_two["test"]
    # read as if the FPR were measurable, the difference's patient interval (including 0) still stops it
    imagewise = dict(two, not_measurable=None)
    assert C.shortcut_verdict([imagewise])["verdict"] == "no evidence"
    assert "includes 0" in _sentences([imagewise]) and "no evidence here" in _sentences([imagewise])
    # the report's words follow the verdict: the shortcut sentence fires for the forty patients only
    assert "part of what they detect is the source" not in _sentences([two])
    assert "not measurable for real: its 95% interval spans 100 points" in _sentences([two])
    text = _sentences([forty])
    assert "part of what they detect is the source: real (50% vs 10%, p = " in text
    assert f"difference [{100 * lo40:+.0f}, {100 * hi40:+.0f}] points" in text and "excludes 0" in text


def test_without_the_test_negatives_the_verdict_says_it_took_images_as_independent():
    """A run scored before the bootstrap existed (no ``fpr_difference``): Fisher's test alone, and the
    sentence says that it took images as independent."""
    old = {k: v for k, v in _control([f"collection:{i}" for i in range(40)]).items() if k != "fpr_difference"}
    v = C.shortcut_verdict([old])
    assert v["verdict"] == "source" and v["difference_patient_ci95"] is None and "independent" in v["test"]
    assert "images taken as independent" in _sentences([old])
