"""results.json's analyses (operating points, power, comparisons, calibration, subgroups) and their
tables.md sections and figure, from a small work folder and constructed cells (no training)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from cxrsynth.artifacts import SplitData
from cxrsynth.stages.benchmark import report_analyses as R
from cxrsynth.stages.benchmark.analyses import analyses
from cxrsynth.stages.benchmark.run import aggregate
from cxrsynth.core.layout import WorkLayout
from cxrsynth.data.records import Record, write_records

pytestmark = pytest.mark.no_data


def _workdir(tmp_path, n=60):
    """n normal and n COVID-19 records: half PA, half AP Supine; validation 20 + 20, the rest test."""
    recs, assign = [], {}
    for k in range(2 * n):
        lab = "covid" if k % 2 else "normal"
        recs.append(Record(f"r{k}", "x", "x", str(tmp_path), f"{k}.png", f"k{k}", f"p{k}", lab, has_pixels=True,
                           view="PA" if (k // 2) % 2 else "AP Supine", sex="M" if k % 3 else "F", patient_group=f"x:p{k}"))
        assign[f"r{k}"] = "validation" if k < 40 else "test"
    layout = WorkLayout(tmp_path)
    write_records(recs, layout.records)
    layout.splits.write_text(json.dumps({"assignments": assign}))
    return recs, assign


def _cells(recs, assign, task="normal-covid"):
    rng = np.random.default_rng(0)
    val = [r for r in recs if assign[r.record_id] == "validation"]
    test = [r for r in recs if assign[r.record_id] == "test"]
    out = []
    for arm, shift, logit in (("real", 1.5, 0), ("real-oversampled", 1.5, 0), ("real+own", 1.5, 2.0)):
        for seed in range(2):
            def scores(rs):
                z = np.array([rng.normal(shift * (r.label == "covid"), 1) for r in rs]) + logit
                return (1 / (1 + np.exp(-z))).round(6).tolist()
            vs, ts = scores(val), scores(test)
            yv = [int(r.label == "covid") for r in val]
            out.append({"task": task, "arm": arm, "concrete_arm": arm, "seed": seed, "train": None, "threshold": 0.5,
                        "validation": {"auroc": 0.8 + 0.01 * (arm == "real+own")},
                        "validation_scores": vs, "validation_labels": yv, "validation_patients": [r.patient_group for r in val],
                        "test_scores": ts, "test_labels": [int(r.label == "covid") for r in test],
                        "test_patients": [r.patient_group for r in test], "test_record_ids": [r.record_id for r in test],
                        "test": {"sensitivity": 0.7, "false_negatives": 3, "specificity": 0.7, "precision": 0.7, "f1": 0.7,
                                 "auroc": 0.8, "auprc": 0.8}})
    return out


def test_analyses_and_their_tables(tmp_path):
    recs, assign = _workdir(tmp_path)
    results = _cells(recs, assign)
    cfg = SimpleNamespace(bootstrap=100, tasks=("normal-covid",), limit=None)
    summary = aggregate(results, 100)
    out = analyses(SplitData.read(tmp_path), cfg, results, summary)
    assert set(out) == {"operating_points", "power", "comparisons", "calibration", "subgroups"}
    pw = out["power"]["tasks"]["normal-covid"]
    assert (pw["images"], pw["positive_patients"], pw["negative_patients"]) == (80, 40, 40)
    ops = out["operating_points"]["normal-covid"]
    assert set(ops["targets"]) == {"real_operating_point", "specificity_90"}
    assert ops["arms"]["real+own"]["specificity_90"]["vs_real"]["ci95"] is not None
    assert out["comparisons"]["primary"]["normal-covid"]["arm"] == "real+own"
    assert all(c["p_holm"] >= c["p"] for c in out["comparisons"]["secondary"])
    # real+own's scores are pushed towards COVID-19: worse calibrated than real
    cal = out["calibration"]["tasks"]["normal-covid"]
    assert cal["real+own"]["in_the_large"]["mean"] > cal["real"]["in_the_large"]["mean"] + 0.1
    views = out["subgroups"]["tasks"]["normal-covid"]["view"]
    assert views["PA"]["covid_patients"] == 20 and "arms" in views["PA"]
    summary_json = json.loads(json.dumps({"summary": summary} | out))  # what results.json holds
    head = R.header(summary_json)
    assert "Hanley-McNeil" in head[0] and "40 COVID-19 patients" in head[1] and "Primary comparison" in head[-1]
    md = "\n".join(R.sections(summary_json))
    assert "sensitivity at one specificity" in md and "p (Holm)" in md and "ECE" in md and "view PA" in md
    figs = R.figures(tmp_path, summary_json)
    assert [f.name for f in figs] == ["normal-covid-reliability.png"] and figs[0].stat().st_size > 1000


def test_a_small_subgroup_reads_not_measurable(tmp_path):
    recs, assign = _workdir(tmp_path, n=30)  # 10 test patients of each class, split over two views
    results = _cells(recs, assign)
    out = analyses(SplitData.read(tmp_path), SimpleNamespace(bootstrap=50, tasks=("normal-covid",), limit=None), results,
                   aggregate(results, 50))
    md = "\n".join(R.sections(json.loads(json.dumps(out))))
    assert "not measurable: 5 COVID-19 and 5 other patients; needs 10 of each" in md
