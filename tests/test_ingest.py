"""Ingest on the real sample folders: counts, deduplication, missing and broken files, workers."""

from __future__ import annotations

import json
import shutil

import pytest

from cxrsynth.core.config import resolve
from cxrsynth.core.errors import BadInputError, ConfigError
from cxrsynth.stages.ingest import IngestConfig, ingest
from cxrsynth.data.records import read_metadata, read_records
from cxrsynth.core.schemas import validate

from .conftest import COVID, NIH, RSNA_SAMPLE


def test_all_sources_counts_and_files(all_sources_ingest):
    rep = all_sources_ingest.report
    cols = rep["collections"]
    assert cols["nih-chestxray14-sample"]["records"] == 904  # 905 adults, one exact duplicate inside NIH
    assert cols["covid-chestxray-dataset"]["labelled"] == 210
    assert cols["rsna-pneumonia-detection-challenge"]["records"] == 26684
    # every RSNA-format DICOM is an NIH image re-encoded: all 60 are found and dropped
    assert cols["rsna-format-sample"]["duplicates_dropped"] == 60
    assert cols["rsna-format-sample"]["records"] == 0
    assert rep["totals"]["missing_files"] == 5 + 26683
    validate(rep, "ingest_report")
    on_disk = json.loads(all_sources_ingest.report_path.read_text())
    assert on_disk["totals"] == rep["totals"]
    records = read_records(all_sources_ingest.records_path)
    assert len(records) == rep["totals"]["records"]
    assert read_metadata(all_sources_ingest.records_path)["size"] == 256
    assert len({r.record_id for r in records}) == len(records)
    ids = {r.pixel_sha256 for r in records if r.has_pixels}
    assert len(ids) == rep["totals"]["with_pixels"]  # each real image used once


def test_cross_source_duplicates_keep_nih_and_merge_patients(all_sources_ingest):
    dups = all_sources_ingest.report["duplicates"]
    rsna = [d for d in dups if d["dropped_path"].startswith("rsna-format-sample/")]
    assert len(rsna) == 60
    assert all(d["kept_path"].startswith("nih-chestxray14-sample/") for d in rsna)
    assert not any(d["label_conflict"] for d in rsna)
    mapping = dict(line.split(",") for line in (RSNA_SAMPLE / "nih_image_index.csv").read_text().split()[1:])
    by_id = {r.record_id: r for r in all_sources_ingest.records}
    for d in rsna:
        pid = d["dropped_path"].split("/")[-1][:-4]
        assert by_id[d["kept"]].image_key == mapping[pid]


def test_kept_nih_copy_takes_the_rsna_label(tmp_path):
    """RSNA's labels are expert re-reads of NIH images: when the NIH copy is kept, it carries RSNA's label."""
    rsna = tmp_path / "rsna"
    shutil.copytree(RSNA_SAMPLE, rsna)
    labels = (rsna / "stage_2_train_labels.csv").read_text().splitlines()
    pid = labels[1].split(",")[0]  # a 'Normal' (Target 0) image: relabel it as pneumonia in the RSNA copy
    labels[1] = f"{pid},,,,,1"
    (rsna / "stage_2_train_labels.csv").write_text("\n".join(labels) + "\n")
    classes = (rsna / "stage_2_detailed_class_info.csv").read_text().replace(f"{pid},Normal", f"{pid},Lung Opacity")
    (rsna / "stage_2_detailed_class_info.csv").write_text(classes)
    nih_name = dict(line.split(",") for line in (rsna / "nih_image_index.csv").read_text().split()[1:])[pid]
    res = ingest([NIH, rsna], out_dir=tmp_path / "wd")
    kept = next(r for r in res.records if r.image_key == nih_name)
    assert kept.source == "nih" and kept.label == "pneumonia"
    entry = next(d for d in res.report["duplicates"] if d["dropped_path"].endswith(f"{pid}.dcm"))
    assert entry["label_conflict"] and entry["label_from"] == "rsna" and entry["kept"] == kept.record_id
    others = [d for d in res.report["duplicates"] if d["dropped_path"].startswith("rsna") and d is not entry]
    assert len(others) == 59 and not any(d["label_conflict"] for d in others)


