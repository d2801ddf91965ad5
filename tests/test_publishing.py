"""What a release says about itself: licences from the records (and the ingest allow-list), Croissant as
mlcroissant reads it, the card's YAML and body, the translator card's licence, diff and CITATION.cff."""

from __future__ import annotations

import csv
import shutil
import json
import subprocess
import sys
from collections import Counter

import pytest
import yaml

from cxrsynth.core.paths import REPO_ROOT, read_json
from cxrsynth.data.records import read_records
from cxrsynth.stages.release.card import read_front_matter, size_category
from cxrsynth.stages.release.croissant import REQUIRED
from cxrsynth.stages.release.verify import verify

from .conftest import COVID, NIH, TINY
from .test_push import _copy, _version


def _card_table(card: str) -> dict[str, int]:
    """The licence table of the card's Licence section."""
    section = card.split("## Licence", 1)[1].split("## ", 1)[0]
    return {row.split("|")[1].strip(): int(row.split("|")[2].strip().replace(",", ""))
            for row in section.splitlines() if row.startswith("| ") and not row.startswith("| licence")}


def test_licence_counts_in_manifest_and_card_match_the_records(built):
    wd, rel, manifest = built
    records = {r.record_id: r for r in read_records(wd / "records.parquet")}
    plan = read_json(wd / "plan.json")
    per_task = {t: [records[i].license or "no licence stated" for i in plan["tasks"][t]["translator_train"]["covid"]]
                for t in ("normal-covid", "pneumonia-covid")}
    learnt = Counter(records[i].license or "no licence stated"
                     for i in {i for t in per_task for i in plan["tasks"][t]["translator_train"]["covid"]})
    lic = manifest["licensing"]
    assert lic["learnt_from"] == dict(learnt) and sum(learnt.values()) > 0
    assert {t["task"]: t["train_images"]["covid_licences"] for t in manifest["translators"]} == \
        {t: dict(Counter(v)) for t, v in per_task.items()}
    card = (rel / "README.md").read_text()
    assert _card_table(card) == dict(learnt)
    # the sample's COVID-19 rows include blank and ND licences: named, counted, never called CC BY-NC-SA
    assert learnt["no licence stated"] > 0 and lic["no_right_to_adapt"]["no licence stated"] == learnt["no licence stated"]
    assert f"{learnt['no licence stated']:,} no licence stated" in card and "mostly CC BY-NC-SA" not in card
    assert manifest["license"] == lic["derived"] == "cc-by-nc-sa-4.0"
    nih = next(s for s in manifest["sources"] if s["source"] == "nih")
    assert "no restrictions" in nih["licence"] and "acknowledge the NIH Clinical Center" in nih["attribution"]
    assert "acknowledge the NIH Clinical Center" in card and "non-commercial research" not in card


