"""Release folders: build, verify (and catch corruption), load through datasets, cxrsynth.load, reproduce."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from cxrsynth.stages.audit.run import AuditConfig
from cxrsynth.core.errors import ConfigError
from cxrsynth.stages.generate import GenerateConfig
from cxrsynth.core.paths import write_sha256sums
from cxrsynth.pipeline import PipelineConfig, release
from cxrsynth.stages.release.verify import verify

from .conftest import copy_workdir

GEN = GenerateConfig(limit=24, shard_size=10, workers=0)


def _fresh_copy(built, tmp_path):
    wd, rel, _ = built
    dst = tmp_path / "rel" / "covid-cxr-synth"
    shutil.copytree(rel, dst)
    shutil.copytree(rel.parent / "covid-cxr-synth.private", dst.parent / "covid-cxr-synth.private")
    return dst


def test_release_layout_and_verify(built):
    wd, rel, manifest = built
    assert manifest["counts"] == {"g_nc": 24, "g_pc": 24, "all": 48}
    names = sorted(p.relative_to(rel).as_posix() for p in rel.rglob("*") if p.is_file())
    assert names == ["README.md", "SHA256SUMS", "croissant.json", "data/g_nc-00000-of-00001.parquet",
                     "data/g_pc-00000-of-00001.parquet", "manifest.json", "provenance.jsonl", "sample_grid.png"]
    assert verify(rel) == []
    priv = rel.parent / "covid-cxr-synth.private"
    assert (priv / "mapping.jsonl").is_file() and not (rel / "mapping.jsonl").exists()
    assert not list(rel.parent.glob(".*staging"))  # renamed into place
    card = (rel / "README.md").read_text()
    for must in ("Not for clinical use", "cc-by-nc-sa-4.0", "Not yet audited", "NIH ChestX-ray14",
                 "COVID-19 Image Data Collection", "@article{zunair2021synthesis", "load_dataset(", "48",
                 "8-bit grayscale 64x64 PNG", "a partial release"):
        assert must in card, must


def test_croissant_validates_with_mlcroissant(built):
    pytest.importorskip("mlcroissant")
    assert verify(built[1], croissant_strict=True) == []


def test_existing_release_is_not_destroyed(built, tmp_path):
    wd, rel, _ = built
    with pytest.raises(ConfigError, match="already exists"):
        release(wd, wd / "release", PipelineConfig(generate=GEN), audit=False)


@pytest.mark.parametrize("damage", ["byte", "delete_shard", "edit_card", "leak", "extra_file", "schema"])
def test_verify_catches_damage(built, tmp_path, damage):
    rel = _fresh_copy(built, tmp_path)
    shard = next((rel / "data").glob("g_pc-*.parquet"))
    if damage == "byte":
        data = bytearray(shard.read_bytes())
        data[len(data) // 2] ^= 0x01
        shard.write_bytes(bytes(data))
        expect = f"data/{shard.name}: checksum does not match SHA256SUMS"
    elif damage == "delete_shard":
        shard.unlink()
        expect = f"data/{shard.name}: listed in SHA256SUMS but missing"
    elif damage == "edit_card":
        card = rel / "README.md"
        card.write_text(card.read_text().replace("num_examples: 24", "num_examples: 25", 1))
        write_sha256sums(rel)  # even with matching checksums the disagreement is caught
        expect = "README.md: dataset_info"
    elif damage == "leak":
        mapping = (rel.parent / "covid-cxr-synth.private" / "mapping.jsonl").read_text().splitlines()
        record_id = json.loads(mapping[0])["record_id"]
        card = rel / "README.md"
        card.write_text(card.read_text() + f"\nsource: {record_id}\n")
        write_sha256sums(rel)
        expect = "README.md: contains a source identifier from record_ids"
    elif damage == "extra_file":
        (rel / "notes.txt").write_text("hi")
        expect = "notes.txt: not listed in SHA256SUMS"
    else:
        m = json.loads((rel / "manifest.json").read_text())
        m["version"] = "one"
        (rel / "manifest.json").write_text(json.dumps(m))
        write_sha256sums(rel)
        expect = "manifest.json: release_manifest does not match its schema at version"
    problems = verify(rel)
    assert any(p.startswith(expect) for p in problems), problems
    res = subprocess.run([sys.executable, "-m", "cxrsynth.cli", "verify", str(rel)], capture_output=True, text=True)
    assert res.returncode == 1 and "FAIL " + expect in res.stdout


def test_leak_scan_finds_generic_identifiers(built, tmp_path):
    rel = _fresh_copy(built, tmp_path)
    shutil.rmtree(rel.parent / "covid-cxr-synth.private")
    prov = rel / "provenance.jsonl"
    prov.write_text(prov.read_text() + "")
    card = rel / "README.md"
    card.write_text(card.read_text() + "\nseen in /work/shared/data/nih/images/00001280_004.png and "
                    "c64d5667-a776-4f95-9e21-bfabafb07740\n")
    write_sha256sums(rel)
    problems = verify(rel)
    for what in ("an absolute path", "a UUID", "an NIH image file name"):
        assert any(what in p for p in problems), (what, problems)


def _load(code: str, cwd, env_extra=None):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", **(env_extra or {}))
    res = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_load_dataset_every_way(built, tmp_path):
    rel = built[1]
    code = """
