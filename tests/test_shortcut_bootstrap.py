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


# -- one bootstrap over seeds and patients ------------------------------------------------------------

CLEAN_NEG = np.full(60, 0.1)  # test negatives none of which a model calls COVID-19


def _cell(seed: int, control: np.ndarray, patients: list[str], test_neg: np.ndarray = CLEAN_NEG) -> dict:
    """One cell as its result.json keeps it: the test split's scores, labels and patients at threshold
    0.5, and the same-source metrics that score_controls adds from them."""
    scores, labels = np.r_[TEST_POS, test_neg], [1] * 20 + [0] * 60
    pats = [f"t{i}" for i in range(20)] + [f"n{i}" for i in range(60)]
    cm = M.threshold_metrics(labels, scores, 0.5)["confusion"]
    ss = C.same_source_metrics(TEST_POS, pats[:20], control, patients, 0.5, 1000, seed, cm, TASK,
                               test_negatives=(test_neg, pats[20:]))
    return {"task": TASK, "seed": seed, "threshold": 0.5, "test_scores": scores.tolist(), "test_labels": labels,
            "test_patients": pats, "controls": {"same_source": ss, "external": {}}}


def _calls(called: list[int], n: int) -> np.ndarray:
    return np.asarray([0.9 if i in called else 0.1 for i in range(n)])


def _summary_verdict(cells: list[dict]) -> dict:
    from cxrsynth.stages.benchmark.run import _control_summary

    return _control_summary(cells, bootstrap=1000)["same_source"]["verdict"]


def test_seeds_that_flag_different_patients_are_pooled_not_medianed():
    """Two seeds each call 2 of 10 control patients COVID-19 (20% vs 0% of the test negatives), but not the
    same two. Each seed's own patient interval reaches 0 (a draw may miss both of its patients), so the
    median of their bounds said "no evidence"; resampled together, every patient's calls are averaged over
    the seeds and the arm's interval excludes 0: four of ten patients flagged by one run or the other."""
    pats = [f"collection:{i}" for i in range(10)]
    cells = [_cell(0, _calls([0, 1], 10), pats), _cell(1, _calls([2, 3], 10), pats)]
    ss = [c["controls"]["same_source"] for c in cells]
    assert all(s["p_more_than_test"] < 0.05 and s["not_measurable"] is None for s in ss)
    assert all(s["fpr_difference"]["ci95"][0] <= 0 for s in ss)  # each seed alone: includes 0
    assert C.shortcut_verdict(ss)["verdict"] == "no evidence"  # the old reading: median of the seeds' bounds

    pooled, why = C.seed_fpr_difference(cells, 1000)
    assert why is None and pooled["difference"] == pytest.approx(0.2) and pooled["per_seed"] == pytest.approx([0.2, 0.2])
    v = _summary_verdict(cells)
    lo, hi = v["difference_patient_ci95"]
    assert v["verdict"] == "source" and 0 < lo < 0.2 < hi and "one bootstrap over seeds and patients" in v["test"]
    assert tuple(pooled["ci95"]) == (lo, hi)
    # results.json keeps no per-image list; the cells' result.json do, and without them (a run scored before
    # they were kept, and not yet re-scored) the verdict falls back to the median and says why
    from cxrsynth.stages.benchmark.run import _public_run

    assert "per_image" not in _public_run(cells[0])["controls"]["same_source"] and "per_image" in ss[0]
    old = [dict(c, controls={"same_source": C.public(c["controls"]["same_source"]), "external": {}}) for c in cells]
    v_old = _summary_verdict(old)
    assert v_old["verdict"] == "no evidence" and "median of each seed's interval bounds: the runs keep no per-image" in v_old["test"]


@pytest.mark.parametrize("seeds", [2, 5])  # 5: the seeds are resampled too; 2: a t term on them instead
def test_two_patients_with_many_films_are_no_evidence_over_seeds(seeds):
    """Forty films of two patients, every seed calling patient A's twenty COVID-19: not measurable, and read
    as measurable still no evidence (a draw of B twice has no false positive). The same films as forty
    patients are evidence: the test can tell them apart."""
    neg = _calls(list(range(20)), 40)
    two = [_cell(s, neg, ["collection:A"] * 20 + ["collection:B"] * 20, TEST_NEG) for s in range(seeds)]
    forty = [_cell(s, neg, [f"collection:{i}" for i in range(40)], TEST_NEG) for s in range(seeds)]
    assert _summary_verdict(two)["verdict"] == "not measurable"
    for c in two:
        c["controls"]["same_source"]["not_measurable"] = None
    v = _summary_verdict(two)
    assert v["verdict"] == "no evidence" and v["difference_patient_ci95"][0] < 0 < v["difference_patient_ci95"][1]
    assert v["p"] < 1e-4 and "one bootstrap over seeds and patients" in v["test"]  # Fisher alone would have fired
    v40 = _summary_verdict(forty)
    assert v40["verdict"] == "source" and v40["difference_patient_ci95"][0] > 0.1
    assert ("and seeds" in v40["test"]) == (seeds >= M.MIN_SEEDS_BOOTSTRAP)


def test_a_cell_without_per_image_calls_is_rescored_on_resume(tmp_path, monkeypatch):
    """A finished cell scored before the per-image calls were kept gets them on resume from its saved
    model (here a stand-in: only the control is predicted, nothing is trained), and its result.json is
    rewritten; a cell that has them is left as it is."""
    from cxrsynth.core.paths import read_json
    from cxrsynth.stages.benchmark import run as R

    pats = [f"collection:{i}" for i in range(10)]
    control = _calls([0, 1], 10)
    cell = _cell(0, control, pats)
    cell["test"] = {"confusion": M.threshold_metrics(cell["test_labels"], cell["test_scores"], 0.5)["confusion"]}
    cell["controls"]["same_source"] = C.public(cell["controls"]["same_source"])  # as an older version wrote it
    predicted = []
    monkeypatch.setattr(R, "predict", lambda model, ds, device: predicted.append(ds) or {"scores": control})

    class Model:
        def to(self, device):
            return self

    sets = R.ControlSets({TASK: ("control set", pats)}, {})
    cfg = R.BenchmarkConfig(bootstrap=200)
    res = R.score_controls(cell, tmp_path, cfg, sets, "cpu", Model())
    assert predicted == ["control set"] and res["controls"]["same_source"]["per_image"]["hits"] == [1, 1] + [0] * 8
    assert read_json(tmp_path / "result.json")["controls"]["same_source"]["per_image"]["patients"] == pats
    R.score_controls(res, tmp_path, cfg, sets, "cpu", Model())
    assert predicted == ["control set"]  # nothing missing: not predicted again


def test_not_measurable_when_most_seeds_are_not_whichever_seed_comes_first():
    """Seeds call different films, so their rates' intervals differ: the arm is not measurable when most of
    its seeds are, not because seed 0 happens to be (nor measurable because seed 0 happens to be)."""
    two = _control(["collection:A"] * 20 + ["collection:B"] * 20)  # not measurable: 0-100% interval
    forty = _control([f"collection:{i}" for i in range(40)])
    assert two["not_measurable"] and not forty["not_measurable"]
    assert C.shortcut_verdict([two, forty, forty])["verdict"] == "source"
    assert C.shortcut_verdict([forty, two, two])["verdict"] == "not measurable"
    assert C.shortcut_verdict([forty, two, two])["why"] == two["not_measurable"]
