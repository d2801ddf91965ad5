"""bench/install_translators.py: the committed fp16 `paper` generators become a work folder's finished
translators, so bench/sample_release.sh can make a release without training. Generation from them
records the committed files' sha256. A work folder with another split than theirs is refused."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from .conftest import NIH

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("install_translators", ROOT / "bench" / "install_translators.py")
IT = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(IT)


@pytest.fixture
def tiny_wd(tmp_path):
    """A work folder of 30 NIH sample films relabelled normal / pneumonia / covid (10 each, one patient per
    film), ingested, split and planned with 4 images per domain: no translator in it."""
    from cxrsynth.core.paths import read_json
    from cxrsynth.data.records import read_records
    from cxrsynth.stages.ingest import ingest
    from cxrsynth.stages.plan import PlanConfig, make_plan
    from cxrsynth.stages.splits import SplitConfig, make_splits

    films = sorted((NIH / "images").glob("*.png"))[:30]
    for i, film in enumerate(films):
        label = ("normal", "pneumonia", "covid")[i % 3]
        (tmp_path / "src" / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(film, tmp_path / "src" / label / film.name)
    wd = tmp_path / "wd"
    ingest([tmp_path / "src"], out_dir=wd)
    make_splits(read_records(wd / "records.parquet"), SplitConfig(seed=0), wd / "records.parquet", wd / "splits.json")
    make_plan(read_records(wd / "records.parquet"), read_json(wd / "splits.json"), PlanConfig(per_domain=4), wd / "plan.json")
    return wd


def test_installed_generators_are_found_and_generate_with_their_committed_sha(tiny_wd):
    from cxrsynth.core.layout import WorkLayout
    from cxrsynth.core.paths import sha256_file
    from cxrsynth.pipeline import generate_in
    from cxrsynth.stages.generate import GenerateConfig
    from cxrsynth.stages.translate import describe_run

    installed = IT.install(tiny_wd, split_sha256=None)  # a tiny folder: not the generators' own split
    layout = WorkLayout(tiny_wd)
    for task, sha in installed.items():
        committed = IT.COMMITTED / task / "generator-fp16.safetensors"
        run = describe_run(layout.translator(task).root)
        # what the release pipeline asks of a run before it decides not to train it
        assert run.exported and run.report["finished"] and run.report["steps"] == run.report["total_steps"]
        assert sha == sha256_file(committed) == sha256_file(run.generator) and run.made(sha)
        assert run.config["preset"] == "paper" and run.info["arch"]["size"] == 128

    report = generate_in(tiny_wd, GenerateConfig(limit=2, workers=0, device="cpu", precision="fp32"))
    assert {c: r["generated"] for c, r in report["configs"].items()} == {"g_nc": 2, "g_pc": 2}
    prov = [json.loads(line) for p in sorted(layout.generated.rglob("provenance.jsonl")) for line in p.read_text().splitlines() if line]
    assert {p["config"]: p["checkpoint_sha256"] for p in prov} == {
        "g_nc": installed["normal-covid"], "g_pc": installed["pneumonia-covid"]}


def test_a_work_folder_with_another_split_is_refused(tiny_wd):
    from cxrsynth.core.errors import LeakageError

    want = IT.trained_split()  # what the committed sample release says these generators were trained on
    with pytest.raises(LeakageError, match="not the one the committed generators were trained on") as err:
        IT.install(tiny_wd, split_sha256=want)
    assert "splits.json" in str(err.value) and "order=largest-first" in str(err.value)
    assert not (tiny_wd / "translators").exists()  # nothing installed


def test_a_generator_that_is_not_the_released_one_is_refused(tmp_path):
    from cxrsynth.core.errors import CheckpointError

    src = tmp_path / "paper-translators"
    shutil.copytree(IT.COMMITTED, src, ignore=shutil.ignore_patterns("samples", "fidelity", "*.png", "*.csv"))
    desc = src / "pneumonia-covid" / "generator-fp16.json"
    desc.write_text(json.dumps(json.loads(desc.read_text()) | {"fp32_sha256": "0" * 64}))
    with pytest.raises(CheckpointError, match="was not made with this committed generator"):
        IT.trained_split(src)
    (src / "normal-covid" / "generator-fp16.safetensors").write_bytes(b"not the committed weights")
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        IT.committed_generator(src, "normal-covid")


def test_each_committed_release_names_the_split_of_its_own_generators():
    """The `refined` recipe's generators (issue 19) were released in their own sample release, on a
    random-order split: --release names that release, and pairing them with the `paper` release is refused."""
    from cxrsynth.artifacts import ReleaseFolder
    from cxrsynth.core.errors import CheckpointError

    rse, rse_release = ROOT / "bench" / "results" / "recipe-rse-translators", ROOT / "bench" / "results" / "sample-release-rse"
    split = IT.trained_split(rse, rse_release)
    assert split == ReleaseFolder(rse_release).manifest()["split_assignment_sha256"] != IT.trained_split()
    with pytest.raises(CheckpointError, match="was not made with this committed generator"):
        IT.trained_split(rse)  # the default release is the `paper` one


def test_generators_collected_with_their_split_need_no_release():
    """The `refined-thumbnail` generators were collected with split.json (their work folder's assignment
    sha256): that is the split they were trained on, the `refined` release's split (runs/thumb was made
    with a copy of runs/recipe-rse's split), whatever release is named beside them."""
    from cxrsynth.artifacts import ReleaseFolder

    thumb = ROOT / "bench" / "results" / "recipe-thumb-translators"
    want = ReleaseFolder(ROOT / "bench" / "results" / "sample-release-rse").manifest()["split_assignment_sha256"]
    assert IT.trained_split(thumb) == IT.trained_split(thumb, ROOT / "nowhere") == want