import json
from datasets import load_dataset
from PIL import Image
ds = load_dataset("covid-cxr-synth")
pc = load_dataset("covid-cxr-synth", "g_pc")
nc = load_dataset("%s", "g_nc", split="train")
st = next(iter(load_dataset("covid-cxr-synth", "all", split="train", streaming=True)))
row = ds["train"][0]
print(json.dumps({"all": ds["train"].num_rows, "g_pc": pc["train"].num_rows, "g_nc": nc.num_rows,
  "configs": sorted(set(pc["train"]["config"])), "pil": isinstance(row["image"], Image.Image),
  "label": ds["train"].features["label"].int2str(row["label"]), "stream_pil": isinstance(st["image"], Image.Image),
  "size": row["image"].size, "mode": row["image"].mode}))
""" % rel
    out = _load(code, cwd=rel.parent, env_extra={"HF_HOME": str(tmp_path / "hf")})
    assert out == {"all": 48, "g_pc": 24, "g_nc": 24, "configs": ["g_pc"], "pil": True, "label": "covid",
                   "stream_pil": True, "size": [64, 64], "mode": "L"}


def test_cxrsynth_load_arms(built):
    import cxrsynth

    wd, rel, _ = built
    real = cxrsynth.load("normal-covid", "real", workdir=wd, size=64)
    both = cxrsynth.load("normal-covid", "real+g_nc+g_pc", workdir=wd, release=rel, size=64)
    synth = cxrsynth.load("normal-covid", "synthetic-only-both", workdir=wd, release=rel, size=64)
    over = cxrsynth.load("normal-covid", "real-oversampled", workdir=wd, release=rel, size=64)
    n_pos = sum(real.labels)
    n_neg = len(real) - n_pos
    assert len(both) == len(real) + 48 and sum(both.labels) == n_pos + 48
    assert len(synth) == n_neg + 48 and synth.origins.count("synthetic") == 48
    assert sum(over.labels) == n_pos + 48 and over.origins.count("synthetic") == 0
    x, y = both[len(both) - 1]
    assert x.shape == (1, 64, 64) and 0 <= float(x.min()) and float(x.max()) <= 1 and y == 1
    test = cxrsynth.load("pneumonia-covid", "real", split="test", workdir=wd, size=64)
    assert set(test.labels) == {0, 1}
    with pytest.raises(ConfigError, match="unknown arm"):
        cxrsynth.load("normal-covid", "real+g_xx", workdir=wd)


def test_second_release_with_audit_reproduces_image_checksums(built, trained, tmp_path):
    """The pipeline as `cxrsynth release` runs it (audit included) on a fresh copy of the same inputs."""
    wd2 = copy_workdir(trained, tmp_path / "wd2")
    # the audit's own numbers are test_audit.py's; here 2 quality repeats and 100 resamples (not 10 and
    # 2000) are enough to show the pipeline audits and the card carries it
    audit_cfg = AuditConfig(fidelity=False, quality_repeats=2, bootstrap=100)
    m2 = release(wd2, wd2 / "release", PipelineConfig(generate=GEN, audit=audit_cfg))
    assert m2["audit"] is not None and len(m2["audit"]["verdicts"]) == 7
    card = (wd2 / "release" / "covid-cxr-synth" / "README.md").read_text()
    assert "Not yet audited" not in card and "reverse translation leads back to its source" in card
    def shas(rel):
        return sorted(json.loads(x)["png_sha256"] for x in (rel / "provenance.jsonl").read_text().splitlines())
    assert shas(built[1]) == shas(wd2 / "release" / "covid-cxr-synth")
    assert [t["generator_sha256"] for t in m2["translators"]] == [t["generator_sha256"] for t in built[2]["translators"]]


def test_path_search_finds_what_a_substring_search_finds():
    from cxrsynth.stages.release.verify import first_path_in

    paths = sorted(["images/00001280_004.png", "stage_2_train_images/c64d.dcm", "images/a b.png", "dir/"])
    text = "x /work/data/nih/images/00001280_004.pngz and images/a b.png, stage_2_train_images/c64d.dc"
    found = [p for p in paths if p in text]
    assert found == ["images/00001280_004.png", "images/a b.png"]
    assert first_path_in(text, paths) == found[0]
    assert first_path_in(text, ["stage_2_train_images/c64d.dcm"]) is None
    assert first_path_in("see dir/ here", ["dir/"]) == "dir/"
    assert first_path_in("images/a b.png", ["images/a b.png"]) == "images/a b.png"
    assert first_path_in("", ["images/x.png"]) is None


def test_no_audit_gives_not_yet_audited_and_a_foreign_audit_is_refused(trained, tmp_path):
    """An audit.json lying in the work folder (an earlier release's) never reaches this release's card."""
    from cxrsynth.core.paths import write_json
    from cxrsynth.stages.release.describe import attach_audit
    from cxrsynth.stages.release.package import data_fingerprint

    wd = copy_workdir(trained, tmp_path / "wd")
    write_json(wd / "audit" / "audit.json", {"summary": {"text": "STALE AUDIT OF ANOTHER RELEASE", "verdicts": []},
                                            "audited_release": {"data_sha256": "0" * 64}})
    m = release(wd, wd / "release", PipelineConfig(generate=GEN), audit=False)
    rel = wd / "release" / "covid-cxr-synth"
    card = (rel / "README.md").read_text()
    assert m["audit"] is None and "**Not yet audited.**" in card and "STALE" not in card
    assert m["data_sha256"] == data_fingerprint(m) and len(m["data_sha256"]) == 64
    with pytest.raises(ConfigError, match="other images"):
        attach_audit(rel, wd / "audit" / "audit.json")
    assert verify(rel) == []


def test_manifest_describes_the_translator_that_was_passed(trained, tmp_path):
    """`release --translator TASK=PATH` is described in the manifest from PATH's run, not WORKDIR/translators."""
    from cxrsynth.core.config import resolve
    from cxrsynth.stages.translate.train import TrainConfig, train

    from .conftest import TINY

    wd = copy_workdir(trained, tmp_path / "wd")
    other = tmp_path / "other-run"
    rep = train(wd, resolve(TrainConfig, overrides=TINY + ["task=normal-covid", "max_steps=3", "seed=7"]), out_dir=other)
    own = json.loads((wd / "translators" / "normal-covid" / "train_report.json").read_text())
    assert own["generator_sha256"] != rep["generator_sha256"] and own["steps"] != 3
    m = release(wd, wd / "release", PipelineConfig(generate=GEN), translators={"normal-covid": str(other / "generator.safetensors")}, audit=False)
    t = {x["task"]: x for x in m["translators"]}
    assert t["normal-covid"]["generator_sha256"] == rep["generator_sha256"]
    assert t["normal-covid"]["steps"] == 3 and t["normal-covid"]["seed"] == 7
    assert t["normal-covid"]["translator_id"] == rep["translator_id"]
    assert t["pneumonia-covid"]["steps"] == json.loads(
        (wd / "translators" / "pneumonia-covid" / "train_report.json").read_text())["steps"]


def test_hub_side_yaml_edit_keeps_verify_ok_protected_sections_do_not(built, tmp_path):
    """A metadata edit on the Hub (YAML front matter) leaves a downloaded copy verifying; an edit of a
    protected section fails naming it; SHA256SUMS covers every file but the card (`sha256sum -c` passes)."""
    import yaml

    rel = _fresh_copy(built, tmp_path)
    card = rel / "README.md"
    text = card.read_text()
    assert "README.md" not in (rel / "SHA256SUMS").read_text()
    res = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=rel, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    head, body = text[4:].split("\n---\n", 1)
    meta = yaml.safe_load(head)
    meta["task_ids"] = ["multi-class-image-classification"]  # what a librarian bot's PR adds
    meta["tags"] = meta["tags"] + ["radiology"]
    meta["pretty_name"] = "COVID-CXR-Synth (edited on the Hub)"
    meta["extra_gated_prompt"] = meta["extra_gated_prompt"] + " Edited by Hub staff."
    card.write_text("---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n" + body)
    assert card.read_text() != text and verify(rel) == []
    # a free section (Benchmark) may change too
    card.write_text(card.read_text().replace("No benchmark was run for this version", "Benchmark tables elsewhere"))
    assert verify(rel) == []
    # a protected section may not: the problem names it and the line
    edited = card.read_text().replace("**Label noise.**", "**No label noise.**")
    card.write_text(edited)
    problems = verify(rel)
    line = next(i for i, x in enumerate(edited.splitlines(), 1) if "**No label noise.**" in x)
    (got,) = [p for p in problems if p.startswith("README.md")]
    assert got.startswith(f"README.md: line {line} reads ") and "- **No label noise.** RSNA" in got, problems
    assert "expected \"- **Label noise.** RSNA" in got and "(protected section 'Limitations and biases')" in got
    # a protected section removed, or given twice, is named too
    licence = "## Licence" + edited.split("## Licence", 1)[1].split("\n## ", 1)[0] + "\n"
    card.write_text(text.replace(licence, ""))
    assert any("protected section 'Licence' is missing" in p for p in verify(rel))
    card.write_text(text.replace(licence, licence + licence))
    assert any("protected section 'Licence' appears 2 times" in p for p in verify(rel))
