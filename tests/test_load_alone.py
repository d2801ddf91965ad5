"""``cxrsynth.load`` from a release alone: real images from a folder or a ``datasets`` dataset, no work
folder; and one meaning per arm name (``synthetic-only`` is the task's own translator, as in the benchmark)."""

from __future__ import annotations

import warnings

import pytest

import cxrsynth
from cxrsynth.core.errors import ConfigError

from .conftest import NIH


def _listing(root):
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*"))


def test_release_plus_nih_folder_needs_no_work_folder(built, tmp_path, monkeypatch):
    _, rel, _ = built
    monkeypatch.chdir(tmp_path)  # no cxrsynth-work here: nothing can come from a work folder
    before = _listing(NIH)
    ds = cxrsynth.load("normal-covid", "real+g_nc", release=rel, real=NIH, size=32)
    assert _listing(NIH) == before and list(tmp_path.iterdir()) == []  # the user's folder untouched, nothing written
    n_syn = ds.origins.count("synthetic")
    assert n_syn == 24 and ds.labels.count(1) == n_syn  # positives: the g_nc config only, all synthetic
    negatives = [ref for ref, lab in ds.real if lab == 0]
    assert len(negatives) == ds.origins.count("real") > 100 and all(ref.startswith(str(NIH)) for ref in negatives)
    assert ds.info["kind"] == "folders" and ds.info["splits"]["method"] == "rigorous" and ds.info["splits"]["seed"] == 0
    assert ds.info["counts"] == {"real_negative": len(negatives), "real_positive": 0, "synthetic": 24}
    x, y = ds[0]
    assert x.shape == (1, 32, 32) and y == 0 and 0 <= float(x.min()) < float(x.max()) <= 1
    # validation and test: the same on-the-fly split, patient-disjoint from train, from the same ingest
    monkeypatch.setattr("cxrsynth.stages.ingest.ingest", lambda *a, **k: pytest.fail("the unchanged folder was ingested again"))
    test = cxrsynth.load("normal-covid", "real", split="test", real=NIH, size=32)
    assert test.info["splits"]["assignment_sha256"] == ds.info["splits"]["assignment_sha256"]
    assert set(test.labels) == {0} and not {r for r, _ in test.real} & set(negatives)
    other = cxrsynth.load("normal-covid", "real", real=[NIH], size=32, seed=1)
    assert other.info["splits"]["assignment_sha256"] != ds.info["splits"]["assignment_sha256"]
    own = cxrsynth.load("normal-covid", "real+own", release=rel, real=NIH)  # the README's spelling: the same arm
    assert own.info["arm"] == "real+g_nc" and own.real == ds.real and own.info["counts"] == ds.info["counts"]


def _rows(n: int, labels: list[str], patients: bool = True):
    import datasets
    from PIL import Image

    files = sorted((NIH / "images").iterdir())[:n]
    data = {"image": [Image.open(f) for f in files], "label": [labels[i % len(labels)] for i in range(n)]}
    if patients:
        data["patient_id"] = [f"p{i // 2}" for i in range(n)]  # two rows per patient
    return datasets.Dataset.from_dict(data)


