"""Each reader on the real upstream files, and on small fixtures for the formats' other shapes."""

from __future__ import annotations

import shutil

import pytest

from cxrsynth.core.errors import BadInputError
from cxrsynth.data.sources import detect_format
from cxrsynth.data.sources import covid_collection
from cxrsynth.data.sources import imagefolder
from cxrsynth.data.sources import nih
from cxrsynth.data.sources import rsna
from cxrsynth.data.sources.base import parse_age

from .conftest import COVID, NIH, RSNA_META, RSNA_SAMPLE


def test_detects_every_upstream_layout(tmp_path):
    assert detect_format(COVID) == "covid-collection"
    assert detect_format(NIH) == "nih"
    assert detect_format(RSNA_META) == "rsna"
    assert detect_format(RSNA_SAMPLE) == "rsna"
    (tmp_path / "junk").mkdir()
    with pytest.raises(BadInputError, match="cannot tell the source format"):
        detect_format(tmp_path / "junk")


def test_covid_default_filters_xray_frontal_and_keeps_ards():
    scan = covid_collection.read(COVID, covid_collection.CovidCollectionConfig(), "c")
    assert scan.rows_read == 338
    assert len(scan.records) == 210
    findings = {r.finding for r in scan.records}
    assert findings == {"COVID-19", "COVID-19, ARDS"}
    assert {r.view for r in scan.records} <= {"PA", "AP", "AP Supine"}
    assert scan.excluded["view L"] == 20 and scan.excluded["modality CT"] == 43
    assert all(isinstance(r.patient_id, str) for r in scan.records)
    # the 2020 header ends with an empty column: it is dropped, not read as a field named ""
    from cxrsynth.data.sources.base import read_csv_rows

    header, rows = read_csv_rows(COVID / "metadata.csv")
    assert header[-1] == "other_notes" and "" not in rows[0]
    assert sum(scan.excluded.values()) + len(scan.records) == 338


def test_covid_paper_mode_keeps_laterals_and_exact_finding():
    scan = covid_collection.read(COVID, covid_collection.CovidCollectionConfig(mode="paper"), "c")
    assert len(scan.records) == 219  # finding == "COVID-19" and modality != CT, in this 2020-04-18 copy
    assert "L" in {r.view for r in scan.records}
    assert {r.finding for r in scan.records} == {"COVID-19"}


def test_covid_hierarchical_header(tmp_path):
    """Today's header: hierarchical findings, extra columns, no trailing comma."""
    (tmp_path / "images").mkdir()
    (tmp_path / "metadata.csv").write_text(
        "patientid,offset,sex,age,finding,RT_PCR_positive,survival,intubated,in_icu,view,modality,folder,filename,license\n"
        "00012,0,F,40,Pneumonia/Viral/COVID-19,Y,,,,PA,X-ray,images,a.png,CC BY\n"
        "13,0,M,,Pneumonia/Bacterial/Streptococcus,,,,,PA,X-ray,images,b.png,\n"
        "14,0,M,70,Pneumonia/Viral/COVID-19,Y,,,,Axial,CT,volumes,c.nii,\n"
        "15,0,M,70,No Finding,,,,,AP,X-ray,images,d.png,\n"
    )
    assert detect_format(tmp_path) == "covid-collection"
    scan = covid_collection.read(tmp_path, covid_collection.CovidCollectionConfig(), "x")
    assert [r.image_key for r in scan.records] == ["a.png"]
    assert scan.records[0].patient_id == "00012"  # a string, leading zeros kept
    assert scan.excluded == {"finding Pneumonia/Bacterial/Streptococcus": 1, "modality CT": 1, "finding No Finding": 1}


def test_nih_labels_age_and_views():
    scan = nih.read(NIH, nih.NihConfig(), "n")
    assert scan.rows_read == 1000
    assert scan.excluded["age below 18 or unknown"] == 95
    labels = [r.label for r in scan.records]
    assert len(labels) == 905 and set(labels) == {"normal", "pneumonia"}
    only = nih.read(NIH, nih.NihConfig(pneumonia="only", min_age=None), "n")
    assert len([r for r in only.records if r.label == "pneumonia"]) < 500
    assert len(nih.read(NIH, nih.NihConfig(min_age=None), "n").records) == 1000
    multi = [r for r in scan.records if "|" in r.finding]
    assert multi and all(r.label == "pneumonia" for r in multi)


def test_parse_age_formats():
    assert parse_age("58") == 58 and parse_age("058Y") == 58 and parse_age("6M") == 0.5
    assert parse_age("") is None and parse_age("148") is None and parse_age("abc") is None


def test_rsna_real_metadata_rows_per_box():
    scan = rsna.read(RSNA_META, rsna.RsnaConfig(), "r")
    assert scan.rows_read == 30227
    by = {"normal": 0, "pneumonia": 0}
    for r in scan.records:
        by[r.label] += 1
    assert by == {"normal": 20672, "pneumonia": 6012}
    assert sum(len(r.rows) for r in scan.records if r.label == "pneumonia") == 9555
    # sex, age and view come from the headers CSV without the DICOMs
    assert sum(r.view in ("PA", "AP") for r in scan.records) == 26684
    assert sum(r.age is None for r in scan.records) == 5  # PatientAge 148-155 are implausible
    strict = rsna.read(RSNA_META, rsna.RsnaConfig(normal="class-normal"), "r")
    assert sum(r.label == "normal" for r in strict.records) == 8851