def test_duplicates_inside_a_source_are_reported(all_sources_ingest):
    pairs = {(d["kept_path"], d["dropped_path"]) for d in all_sources_ingest.report["duplicates"]}
    assert ("nih-chestxray14-sample/images/00002658_002.png", "nih-chestxray14-sample/images/00002658_001.png") in pairs
    covid = [p for p in pairs if p[0].startswith("covid")]
    assert len(covid) == 4  # the same figures published twice under two names


def test_missing_files_kept_label_only_or_refused(tmp_path):
    res = ingest([COVID], out_dir=tmp_path / "a")
    missing = res.report["missing_files"]
    assert len(missing) == 5 and all(m["action"] == "keep" for m in missing)
    assert sum(not r.has_pixels for r in res.records) == 5
    skip = ingest([COVID], resolve(IngestConfig, overrides=["on_missing=skip"]))
    assert len(skip.records) == len(res.records) - 5 and len(skip.report["missing_files"]) == 5
    with pytest.raises(BadInputError, match="5 image files are missing"):
        ingest([COVID], resolve(IngestConfig, overrides=["on_missing=error"]))


def test_corrupt_and_non_image_files(tmp_path):
    root = tmp_path / "nih"
    (root / "images").mkdir(parents=True)
    lines = (NIH / "Data_Entry_2017.csv").read_text().splitlines()
    keep = [ln for ln in lines[1:] if ",Pneumonia," in ln and ",PA," in ln][:6]
    (root / "Data_Entry_2017.csv").write_text("\n".join([lines[0]] + keep) + "\n")
    names = [ln.split(",")[0] for ln in keep]
    for n in names:
        shutil.copy(NIH / "images" / n, root / "images" / n)
    data = (root / "images" / names[0]).read_bytes()
    (root / "images" / names[0]).write_bytes(data[: len(data) // 4])  # truncated
    (root / "images" / names[1]).write_text("<html>404</html>")  # a web page saved as .png
    (root / "images" / "README.txt").write_text("stray")
    res = ingest([root], out_dir=tmp_path / "out")
    bad = {b["path"]: b["reason"] for b in res.report["bad_files"]}
    assert set(bad) == {f"images/{names[0]}", f"images/{names[1]}"}
    assert all("not a readable image" in r for r in bad.values())
    assert len(res.records) == 4
    assert any(p["path"] == "images/README.txt" for p in res.report["problems"])
    with pytest.raises(BadInputError) as err:
        ingest([root], resolve(IngestConfig, overrides=["on_bad_files=error"]))
    assert names[0] in str(err.value) or names[1] in str(err.value)


def test_workers_give_identical_records(tmp_path):
    one = ingest([RSNA_SAMPLE, NIH], resolve(IngestConfig, overrides=["nih.min_age=60"]))
    two = ingest([RSNA_SAMPLE, NIH], resolve(IngestConfig, overrides=["nih.min_age=60", "workers=2"]))
    assert [(r.record_id, r.pixel_sha256) for r in one.records] == [(r.record_id, r.pixel_sha256) for r in two.records]


def test_config_rejects_unknown_keys_and_bad_values(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key nih.min_agee"):
        resolve(IngestConfig, overrides=["nih.min_agee=3"])
    with pytest.raises(ConfigError, match="on_missing must be one of"):
        resolve(IngestConfig, overrides=["on_missing=maybe"])
    (tmp_path / "c.yaml").write_text("size: 128\nnih:\n  pneumonia: only\n")
    cfg = resolve(IngestConfig, tmp_path / "c.yaml", ["covid_collection.views=PA,AP"])
    assert cfg.size == 128 and cfg.nih.pneumonia == "only" and cfg.covid_collection.views == ("PA", "AP")


def test_reading_records_does_not_import_pandas(all_sources_ingest):
    """Every train, generate and benchmark process reads the record table first. pyarrow's read_table
    goes through pyarrow.dataset, which imports pandas (a quarter of a second each); one file needs neither."""
    import subprocess
    import sys

    code = ("import sys; from cxrsynth.data.records import read_records; "
            f"n = len(read_records({str(all_sources_ingest.records_path)!r})); print(n, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(all_sources_ingest.report["totals"]["records"]), "False"]


def test_a_damaged_record_table_is_named(tmp_path):
    path = tmp_path / "records.parquet"
    path.write_bytes(b"PAR1 not a parquet file PAR1")
    with pytest.raises(BadInputError, match="not a readable parquet file") as err:
        read_records(path)
    assert str(path) in str(err.value)