def test_licence_allow_list_end_to_end(tmp_path):
    """--set covid_collection.licenses=[...] at ingest -> a release that learnt only from those licences."""
    from cxrsynth.core.config import resolve
    from cxrsynth.stages.generate import GenerateConfig
    from cxrsynth.stages.plan import PlanConfig, make_plan
    from cxrsynth.pipeline import PipelineConfig, release
    from cxrsynth.stages.splits import SplitConfig, make_splits
    from cxrsynth.stages.translate.train import TrainConfig, train

    wd = tmp_path / "wd"
    allowed = ["CC BY-NC-SA", "CC BY-NC-SA 4.0"]
    res = subprocess.run([sys.executable, "-m", "cxrsynth.cli", "-w", str(wd), "ingest", str(COVID), str(NIH),
                          "--set", f"covid_collection.licenses=[{', '.join(allowed)}]"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    # what the reader must have left out: COVID-19 X-ray frontal rows under any other licence
    with open(COVID / "metadata.csv", encoding="utf-8-sig") as fh:
        rows = [r for r in csv.DictReader(fh) if r["finding"].split("/")[-1].strip().upper().startswith("COVID-19")
                and r["modality"] == "X-ray" and r["view"] in ("PA", "AP", "AP Supine")]
    expect = Counter((r["license"].strip() or "no licence stated") for r in rows if r["license"].strip() not in allowed)
    assert expect["no licence stated"] > 0 and expect["CC BY-NC-ND"] > 0
    recs = read_records(wd / "records.parquet")
    assert {r.license for r in recs if r.source == "covid-collection"} <= set(allowed)
    make_splits(recs, SplitConfig(seed=0), wd / "records.parquet", wd / "splits.json")
    make_plan(read_records(wd / "records.parquet"), read_json(wd / "splits.json"), PlanConfig(per_domain=4), wd / "plan.json")
    for task in ("normal-covid", "pneumonia-covid"):
        train(wd, resolve(TrainConfig, overrides=TINY + [f"task={task}", "max_steps=1"]))
    card = (wd / "translators" / "normal-covid" / "README.md").read_text()
    assert read_front_matter(wd / "translators" / "normal-covid" / "README.md")["license"] == "cc-by-nc-sa-4.0"
    assert "no licence stated" not in card
    m = release(wd, wd / "release", PipelineConfig(generate=GenerateConfig(limit=4, workers=0)), audit=False)
    lic = m["licensing"]
    assert set(lic["learnt_from"]) <= set(allowed) and lic["no_right_to_adapt"] == {}
    assert lic["excluded_at_ingest"] == dict(expect)
    assert m["license"] == "cc-by-nc-sa-4.0"
    card = (wd / "release" / "covid-cxr-synth" / "README.md").read_text()
    assert "Left out at ingest by the licence allow-list: " + ", ".join(f"{k} {v:,}" for k, v in lic["excluded_at_ingest"].items()) in card
    assert "grant no right to adapt" not in card


def test_croissant_reads_back_with_mlcroissant(built):
    mlc = pytest.importorskip("mlcroissant")
    rel = built[1]
    ds = mlc.Dataset(jsonld=str(rel / "croissant.json"))
    md = ds.metadata
    assert not [w for w in md.ctx.issues.warnings if "required" in w.lower() or "property" in w.lower()], md.ctx.issues.warnings
    assert set(md.conforms_to) == {"http://mlcommons.org/croissant/1.0", "http://mlcommons.org/croissant/RAI/1.0"}
    assert md.creators and md.publisher and md.date_published.isoformat()[:10] == built[2]["created"][:10]
    for name in ("data_collection", "data_collection_type", "data_preprocessing_protocol", "data_manipulation_protocol",
                 "data_use_cases", "data_biases", "data_limitations", "data_social_impact",
                 "personal_sensitive_information", "data_release_maintenance_plan"):
        assert getattr(md, name), name
    assert "@misc{covid_cxr_synth_1_0_0" in md.cite_as
    doc = json.loads((rel / "croissant.json").read_text())
    assert [k for k in REQUIRED if k not in doc] == ["url"]  # the address comes at push time (test_push)
    fields = {f["@id"]: f for f in next(r for r in doc["recordSet"] if r["@id"] == "images")["field"]}
    assert fields["images/label"]["references"] == {"field": {"@id": "label_classes/index"}}
    # the release's own size (64 px here), never a hard-coded 256x256
    assert fields["images/image"]["description"] == "8-bit grayscale 64x64 PNG." and "256x256" not in json.dumps(doc)
    assert "stretched to 64x64" in doc["rai:dataPreprocessingProtocol"][0]
    # mlcroissant reads the records: labels name their classes, `created` is a date-time
    classes = {r["label_classes/index"]: r["label_classes/name"] for r in ds.records("label_classes")}
    assert classes == {0: "normal", 1: "pneumonia", 2: "covid"}
    first = next(iter(ds.records("images")))
    assert classes[first["images/label"]] == "covid" and classes[first["images/source_label"]] in ("normal", "pneumonia")
    assert first["images/created"].year == int(built[2]["created"][:4])


def test_card_yaml_and_body(built):
    from .hub_server import SIZE_CATEGORIES, yaml_errors

    rel = built[1]
    card = (rel / "README.md").read_text()
    fm = read_front_matter(rel / "README.md")
    assert yaml_errors(card) == [] and "source_datasets" not in fm  # no sources on the Hub: left out
    assert fm["size_categories"] == ["n<1K"] and set(fm["extra_gated_fields"].values()) == {"checkbox"}
    assert "re-identify" in " ".join(fm["extra_gated_fields"]) and "research only" in fm["extra_gated_prompt"]
    body = card.split("\n---\n", 1)[1]
    covid = next(s for s in built[2]["sources"] if s["source"] == "covid-collection")["by_label"]["covid"]
    assert "{'" not in body and "arch {" not in body and f"(covid {covid:,})" in body  # counts as words, not a dict
    assert f"and the toolkit that made it, cxrsynth {built[2]['code_version']} (its `CITATION.cff`)" in body
    assert not [line for line in body.splitlines() if "{'" in line or "': " in line]
    got = [size_category(n) for n in (0, 999, 1_000, 999_999, 1_000_000, 10**7, 10**12, 10**13)]
    assert got == ["n<1K", "n<1K", "1K<n<10K", "100K<n<1M", "1M<n<10M", "10M<n<100M", "n>1T", "n>1T"]
    assert set(got) <= SIZE_CATEGORIES


def test_diff_writes_the_changes_into_the_new_card(built, tmp_path):
    old = _copy(built, tmp_path)
    new = _version(built, tmp_path, "1.0.1", max_shard_bytes=60_000, drop=4)
    res = subprocess.run([sys.executable, "-m", "cxrsynth.cli", "diff", str(old), str(new), "--write", "--json"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    d = json.loads(res.stdout)
    m = read_json(new / "manifest.json")
    assert d["old"] == "1.0.0" and d["new"] == "1.0.1" and d["counts"]["all"] == {"old": 48, "new": 44}
    assert d["translators"] == {} and d["license"] == {"old": "cc-by-nc-sa-4.0", "new": "cc-by-nc-sa-4.0"}
    assert set(d["files"]["removed"]) == {"data/g_nc-00000-of-00001.parquet", "data/g_pc-00000-of-00001.parquet"}
    assert set(d["files"]["added"]) == {f["path"] for f in m["files"]}
    changes = (new / "README.md").read_text().split("## Changes", 1)[1].split("## ", 1)[0]
    assert "Changes from version 1.0.0 to 1.0.1" in changes and "all 48 -> 44" in changes
    assert "data/g_nc-00000-of-00001.parquet" in changes
    assert verify(new) == []  # the card and SHA256SUMS were rewritten together
    # a later render (e.g. at push time, with the repo id) keeps the Changes section
    from cxrsynth.stages.release.card import rerender

    rerender(new, "org/covid-cxr-synth")
    assert "all 48 -> 44" in (new / "README.md").read_text() and verify(new) == []


def test_citation_cff_cites_the_toolkit_and_names_the_dataset():
    from cxrsynth import __version__
    from cxrsynth.stages.release.package import ReleaseConfig

    cff = yaml.safe_load((REPO_ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["title"].startswith("cxrsynth:") and cff["version"] == __version__ and cff["license"] == "Apache-2.0"
    data = [r for r in cff["references"] if r["type"] == "data"]
    assert [r["title"] for r in data] == [ReleaseConfig().pretty_name] and "version" not in data[0]
    assert any("Zunair" in a["family-names"] for r in cff["references"] for a in r["authors"] if "family-names" in a)


@pytest.mark.no_data
def test_release_licence_follows_the_inputs():
    from cxrsynth.data.sources.terms import release_licence

    assert release_licence({"CC BY": 3}, ["nih"])[0] == "cc-by-4.0"
    assert release_licence({"CC BY-SA 4.0": 3, "Apache 2.0": 1}, ["rsna"])[0] == "cc-by-sa-4.0"
    hub_id, why, restricted = release_licence({"CC BY-NC-SA": 5, "no licence stated": 4, "CC BY-NC-ND": 1}, ["nih"])
    assert hub_id == "cc-by-nc-sa-4.0" and restricted == {"no licence stated": 4, "CC BY-NC-ND": 1}
    assert "4 no licence stated, 1 CC BY-NC-ND" in why and "NIH ChestX-ray14" in why
    assert release_licence({"CC BY-SA": 1, "CC BY-NC": 1}, [])[0] == "other"  # no licence satisfies both
    assert release_licence({"some custom terms": 2}, [])[2] == {"some custom terms": 2}  # unknown grants nothing
    # translated images from a user folder count by their own licences
    hub_id, why, restricted = release_licence({"CC BY": 2}, ["imagefolder"], {"CC BY-NC": 5, "no licence stated": 1})
    assert hub_id == "cc-by-nc-4.0" and restricted == {"no licence stated": 1} and "Some translated images" in why


def test_hub_rejects_what_it_would_reject_in_our_fields(built, tmp_path):
    """The stand-in's validate-yaml (what the Hub checks in the fields we write) on variants of our card."""
    from cxrsynth.stages.release.card import card_text

    from .hub_server import yaml_errors

    manifest = read_json(built[1] / "manifest.json")
    assert yaml_errors(card_text(manifest)) == []
    assert yaml_errors(card_text({**manifest, "license": "other"})) == []  # with license_name and license_link
    card = card_text(manifest)
    bad = {"size": card.replace("- n<1K", "- n>1M"), "configs": card.replace("- split: train\n    path: data/*.parquet",
                                                                              "- split: train", 1),
           "licence": card.replace("license: cc-by-nc-sa-4.0", "license: CC BY-NC-SA 4.0")}
    assert all(bad[k] != card for k in bad)
    assert yaml_errors(bad["size"]) == ['"size_categories" must be one of the size categories, got "n>1M"']
    assert yaml_errors(bad["configs"])[0].startswith('"configs.all.data_files" must be')
    assert yaml_errors(bad["licence"])[0].startswith('"license" must be a license id')


@pytest.fixture(scope="module")
def paper_release(planned_workdir, tmp_path_factory):
    """A tiny release made by two `paper`-preset translators (1 update each, 64 px, 4 images a config)."""
    from cxrsynth.stages.generate import GenerateConfig
    from cxrsynth.core.layout import WorkLayout
    from cxrsynth.pipeline import PipelineConfig, release
    from cxrsynth.stages.translate.train import resolve_train_config, train

    from .conftest import copy_workdir

    wd = copy_workdir(planned_workdir, tmp_path_factory.mktemp("paper") / "wd")
    for task in ("normal-covid", "pneumonia-covid"):
        shutil.rmtree(WorkLayout(wd).translator(task).root, ignore_errors=True)  # `trained` may have put some there
        train(wd, resolve_train_config(overrides=["preset=paper", "size=64", "base=8", "disc_base=8", "batch_size=4",
                                                  "max_steps=1", "save_every=1", "sample_every=4", f"task={task}"]))
    manifest = release(wd, wd / "release", PipelineConfig(generate=GenerateConfig(limit=4, workers=0)), audit=False)
    return wd / "release" / "covid-cxr-synth", manifest


def test_paper_release_card_describes_its_own_translators(paper_release, tmp_path):
    rel, manifest = paper_release
    t = manifest["translators"][0]
    assert t["preset"] == "paper" and t["arch"]["name"] == "unet_generator" and t["recipe"]["disc_base"] == 8
    assert t["architecture"].startswith("U-Net generator (4 down, 3 up blocks, skips), width 8")
    card = (rel / "README.md").read_text()
    made = card.split("- **Translators**", 1)[1].split("- **Generation**", 1)[0]
    for t in manifest["translators"]:
        tr = t["train_images"]
        assert f"`{t['config']}` ({t['task']}): `paper` recipe (the seed authors' own Keras-GAN recipe" in made
        assert f"learnt from {tr['source']} " in made and f"+ {tr['covid']} COVID-19 images at 64x64 px" in made
    assert "U-Net generator" in made and "lsgan GAN loss, cycle weight 10.0, identity weight 0.1 x cycle, batch 4" in made
    # what the review found in a paper release's card: none of it here
    for wrong in ("ResNet", "PatchGAN", "None blocks", "images per domain:", "checkerboard", "transposed"):
        assert wrong not in card, wrong
    assert verify(rel) == []
    # verify catches a manifest that calls the U-Net a ResNet, even with its checksums rewritten
    from cxrsynth.core.paths import write_sha256sums
    from cxrsynth.stages.release.card import rerender

    bad = tmp_path / "bad" / rel.name
    shutil.copytree(rel, bad)
    shutil.copytree(rel.parent / f"{rel.name}.private", bad.parent / f"{rel.name}.private")
    m = read_json(bad / "manifest.json")
    m["translators"][0]["architecture"] = "ResNet generator, 9 residual blocks, width 64"
    (bad / "manifest.json").write_text(json.dumps(m))
    rerender(bad)
    write_sha256sums(bad)
    problems = verify(bad)
    assert any("is described as 'ResNet generator, 9 residual blocks, wid" in p and "is a U-Net" in p for p in problems), problems


def test_canonical_release_card_names_resnet_and_its_artefacts(built):
    card = (built[1] / "README.md").read_text()
    t = built[2]["translators"][0]
    assert t["preset"] == "canonical" and "None" not in t["architecture"]
    assert "`canonical` recipe" in card and "ResNet generator, 2 residual blocks, width 8" in card
    assert "checkerboard" in card