def test_datasets_input_labels_and_patients():
    import datasets

    rows = _rows(40, ["No Finding", "covid-19", "Effusion", "pneumonia"])
    ds = cxrsynth.load("normal-covid", "real", real=rows, size=32)
    assert ds.info["kind"] == "datasets" and ds.info["skipped"] == {"label Effusion": 10}
    assert ds.info["records"] == 30 and ds.info["notes"] == []
    split_rows = {s: {ref for ref, _ in cxrsynth.load("normal-covid", "real", split=s, real=rows).real}
                  for s in ("train", "validation", "test")}
    for s, t in (("train", "test"), ("train", "validation"), ("validation", "test")):
        assert not {i // 2 for i in split_rows[s]} & {i // 2 for i in split_rows[t]}  # patient-disjoint
    labels = {ref: lab for ref, lab in ds.real}
    assert all(labels[i] == (1 if i % 4 == 1 else 0) for i in labels) and all(i % 4 in (0, 1) for i in labels)
    x, y = ds[0]
    assert x.shape == (1, 32, 32) and y == labels[ds.real[0][0]]
    # a row's image is the same canonical array as the same file read from a folder
    from cxrsynth.data.images import load_canonical

    path = sorted((NIH / "images").iterdir())[ds.real[0][0]]
    assert (x.numpy()[0] * 255).round().astype("uint8").tolist() == load_canonical(path, 32).tolist()
    # a ClassLabel column reads by its names
    cl = rows.cast_column("label", datasets.ClassLabel(names=["No Finding", "covid-19", "Effusion", "pneumonia"]))
    assert cxrsynth.load("pneumonia-covid", "real", real=cl).labels.count(1) == ds.labels.count(1)
    no_patients = cxrsynth.load("normal-covid", "real", real=_rows(12, ["normal"], patients=False))
    assert "image-level" in no_patients.info["notes"][0]


def test_bad_real_inputs_are_one_clear_error(tmp_path):
    import datasets

    with pytest.raises(ConfigError, match="lacks columns"):
        cxrsynth.load("normal-covid", "real", real=_rows(4, ["normal"]).rename_column("label", "y"))
    with pytest.raises(ConfigError, match="not an Image feature"):
        cxrsynth.load("normal-covid", "real", real=datasets.Dataset.from_dict({"image": ["a.png"], "label": ["normal"]}))
    with pytest.raises(ConfigError, match="not both"):
        cxrsynth.load("normal-covid", "real", real=NIH, workdir=tmp_path)
    with pytest.raises(ConfigError, match="real= takes"):
        cxrsynth.load("normal-covid", "real", real=42)


def test_synthetic_only_means_the_tasks_own_translator(built):
    """As the benchmark's ``synthetic-only``; the old meaning (both) is ``synthetic-only-both``, and the
    changed name warns, naming both spellings."""
    _, rel, _ = built
    rows = _rows(20, ["normal", "covid"])
    with pytest.warns(FutureWarning, match=r"'synthetic-only \(g_pc\)'.*'synthetic-only-both'"):
        own = cxrsynth.load("pneumonia-covid", "synthetic-only", release=rel, real=_rows(20, ["pneumonia", "covid"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        concrete = cxrsynth.load("normal-covid", "synthetic-only (g_nc)", release=rel, real=rows)
        both = cxrsynth.load("normal-covid", "synthetic-only-both", release=rel, real=rows)
    assert own.info["arm"] == "synthetic-only (g_pc)" and own.info["counts"]["synthetic"] == 24
    assert own.info["counts"]["real_positive"] == 0 and own.labels.count(1) == 24
    assert concrete.info["counts"]["synthetic"] == 24 and both.info["counts"]["synthetic"] == 48
    assert own.synthetic[0][0]["config"] == "g_pc" and {s[0]["config"] for s in both.synthetic} == {"g_nc", "g_pc"}


def test_a_changed_folder_is_ingested_again(tmp_path):
    """The in-process ingest is reused only while every file stays as it was."""
    import shutil

    files = sorted((NIH / "images").iterdir())[:13]
    for i, f in enumerate(files[:12]):
        (tmp_path / ("normal" if i % 2 else "covid")).mkdir(exist_ok=True)
        shutil.copy(f, tmp_path / ("normal" if i % 2 else "covid") / f.name)
    first = cxrsynth.load("normal-covid", "real", real=tmp_path)
    assert first.info["records"] == 12 and any("image-level" in n for n in first.info["notes"])
    shutil.copy(files[12], tmp_path / "normal" / files[12].name)
    assert cxrsynth.load("normal-covid", "real", real=tmp_path).info["records"] == 13
