"""The patient grouping the split used is stored in splits.json and read by the benchmark's bootstrap
clusters, its probes and the audit (review finding N12: they used ingest's groups)."""

from __future__ import annotations

import json

import pytest

from cxrsynth.artifacts import SplitData
from cxrsynth.core.layout import WorkLayout
from cxrsynth.data.records import Record, write_records
from cxrsynth.stages.splits import SplitConfig, make_splits, with_split_groups
from tests.conftest import RSNA_META


def test_a_patient_map_grouping_is_stored_and_applied(tmp_path):
    from cxrsynth.data.identity import RSNA_MAPPING, load_identity
    from cxrsynth.data.sources.rsna import RsnaConfig, read

    recs = read(RSNA_META, RsnaConfig(), "rsna").records[:600]
    a, b = recs[0], recs[1]
    mapping = tmp_path / RSNA_MAPPING
    mapping.write_text(json.dumps([{"subset_img_id": a.image_key, "img_id": "00012345_000.png", "orig_labels": []},
                                   {"subset_img_id": b.image_key, "img_id": "00012345_007.png", "orig_labels": []}]))
    plain = make_splits(recs, SplitConfig(seed=0))
    grouped = make_splits(recs, SplitConfig(seed=0), identity=load_identity([mapping]))
    assert plain["patient_groups"][a.record_id] != plain["patient_groups"][b.record_id]
    assert grouped["patient_groups"][a.record_id] == grouped["patient_groups"][b.record_id]
    assert set(grouped["patient_groups"]) == set(grouped["assignments"])
    out = {r.record_id: r.patient_group for r in with_split_groups(recs, grouped)}
    assert out[a.record_id] == out[b.record_id] != out[recs[2].record_id]
    assert recs[0].patient_group is None  # the records themselves are not changed (reader output: no group yet)
    # a manifest from before groups were stored leaves ingest's grouping
    old = {k: v for k, v in grouped.items() if k != "patient_groups"}
    assert [r.patient_group for r in with_split_groups(recs, old)] == [r.patient_group for r in recs]


@pytest.mark.no_data
def test_the_benchmark_clusters_by_the_split_grouping(tmp_path):
    """Two test images that ingest put in different groups but the split joined (a patient map) are
    one bootstrap cluster in the benchmark's evaluation items."""
    from cxrsynth.stages.benchmark.arms import eval_items

    layout = WorkLayout(tmp_path)
    recs = [Record(f"r{i}", "rsna", "rsna", str(tmp_path), f"{i}.png", f"k{i}", f"k{i}", lab, has_pixels=True,
                   patient_group=f"rsna:k{i}") for i, lab in enumerate(["normal", "normal", "pneumonia"])]
    write_records(recs, layout.records)
    layout.splits.write_text(json.dumps({"assignments": {r.record_id: "test" for r in recs},
                                         "patient_groups": {"r0": "nih-patient:7", "r1": "nih-patient:7",
                                                            "r2": "rsna:k2"}}))
    items = eval_items(SplitData.read(tmp_path), "normal-covid", "test")
    assert [i.patient for i in items] == ["nih-patient:7", "nih-patient:7"]
    data = SplitData.read(tmp_path)
    got, manifest = data.grouped, data.splits
    assert {r.patient_group for r in got} == {"nih-patient:7", "rsna:k2"} and manifest["assignments"]["r2"] == "test"