def test_rsna_without_headers_csv_reads_dicom_headers():
    scan = rsna.read(RSNA_SAMPLE, rsna.RsnaConfig(), "r")
    assert len(scan.records) == 60
    assert all(r.view in ("PA", "AP") and r.age is not None and r.sex in ("M", "F") for r in scan.records)


def test_rsna_bad_rows_are_reported(tmp_path):
    shutil.copytree(RSNA_SAMPLE, tmp_path / "r")
    labels = tmp_path / "r" / "stage_2_train_labels.csv"
    labels.write_text(labels.read_text() + ",,,,,0\nabc,,,,,7\n")
    scan = rsna.read(tmp_path / "r", rsna.RsnaConfig(), "r")
    assert len(scan.records) == 60
    assert len(scan.problems) == 2 and all("bad row" in p.reason for p in scan.problems)


def test_imagefolder_labels_and_patients(tmp_path):
    shutil.copy(next(NIH.glob("images/*.png")), tmp_path / "x.png")
    for label in ("Normal", "COVID-19", "other"):
        (tmp_path / "root" / label).mkdir(parents=True)
        shutil.copy(tmp_path / "x.png", tmp_path / "root" / label / "a.png")
    (tmp_path / "root" / "Normal" / "notes.txt").write_text("hi")
    (tmp_path / "root" / "metadata.csv").write_text("file_name,patient_id\nNormal/a.png,p1\nCOVID-19/a.png,p1\n")
    scan = imagefolder.read(tmp_path / "root", imagefolder.ImageFolderConfig(), "f")
    assert sorted(r.label for r in scan.records) == ["covid", "normal"]
    assert {r.patient_id for r in scan.records} == {"p1"}
    assert scan.excluded == {"folder other is not a known label": 1}
    assert [p.reason for p in scan.problems] == ["not an image file (by suffix)"]


HANNOVER = RSNA_SAMPLE.parent / "covid-19-image-repository"


def test_hannover_reads_the_real_repository():
    """243 radiographs, all COVID-19, with patient, projection as given (AP / PA) and sex; age is redacted."""
    from cxrsynth.data.sources import is_external
    from cxrsynth.data.sources import hannover

    assert detect_format(HANNOVER) == "hannover" and is_external("hannover") and not is_external("nih")
    scan = hannover.read(HANNOVER, hannover.HannoverConfig(), "h")
    assert scan.rows_read == 243 and len(scan.records) == 243 and not scan.problems
    assert {r.label for r in scan.records} == {"covid"}
    views = [r.view for r in scan.records]
    assert views.count("AP") == 194 and views.count("PA") == 49
    assert {r.sex for r in scan.records} == {"M", "F"} and {r.age for r in scan.records} == {None}
    assert len({r.patient_id for r in scan.records}) == len({row.split(",")[0] for row in
                                                            (HANNOVER / "data.csv").read_text().split()[1:]})
    assert all(r.path.is_file() and r.source_path.startswith("png/") for r in scan.records)
    only_pa = hannover.read(HANNOVER, hannover.HannoverConfig(projections=("PA",)), "h")
    assert len(only_pa.records) == 49 and only_pa.excluded["projection AP"] == 194


def test_hannover_bad_rows_are_reported_and_skipped(tmp_path):
    from cxrsynth.data.sources import hannover

    (tmp_path / "png").mkdir()
    (tmp_path / "data.csv").write_text(
        "patient_id,image_id,sex,age,modality,projection\n"
        "p1,a1,w,,CR,ap\n"        # German 'w' (weiblich) is female
        "p1,a1,w,,CR,ap\n"        # repeated image id
        ",a2,m,,CR,pa\n"          # no patient
        "p2,../x,m,,CR,pa\n"      # not a plain file name
        "p3,a3,m,,CT,\n"          # not a radiograph: excluded, not a problem
        "p4,a4,m,,DX\n"           # one field short
        "p5,a5,f,61,DX,pa\n"
    )
    scan = hannover.read(tmp_path, hannover.HannoverConfig(), "h")
    assert [(r.image_key, r.sex, r.age, r.view) for r in scan.records] == [("a1", "F", None, "AP"), ("a5", "F", 61.0, "PA")]
    assert len(scan.problems) == 4 and scan.excluded == {"modality CT": 1}
    reasons = " ".join(p.reason for p in scan.problems)
    assert "listed twice" in reasons and "no image_id or no patient_id" in reasons and "not a plain file name" in reasons
    assert "fields where the header has" in reasons


def test_hannover_is_never_ingested_for_training(tmp_path):
    """Given to ingest explicitly, its rows are counted as excluded; the default roots leave it out."""
    from cxrsynth.stages.ingest import EXTERNAL_EXCLUDED, IngestConfig, default_roots, ingest

    assert HANNOVER not in default_roots(HANNOVER.parent) and COVID in default_roots(HANNOVER.parent)
    res = ingest([HANNOVER], out_dir=tmp_path)
    col = res.report["collections"]["covid-19-image-repository"]
    assert res.records == [] and col["excluded"] == {EXTERNAL_EXCLUDED: 243} and col["unreferenced_files"] == 0
    ext = ingest([HANNOVER], IngestConfig(size=32), external=True)
    assert len(ext.records) == 243 and all(r.has_pixels for r in ext.records)
