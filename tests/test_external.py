"""External test sets and the same-source controls, on a small work folder of real sample images.

The work folder: the COVID-19 collection (its metadata and images, read in place) and 16 adult NIH
'No Finding' and 16 'Pneumonia' images (copied into a label folder under tmp_path), split rigorously.
External sets are built in tmp_path: bomb files, links out of the folder, copies of internal images,
and the real Hannover repository.
"""

from __future__ import annotations

import csv
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from cxrsynth.artifacts import SplitData
from cxrsynth.measure import metrics as M
from cxrsynth.stages.benchmark import external as E
from cxrsynth.core.paths import read_json
from cxrsynth.data.records import read_records

from .conftest import COVID, DATA, NIH

HANNOVER = DATA / "covid-19-image-repository"


def _nih(n: int, finding: str, adult: bool = True) -> list[Path]:
    with open(NIH / "Data_Entry_2017.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["Finding Labels"] == finding
                and (int(r["Patient Age"]) >= 18) == adult and (NIH / "images" / r["Image Index"]).is_file()]
    return [NIH / "images" / r["Image Index"] for r in rows[:n]]


@pytest.fixture(scope="module")
def small_wd(tmp_path_factory):
    from cxrsynth.stages.ingest import IngestConfig, ingest
    from cxrsynth.stages.splits import SplitConfig, make_splits

    base = tmp_path_factory.mktemp("small")
    for label, finding in (("normal", "No Finding"), ("pneumonia", "Pneumonia")):
        (base / "nih16" / label).mkdir(parents=True)
        for p in _nih(16, finding):
            shutil.copy(p, base / "nih16" / label / p.name)
    wd = base / "wd"
    ingest([COVID, base / "nih16"], IngestConfig(size=64), out_dir=wd)
    make_splits(read_records(wd / "records.parquet"), SplitConfig(seed=0), wd / "records.parquet", wd / "splits.json")
    return wd


def _by_split(wd: Path) -> dict[str, list]:
    assign = read_json(wd / "splits.json")["assignments"]
    out: dict[str, list] = {"train": [], "validation": [], "test": []}
    for r in read_records(wd / "records.parquet"):
        if r.has_pixels and assign.get(r.record_id) in out:
            out[assign[r.record_id]].append(r)
    return out


