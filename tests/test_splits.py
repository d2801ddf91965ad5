"""Splits and the release plan: patient leakage, determinism, the paper rule and the 21,295 plan."""

from __future__ import annotations

import pytest

from cxrsynth.errors import LeakageError
from cxrsynth.ingest import ingest
from cxrsynth.plan import PlanConfig, make_plan
from cxrsynth.splits import SplitConfig, check_leakage, make_splits, paper_split

from .conftest import RSNA_META


def test_rigorous_split_is_patient_level_stratified_and_deterministic(all_sources_ingest, tmp_path):
    recs = [r for r in all_sources_ingest.records if r.has_pixels]
    a = make_splits(recs, SplitConfig(seed=1), out_path=tmp_path / "s.json")
    b = make_splits(recs, SplitConfig(seed=1))
    c = make_splits(recs, SplitConfig(seed=2))
    assert a["assignments"] == b["assignments"] and a["assignments"] != c["assignments"]
    assert a["leakage"]["patients_in_several_splits"] == 0
    n = len(recs)
    for split, frac in zip(("train", "validation", "test"), (0.7, 0.1, 0.2)):
        got = sum(a["counts"][split].values())
        assert abs(got / n - frac) < 0.03, (split, got)
        for label in ("normal", "pneumonia", "covid"):
            total = sum(a["counts"][s].get(label, 0) for s in a["counts"])
            assert abs(a["counts"][split].get(label, 0) / total - frac) < 0.06
    # NIH patients with several images never straddle splits
    by_patient = {}
    for r in recs:
        by_patient.setdefault(r.patient_group, set()).add(a["assignments"][r.record_id])
    assert all(len(s) == 1 for s in by_patient.values())
    assert max(sum(1 for r in recs if r.patient_group == p) for p in by_patient) > 5


def test_leakage_check_fails_loudly(all_sources_ingest):
    recs = [r for r in all_sources_ingest.records if r.source == "nih"]
    assign = {r.record_id: "train" for r in recs}
    p = next(r.patient_group for r in recs if sum(x.patient_group == r.patient_group for x in recs) > 1)
    victim = next(r for r in recs if r.patient_group == p)
    assign[victim.record_id] = "test"
    with pytest.raises(LeakageError, match="1 patients appear in more than one split"):
        check_leakage(recs, assign)


@pytest.fixture(scope="module")
def rsna_paper(tmp_path_factory):
    res = ingest([RSNA_META], out_dir=tmp_path_factory.mktemp("rsna"))
    splits = make_splits(res.records, SplitConfig(method="paper"))
    return res.records, splits


def test_paper_split_on_real_rsna_metadata(rsna_paper):
    _, splits = rsna_paper
    assert splits["counts"]["train"] == {"normal": 16537, "pneumonia": 4758}
    assert splits["counts"]["test"] == {"normal": 4135, "pneumonia": 1254}
    assert splits["counts"]["validation"] == {}


def test_plan_says_21295_from_labels_alone(rsna_paper, tmp_path):
    records, splits = rsna_paper
    plan = make_plan(records, splits, PlanConfig(), tmp_path / "plan.json")
    assert plan["tasks"]["normal-covid"]["translate"]["n"] == 16537
    assert plan["tasks"]["pneumonia-covid"]["translate"]["n"] == 4758
    assert plan["totals"]["translate"] == 21295
    assert plan["tasks"]["normal-covid"]["test"]["negatives"] == 4135
    assert plan["tasks"]["pneumonia-covid"]["test"]["negatives"] == 1254
    assert plan["totals"]["translate_with_pixels"] == 1  # only one genuine DICOM is on disk
    assert plan["tasks"]["normal-covid"]["translator_train"]["shortfall"]["source"] == 179


def test_paper_rule_on_covid_rows_and_skew(tmp_path):
    """The paper's 80% rule on the COVID collection, and the skew of the Real arm (Eq. 6)."""
    from cxrsynth.config import resolve
    from cxrsynth.ingest import IngestConfig

    from .conftest import COVID

    cfg = resolve(IngestConfig, overrides=["covid_collection.mode=paper", "dedupe=false"])
    res = ingest([COVID, RSNA_META], cfg)
    assign, _ = paper_split(res.records)
    covid = [r for r in res.records if r.label == "covid"]
    assert len(covid) == 219
    train = [r for r in covid if assign[r.record_id] == "train"]
    assert len(train) == int(0.8 * 219)
    assert train == sorted(covid, key=lambda r: r.rows[0])[: len(train)]  # the first rows in file order
    splits = make_splits(res.records, SplitConfig(method="paper"))
    plan = make_plan(res.records, splits, PlanConfig())
    assert plan["tasks"]["normal-covid"]["arms"]["real"]["skew"] == round(16537 / 175, 4)
    assert plan["tasks"]["normal-covid"]["arms"]["real+g_nc+g_pc"]["positives_synthetic"] == 21295
