"""The benchmark as a stage: records, split, plan and release in (made here in tmp_path, a few tiny
images), a :class:`BenchmarkResult` stamped with the release out, and no work folder opened."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from cxrsynth.artifacts import BenchmarkResult, ReleaseFolder
from cxrsynth.core.runtime import Runtime
from cxrsynth.stages.benchmark.inputs import SplitData

from .test_stages import _generate, _plan, _records

pytestmark = pytest.mark.no_data

SPLIT_SHA = "0" * 64  # what test_stages' plan records as its split (so the release matches this split)


def tiny_trunk():
    """A classifier trunk of one convolution (``model=tests.test_benchmark_stage:tiny_trunk``): the
    stage's plumbing is under test here, not a network, and a resnet18 step takes seconds on 2 cores."""
    import torch

    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())


def _split_manifest(assign: dict[str, str]) -> dict:
    """A split manifest as ``cxrsynth split`` writes one, for ``assign``."""
    return {"assignments": assign, "assignment_sha256": SPLIT_SHA, "counts": {}, "patients": {}, "notes": [],
            "config": {"method": "rigorous", "seed": 0, "fractions": [0.7, 0.1, 0.2]}}


def _artefacts(tmp_path):
    """Records (4 translated normals and 3 COVID-19 in train, 3 + 3 in validation and in test), their
    split, the plan, and a release of the 4 translations with its private mapping."""
    from cxrsynth.stages.release.package import ReleaseConfig, package

    gen = _generate(tmp_path, Runtime.resolve("cpu", "fp32"))
    normal = _records(tmp_path / "src")[:4]
    more = _records(tmp_path / "more", 16)[:15]
    labels = ["covid"] * 3 + ["normal", "normal", "normal", "covid", "covid", "covid"] * 2
    where = ["train"] * 3 + ["validation"] * 6 + ["test"] * 6
    more = [dataclasses.replace(r, record_id=f"m{i}", patient_id=f"q{i}", label=lab)
            for i, (r, lab) in enumerate(zip(more, labels))]
    records = normal + more
    splits = _split_manifest({r.record_id: "train" for r in normal} | {f"m{i}": w for i, w in enumerate(where)})
    plan = _plan(_records(tmp_path / "src"))
    assert plan["splits_sha256"] == SPLIT_SHA
    release = package(gen, plan, records, {"normal-covid": tmp_path / "g"}, ReleaseFolder(tmp_path / "rel" / "tiny"),
                      ReleaseConfig(name="tiny", configs=("g_nc",), grid_images=2))
    return records, splits, plan, release


def test_the_benchmark_stage_takes_artefacts_and_returns_a_result_stamped_with_the_release(tmp_path, monkeypatch):
    import cxrsynth.stages.load.real_images as real_images
    from cxrsynth.artifacts.stamps import stamped_benchmark
    from cxrsynth.core.config import resolve
    from cxrsynth.stages.benchmark.report import render_report
    from cxrsynth.stages.benchmark.run import BenchmarkConfig, benchmark

    records, splits, plan, release = _artefacts(tmp_path)

    def no_folder(*args, **kwargs):
        raise AssertionError("the benchmark stage opened a work folder")

    # no work folder anywhere: none in the current folder (load's default), and its readers refuse
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(SplitData, "read", classmethod(no_folder))
    monkeypatch.setattr(real_images, "from_workdir", no_folder)
    cfg = resolve(BenchmarkConfig, overrides=["model=tests.test_benchmark_stage:tiny_trunk", "init=random", "image_size=32", "fit.max_epochs=1",
                                              "bootstrap=20", "seeds=1", "tasks=normal-covid", "arms=real,real+own,real+null",
                                              "figures=false", "device=cpu"])
    out = tmp_path / "bench"
    result = benchmark(records, splits, release, cfg, Runtime.resolve("cpu", "fp32"), out, plan=plan)

    assert isinstance(result, BenchmarkResult) and result.folder == out
    assert result.data_sha256 == release.data_sha256  # stamped with the release's images
    assert BenchmarkResult.read(out).data_sha256 == release.data_sha256  # and so is results.json
    assert stamped_benchmark(result, release.data_sha256) is result.data
    arms = result.data["summary"]["normal-covid"]
    assert sorted(arms) == ["real", "real+null", "real+own"]
    assert arms["real+own"]["concrete_arm"] == "real+g_nc"
    runs = {r["arm"]: r for r in result.data["runs"]}
    assert runs["real+own"]["train"]["positives_synthetic"] == 4  # the release's four translations
    assert runs["real+null"]["train"]["positives_null"] == 4 and runs["real"]["train"]["positives_synthetic"] == 0
    assert result.summary["release"] == str(release.root)  # the caller's copy keeps the path it gave

    # the renderer: a page from the folder's files, naming every arm, here a copy without any model file
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("model.safetensors", "report.html"))
    page = render_report(BenchmarkResult.read(copy))
    assert page.startswith("<!doctype html>") and "figures were off" in page
    assert all(f"<td>{arm}</td>" in page for arm in ("real", "real+g_nc", "real+null"))
    assert page == (out / "report.html").read_text()  # the one renderer of report.html


def test_split_data_written_for_launched_jobs_reads_back_the_same(tmp_path):
    """A launched benchmark writes its records, split and plan once for its jobs; each job reads them
    back as they were."""
    from cxrsynth.stages.benchmark.arms import eval_items

    records = _records(tmp_path / "src", 4)
    data = SplitData(records, _split_manifest({"r0": "test", "r1": "test", "r2": "train"}), {"tasks": {}})
    back = SplitData.read(data.write(tmp_path / "jobs" / "inputs"))
    assert (back.records, back.splits, back.plan, back.ingest_report) == (records, data.splits, {"tasks": {}}, None)
    assert [i.record_id for i in eval_items(back, "normal-covid", "test")] == ["r0", "r1"]
    with pytest.raises(Exception, match="needs the release plan"):
        dataclasses.replace(data, plan=None).need_plan("the null arm")


def test_a_result_without_its_folder_is_not_rendered():
    from cxrsynth.stages.benchmark.report import render_report

    with pytest.raises(ValueError, match="folder"):
        render_report(BenchmarkResult({"kind": "cxrsynth.benchmark_results"}))