def _png_header_bomb(path: Path, side: int = 12000) -> None:
    """A valid PNG header claiming side x side pixels, with almost no data: refused from its header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_empty_external_sets_say_why(small_wd, tmp_path):
    """N23/N24: bombs, file links and a folder link out of the set leave it empty: every reason counted,
    and a notice that every output prints."""
    bombs = tmp_path / "bombs" / "covid"
    bombs.mkdir(parents=True)
    for i in range(3):
        _png_header_bomb(bombs / f"bomb{i}.png")
    (bombs / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    links = tmp_path / "links" / "normal"
    links.mkdir(parents=True)
    for p in _nih(4, "No Finding", adult=False):
        os.symlink(p, links / p.name)
    dirlink = tmp_path / "dirlink"
    dirlink.mkdir()
    os.symlink(NIH / "images", dirlink / "normal")

    reports = {n: E.load_external(n, str(tmp_path / n), SplitData.read(small_wd)).report for n in ("bombs", "links", "dirlink")}
    assert reports["bombs"]["kept"] == 0 and reports["bombs"]["bad_files"] == 4
    assert reports["links"]["kept"] == 0 and reports["links"]["outside_source"] == 4
    assert reports["dirlink"]["kept"] == 0 and reports["dirlink"]["outside_source"] == len(list((NIH / "images").iterdir()))
    notes = E.external_notices(reports)
    assert len(notes) == 3 and all("IS EMPTY after filtering" in n for n in notes)
    assert "bad_files 4" in notes[0] and "outside_source 4" in notes[2]  # sorted by name: bombs, dirlink, links


def test_copies_of_internal_images_are_dropped_by_split(small_wd, tmp_path):
    """N26: copies of internal test (and validation, train) images are not external: dropped, counted per split."""
    splits = _by_split(small_wd)
    ext = tmp_path / "dups"
    for split, n in (("train", 1), ("validation", 1), ("test", 3)):
        for r in [r for r in splits[split] if r.label == "normal"][:n]:
            (ext / "normal").mkdir(parents=True, exist_ok=True)
            shutil.copy(r.path, ext / "normal" / f"{split}-{r.path.name}")
    for p in _nih(2, "No Finding", adult=False):  # children: not in the work folder, so truly new images
        shutil.copy(p, ext / "normal" / p.name)
    rep = E.load_external("dups", str(ext), SplitData.read(small_wd)).report
    assert (rep["duplicates_of_training_dropped"], rep["duplicates_of_validation_dropped"],
            rep["duplicates_of_test_dropped"]) == (1, 1, 3)
    assert rep["images"] == 7 and rep["kept"] == 2
    notes = E.external_notices({"dups": rep})
    assert any("4 images duplicate images of the internal validation or test split" in n for n in notes)
    assert any("no COVID-19 images for normal-covid" in n for n in notes)


def test_hannover_is_an_external_set_of_positives(small_wd):
    """`--external hannover=DIR` recognises the layout: 243 COVID-19 films of its patients, no negatives,
    so only sensitivity is measured, and the notice says so."""
    ext = E.load_external("hannover", str(HANNOVER), SplitData.read(small_wd))
    rep = ext.report
    assert rep["format"] == "hannover" and rep["kept"] == 243 and rep["by_label"] == {"covid": 243}
    assert rep["by_view"] == {"AP": 194, "PA": 49} and rep["patients"] == 71
    assert E.lost_counts(rep) == "nothing was left out"
    assert rep["per_task"] == {"normal-covid": {"negatives": 0, "covid": 243}, "pneumonia-covid": {"negatives": 0, "covid": 243}}
    notes = E.external_notices({"hannover": rep})
    assert len(notes) == 2 and all("no negatives" in n and "only its sensitivity" in n for n in notes)


def test_external_sensitivity_interval_is_over_patients(small_wd):
    """A model that finds every film of half the patients and none of the others: sensitivity 0.5, and the
    patient bootstrap interval is wider than an images-as-independent Wilson interval, as it must be."""
    items = E.load_external("hannover", str(HANNOVER), SplitData.read(small_wd)).items["normal-covid"]
    patients = sorted({i.patient for i in items})
    found = set(patients[::2])
    scores = np.array([0.9 if i.patient in found else 0.1 for i in items])
    res = E.score_external(np.ones(len(items), int), scores, items, 0.5, 400, 0)
    sens = res["sensitivity"]
    lo, hi = res["sensitivity_patient_ci95"]
    # images-as-independent Wilson, for comparison: the result no longer carries it (several films per patient)
    wlo, whi = M.wilson(int(round(sens * len(items))), len(items))
    assert res["sensitivity_wilson95"] is None and res["sensitivity_interval"].startswith("patient bootstrap")
    assert lo < sens < hi and hi - lo > 1.3 * (whi - wlo)
    assert res["specificity"] is None and res["auroc"] is None and res["n_positive_patients"] == 71
    assert "per_image" not in E.public(res)
    # over two seeds (the same films): the interval of the seed mean
    res2 = E.score_external(np.ones(len(items), int), np.where(scores > 0.5, 0.9, 0.6), items, 0.5, 400, 0)
    lo2, hi2 = E.seed_interval([res, res2], 400)
    assert lo2 < (sens + res2["sensitivity"]) / 2 < hi2 and res2["sensitivity"] == 1.0


def test_benchmark_scores_hannover_and_warns_of_an_empty_set(small_wd, tmp_path, capsys):
    """End to end through the CLI (the real arm, 1 seed, 32 px, 1 epoch): `--external hannover=DIR` recognises
    the layout; its sensitivity with its patient interval beside the internal one in results.json, tables and
    report; an empty set warned of everywhere, stdout and tables.csv included (N23, N30's column)."""
    import json

    from cxrsynth.cli import main

    bombs = tmp_path / "bombs" / "covid"
    bombs.mkdir(parents=True)
    _png_header_bomb(bombs / "bomb.png")
    out = tmp_path / "bench"
    main(["-w", str(small_wd), "benchmark", "--model", "resnet18", "--init", "random", "--image-size", "32",
          "--limit", "4", "--max-epochs", "1", "--seeds", "1", "--arm", "real", "--set", "bootstrap=50",
          "--set", "figures=false", "--external", f"hannover={HANNOVER}", "--external", f"bombs={tmp_path / 'bombs'}",
          "--out", str(out)])
    std = capsys.readouterr()
    assert "EXTERNAL SET bombs IS EMPTY" in std.out and "WARNING: EXTERNAL SET bombs IS EMPTY" in std.err
    on_disk = json.loads((out / "results.json").read_text())
    summary = on_disk
    assert any("EXTERNAL SET bombs IS EMPTY after filtering: none of its 1 images" in n and "bad_files 1" in n for n in on_disk["notices"])
    assert on_disk["controls"]["external"]["bombs"]["bad_files"] == 1
    for task, arms in summary["summary"].items():
        h = arms["real"]["controls"]["external"]["hannover"]
        lo, hi = h["sensitivity_patient_ci95"]
        assert h["n"] == 243 and h["n_positive_patients"] == 71 and lo <= h["sensitivity"]["mean"] <= hi
        assert "bombs" not in arms["real"]["controls"]["external"]  # nothing to score
    for run in on_disk["runs"]:
        assert "per_image" not in run["controls"]["external"]["hannover"]
    md = (out / "tables.md").read_text()
    assert "hannover sensitivity % [patient CI]" in md and "internal sensitivity %" in md and "n/a (no negatives)" in md
    assert "External set bombs (imagefolder): 1 images found, 0 scored" in md and "bad_files 1" in md
    rows = list(csv.reader((out / "tables.csv").read_text().splitlines()))
    assert rows[0][-1] == "notices" and all("EXTERNAL SET bombs IS EMPTY" in r[-1] for r in rows[1:])
    assert "external_hannover_sensitivity_patient_ci95" in rows[0] and "empty (see notice)" in md
    verdicts = {r[0]: r[rows[0].index("same_source_verdict")] for r in rows[1:]}
    assert verdicts["normal-covid"] == "not measurable" and verdicts["pneumonia-covid"] in ("source", "no evidence")
    assert "normal-covid: the same-source control ('No Finding' X-rays of the COVID-19 collection, frontal) is not " \
           "measurable for real: 2 images, at least 10 needed" in md
    assert "same-source non-COVID pneumonias, frontal" in md and "one-sided p (same-source > test)" in md
    html = (out / "report.html").read_text()
    assert "another hospital" in html and "EXTERNAL SET bombs IS EMPTY" in html
    shutil.copy(out / "tables.md", Path(os.environ.get("CXRSYNTH_KEEP_TABLES", tmp_path)) / "tables.md")


def _control_inputs(wd: Path, task: str):
    """Real inputs of one task's control: the work folder's test split (labels, patients, whether each image
    is from the COVID-19 collection) and the sample's same-source negatives matched to the task."""
    from cxrsynth.stages.benchmark import controls as C
    from cxrsynth.stages.benchmark.arms import eval_items

    test = eval_items(SplitData.read(wd), task, "test")
    neg, findings, report = C.same_source_negatives(read_records(wd / "records.parquet"))
    control = [neg[i] for i in C.matched_negatives(findings, task)]
    return test, control, neg, findings, report


def _as_arm(name: str, per_run: list[dict]) -> dict:
    from cxrsynth.stages.benchmark.run import _control_summary

    return {"concrete_arm": name, "controls": _control_summary([{"controls": {"same_source": m, "external": {}}}
                                                                for m in per_run])}


def _metrics(model, test, control, task):
    """Score the test split and the control with ``model`` (path -> score) at 0.5, as score_controls does."""
    from cxrsynth.stages.benchmark import controls as C
    from cxrsynth.measure.metrics import threshold_metrics

    ts = np.array([model(i.path) for i in test])
    cm = threshold_metrics([i.label for i in test], ts, 0.5)["confusion"]
    pos = [k for k, i in enumerate(test) if i.label == 1]
    return C.same_source_metrics(ts[pos], [test[k].patient for k in pos], [model(i.path) for i in control],
                                 [i.patient for i in control], 0.5, 100, 0, cm, task)


def test_a_source_only_model_is_flagged_on_pneumonia_covid_not_on_normal_covid(small_wd):
    """A model that learned the source alone (every COVID-19 collection film scores 0.9, every NIH film 0.1)
    fed through the verdict: its matched pneumonia-covid control (46 non-COVID pneumonias) is flagged by the
    two-proportion test; its normal-covid control (the 2 'No Finding' films) is not measurable, so nothing is
    flagged there, and the report says why."""
    from cxrsynth.stages.benchmark.report import _verdict

    def source_only(path):
        return 0.9 if Path(path).is_relative_to(COVID) else 0.1

    texts = {}
    for task in ("normal-covid", "pneumonia-covid"):
        test, control, neg, findings, report = _control_inputs(small_wd, task)
        assert report["not_frontal"] == 7 and len(neg) == 52
        m = _metrics(source_only, test, control, task)
        texts[task] = " ".join(_verdict(task, {"real": _as_arm("real", [m])}))
    n_pc = _control_inputs(small_wd, "pneumonia-covid")[1]
    assert len(n_pc) == 46
    assert "part of what they detect is the source: real (100% vs 0%, p = " in texts["pneumonia-covid"]
    assert "not measurable" not in texts["pneumonia-covid"]
    assert "source" not in texts["normal-covid"].split("not measurable")[1].replace("same-source", "")
    assert "not measurable for real: 2 images, at least 10 needed" in texts["normal-covid"]
    assert "part of what they detect" not in texts["normal-covid"]


def test_controls_are_the_tasks_own_negative_class(small_wd):
    """A model that learned disease (pneumonias and COVID-19 score high, normal films low) would be "flagged"
    by the old pooled control on normal-covid, wrongly; the matched control holds 'No Finding' films only.
    On pneumonia-covid, a model that learned COVID-19 vs pneumonia is not flagged."""
    from cxrsynth.stages.benchmark import controls as C
    from cxrsynth.stages.benchmark.report import _verdict

    test, control, neg, findings, _ = _control_inputs(small_wd, "normal-covid")
    assert {findings[i] for i in C.matched_negatives(findings, "normal-covid")} == {"No Finding"}
    pc = {findings[i] for i in C.matched_negatives(findings, "pneumonia-covid")}
    assert "No Finding" not in pc and "ARDS" not in pc and "SARS" in pc
    normal_paths = {i.path for i in neg if "No Finding" == findings[neg.index(i)]} | {i.path for i in test if i.label == 0}

    def disease(path):
        return 0.1 if path in normal_paths else 0.9

    pooled = _metrics(disease, test, neg, "normal-covid")  # the old design: every non-COVID film of the collection
    assert C.shortcut_verdict([pooled])["verdict"] == "source"  # a false alarm: pneumonias are diseased
    matched = _metrics(disease, test, control, "normal-covid")
    assert matched["false_positives"] == 0 and C.shortcut_verdict([matched])["verdict"] == "not measurable"

    test, control, *_ = _control_inputs(small_wd, "pneumonia-covid")
    covid_paths = {i.path for i in test if i.label == 1}

    def learned_covid(path):
        return 0.9 if path in covid_paths else 0.2

    m = _metrics(learned_covid, test, control, "pneumonia-covid")
    assert m["fpr"] == 0 and C.shortcut_verdict([m])["verdict"] == "no evidence"
    text = " ".join(_verdict("pneumonia-covid", {"real": _as_arm("real", [m])}))
    assert "no evidence here that they detect the source" in text and "part of what they detect" not in text


def test_the_shortcut_rests_on_a_test_not_on_five_points():
    """The review's case: 71% vs 61% false positives with 56 control images passed the old +5-point rule;
    the one-sided two-proportion test does not call it (p > 0.05), while 80% vs 40% is called."""
    from cxrsynth.stages.benchmark import controls as C

    def run(k, n, k_test, n_test):
        return {"control": "x", "n_negatives": n, "fpr": k / n, "not_measurable": C.measurable(n, k),
                "test_fpr": k_test / n_test, "p_more_than_test": C.two_proportion_p(k, n, k_test, n_test)}

    weak = C.shortcut_verdict([run(40, 56, 37, 61)])
    assert weak["verdict"] == "no evidence" and weak["p"] > 0.05 and weak["fpr"] - weak["test_fpr"] > 0.05
    strong = C.shortcut_verdict([run(45, 56, 24, 61), run(44, 56, 26, 61)])
    assert strong["verdict"] == "source" and strong["p"] < 0.001 and strong["seeds"] == 2
    assert C.shortcut_verdict([run(1, 2, 0, 61)])["verdict"] == "not measurable"
    assert "interval spans 53 points" in C.measurable(10, 5) and C.measurable(10, 0) is None and C.measurable(40, 20) is None


def test_external_cells_say_not_measurable_when_the_interval_is_too_wide():
    """3 COVID-19 films of 3 patients give an interval spanning most of the scale: no number is read from
    it; 243 films of 71 patients give a sensitivity, its interval and the difference from the internal one."""
    from cxrsynth.stages.benchmark.report import _external_cells

    def stat(v):
        return {"mean": v, "std": 0.0, "n": 1}

    small = {"sensitivity": stat(2 / 3), "specificity": stat(1.0), "auroc": stat(0.9), "n_positive_patients": 3,
             "sensitivity_patient_ci95": [0.0, 1.0], "specificity_wilson95": [0.44, 1.0], "auroc_ci95": [0.5, 1.0]}
    cells = _external_cells(small, 0.8)
    assert cells[0] == "not measurable (3 patients)" and cells[1] == "-" and cells[2].startswith("100.00")
    big = small | {"sensitivity": stat(0.6), "n_positive_patients": 71, "sensitivity_patient_ci95": [0.5, 0.7],
                   "specificity": stat(None), "auroc": stat(None)}
    assert _external_cells(big, 0.8) == ["60.00 [50.0, 70.0]", "-20.0", "n/a (no negatives)", "n/a (no negatives)"]
