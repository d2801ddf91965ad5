"""Stages as "artefacts in, artefact out": each stage is called here on a few images made in tmp_path,
without a work folder and without the stages before it; and the one Runtime a command builds is the
one every stage runs with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cxrsynth.artifacts import AuditResult, BenchmarkResult, GeneratedSet
from cxrsynth.data.records import Record
from cxrsynth.core.runtime import Runtime

pytestmark = pytest.mark.no_data

ARCH = {"name": "resnet_generator", "in_channels": 1, "out_channels": 1, "base": 4, "blocks": 1, "size": 32}


def _records(root: Path, n: int = 5) -> list[Record]:
    """``n`` small gray PNGs under ``root`` as normal records (the last one label-only, no pixels)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        name = f"img{i}.png"
        has_pixels = i < n - 1
        if has_pixels:
            Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(root / name)
        out.append(Record(record_id=f"r{i}", source="imagefolder", collection="tiny", source_root=str(root),
                          source_path=name, image_key=name, patient_id=f"p{i}", label="normal",
                          license="CC0-1.0", has_pixels=has_pixels))
    return out


def _generator(path: Path) -> Path:
    from cxrsynth.stages.translate.checkpoint import export_generator
    from cxrsynth.stages.translate.networks import build_generator

    torch.manual_seed(0)
    export_generator(build_generator(ARCH), path, ARCH)
    return path


def _plan(records: list[Record]) -> dict:
    """A plan of one task: translate every record; the translator learnt from the first two and a COVID-19
    record that is not in the table (a plan may name records ingest later dropped)."""
    ids = [r.record_id for r in records]
    return {"split_method": "rigorous", "splits_sha256": "0" * 64, "config": {"per_domain": 2, "seed": 0},
            "tasks": {"normal-covid": {"translate": {"record_ids": ids, "n": len(ids)},
                                       "translator_train": {"source": ids[:2], "covid": ["gone"]}}}}


def _generate(tmp_path: Path, rt: Runtime, **cfg) -> GeneratedSet:
    from cxrsynth.stages.generate import GenerateConfig, generate

    records = _records(tmp_path / "src")
    cfg = GenerateConfig(configs=("g_nc",), workers=0, shard_size=2, compile="off", **cfg)
    return generate(_plan(records), records, {"normal-covid": _generator(tmp_path / "g" / "generator.safetensors")},
                    cfg, rt, GeneratedSet(tmp_path / "generated"))


def test_generate_takes_a_plan_records_and_generator_files_and_returns_the_generated_set(tmp_path):
    gen = _generate(tmp_path, Runtime.resolve("cpu", "fp32"))
    stats = gen.report["configs"]["g_nc"]
    assert (stats["generated"], stats["label_only_skipped"], stats["shards"]) == (4, 1, 2)
    assert gen.report["precision"] == "fp32" and gen.report["device"] == "cpu"
    per_config, mapping = gen.collect(("g_nc",))  # every shard finished and certified
    assert sorted(m["record_id"] for m in mapping) == ["r0", "r1", "r2", "r3"]
    rows = per_config["g_nc"]
    assert len(rows) == 4 and all(Image.open(gen.image(p)).size == (32, 32) for p in rows)
    assert gen == GeneratedSet(tmp_path / "generated")  # the files are the artefact, not the report
    assert not list(tmp_path.rglob("plan.json")) and not list(tmp_path.rglob("records.parquet"))


def test_generate_runs_with_the_runtime_it_is_given(tmp_path):
    """A Runtime with bf16 autocast is the one generate uses (its report states it), whatever the
    config's own precision says: the command chose it once."""
    gen = _generate(tmp_path, Runtime.resolve("cpu", "bf16"), precision="fp32")
    assert gen.report["precision"] == "bf16"
    assert gen.report["configs"]["g_nc"]["generated"] == 4


@pytest.mark.parametrize("argv, stage", [
    (["train", "--task", "normal-covid", "--set", "precision=bf16"], "cxrsynth.stages.translate.train.train"),
    (["generate", "--set", "precision=bf16"], "cxrsynth.pipeline.generate_in"),
    (["benchmark", "--set", "fit.precision=bf16"], "cxrsynth.pipeline.benchmark_in"),
    (["benchmark", "--set", "fit.precision=bf16", "--task", "normal-covid", "--eval-only", "m.safetensors"],
     "cxrsynth.stages.benchmark.evaluate.evaluate"),
    (["audit", "REL", "--set", "precision=bf16"], "cxrsynth.pipeline.audit_in"),
    (["release", "--set", "generate.precision=bf16"], "cxrsynth.pipeline.release"),
])
def test_each_command_builds_one_runtime_and_hands_it_to_its_stage(argv, stage, tmp_path, monkeypatch, capsys):
    """The device is chosen once per command (``pick_device`` runs once), and the stage receives that
    Runtime, with the precision the command's config asked for."""
    import importlib

    import cxrsynth.core.runtime as runtime
    from cxrsynth.cli import main

    picked, got = [], []
    real_pick = runtime.pick_device
    monkeypatch.setattr(runtime, "pick_device", lambda *a, **k: picked.append(a) or real_pick("cpu"))
    (tmp_path / "REL").mkdir()
    bench = tmp_path / "wd" / "benchmark"

    def fake(*args, **kwargs):
        got.append(kwargs.get("rt"))
        bench.mkdir(parents=True, exist_ok=True)
        (bench / "tables.md").write_text("| arm |\n")
        return {"steps": 1, "total_steps": 1, "device": "cpu", "precision": "bf16", "seconds_per_step": 0,
                "translator_id": "t", "configs": {}, "summary": {"text": "", "verdicts": []}, "name": "n",
                "version": "1.0.0", "counts": {}}

    module, name = stage.rsplit(".", 1)
    monkeypatch.setattr(importlib.import_module(module), name, fake)
    if name == "benchmark_in":  # the stage's BenchmarkResult, read through .summary
        monkeypatch.setattr(importlib.import_module(module), name, lambda *a, **k: BenchmarkResult(fake(**k)))
    if name == "evaluate":  # evaluate's result is read through .results
        monkeypatch.setattr(importlib.import_module(module), name, lambda *a, **k: type("R", (), {"results": fake(**k)}))
    if name == "audit_in":  # the stage's AuditResult, read through .summary
        monkeypatch.setattr(importlib.import_module(module), name, lambda *a, **k: AuditResult(fake(**k)))
    monkeypatch.chdir(tmp_path)
    main(["-w", str(tmp_path / "wd"), *argv])
    assert len(picked) == 1, picked
    assert len(got) == 1 and isinstance(got[0], Runtime)
    assert (got[0].device.type, got[0].precision) == ("cpu", "bf16")


def test_the_audits_inverse_step_runs_with_the_runtime_it_is_given(tmp_path, monkeypatch):
    """The reverse generator of the inverse-recovery test runs on the Runtime's device and autocast
    (it was fixed to the CPU in fp32 before)."""
    import cxrsynth.stages.generate as G
    from cxrsynth.artifacts import TranslatorRun
    from cxrsynth.stages.audit.run import _inverse
    from cxrsynth.core.layout import TranslatorFolder

    _generator(TranslatorFolder(tmp_path / "run").reverse_generator)
    seen = []
    real = G.translate_batch
    monkeypatch.setattr(G, "translate_batch", lambda net, x, device, amp, cl: seen.append((device, amp)) or
                        real(net, x, device, amp, cl))
    syn = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    out = _inverse(TranslatorRun.read(tmp_path / "run"), syn, Runtime.resolve("cpu", "bf16"))
    assert out.shape == syn.shape and out.dtype == np.uint8
    assert seen == [(torch.device("cpu"), torch.bfloat16)]
    assert _inverse(TranslatorRun.read(tmp_path / "none"), syn, Runtime.resolve("cpu", "bf16")) is None  # no generator


def test_fit_trains_in_the_runtimes_precision():
    """fit takes its autocast from the Runtime (built from fit.precision by the command), not from the
    config it is handed: two configs under one Runtime train alike, two Runtimes differently."""
    from torch import nn

    from cxrsynth.stages.benchmark.fit import FitConfig, fit
    from cxrsynth.measure.classifiers import Classifier

    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randint(0, 256, (16, 1, 16, 16), generator=g).float() / 255,
                                          torch.arange(16) % 2)

    def losses(precision: str, rt: Runtime) -> list[float]:
        torch.manual_seed(0)
        stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        hist = fit(Classifier("tiny", stem, 4, stem[0]), data, data, FitConfig(max_epochs=2, batch_size=8,
                                                                              precision=precision), 0, rt)
        return [h["train_loss"] for h in hist["history"]]

    bf16 = Runtime.resolve("cpu", "bf16")
    assert losses("fp32", bf16) == losses("bf16", bf16) != losses("fp32", Runtime.resolve("cpu", "fp32"))


def test_package_takes_a_generated_set_and_returns_a_verified_release_folder(tmp_path):
    from cxrsynth.artifacts import ReleaseFolder
    from cxrsynth.stages.release.package import ReleaseConfig, package
    from cxrsynth.stages.release.verify import verify

    gen = _generate(tmp_path, Runtime.resolve("cpu", "fp32"))
    records = _records(tmp_path / "src")
    target = ReleaseFolder(tmp_path / "out" / "tiny")
    ingest = {"collections": {"tiny": {"excluded": {"licence not allowed: CC-BY-NC-4.0": 3}}}}
    rel = package(gen, _plan(records), records, {"normal-covid": tmp_path / "g"}, target,
                  ReleaseConfig(name="tiny", configs=("g_nc",), grid_images=2), ingest)
    assert rel == target and rel.is_release()
    manifest = rel.manifest()
    assert manifest["counts"] == {"g_nc": 4, "all": 4}
    assert manifest["translators"][0]["generator_sha256"] == gen.provenance("g_nc")[0]["checkpoint_sha256"]
    assert sum(manifest["licensing"]["excluded_at_ingest"].values()) == 3  # from the report given, not a folder
    assert sorted(m["record_id"] for m in rel.mapping()) == ["r0", "r1", "r2", "r3"]
    assert verify(rel.root, rel.private) == []


def test_audit_of_a_tiny_release_returns_a_result_stamped_with_it(tmp_path):
    """A release of four images made here, a work folder of twelve records written by hand: the audit
    returns a typed result stamped with the release's data_sha256, the same one audit.json holds."""
    import dataclasses
    import json

    from cxrsynth.artifacts import ReleaseFolder
    from cxrsynth.artifacts.stamps import stamped_audit
    from cxrsynth.pipeline import audit_in
    from cxrsynth.stages.audit.run import AuditConfig
    from cxrsynth.core.errors import StampError
    from cxrsynth.core.layout import WorkLayout
    from cxrsynth.data.records import write_records
    from cxrsynth.stages.release.package import ReleaseConfig, package

    gen = _generate(tmp_path, Runtime.resolve("cpu", "fp32"))
    normal = _records(tmp_path / "src")[:4]  # the four translated images (their files are there)
    more = _records(tmp_path / "more", 9)[:8]  # 4 held-out normals, 4 real COVID-19
    more = [dataclasses.replace(r, record_id=f"m{i}", patient_id=f"q{i}", label="normal" if i < 4 else "covid")
            for i, r in enumerate(more)]
    records = normal + more
    plan = _plan(_records(tmp_path / "src"))
    plan["tasks"]["normal-covid"]["translator_train"]["covid"] = ["m4", "m5"]
    wl = WorkLayout(tmp_path / "wd")
    wl.root.mkdir()
    write_records(records, wl.records)
    split = {r.record_id: "train" for r in normal} | {f"m{i}": "validation" for i in range(4)} \
        | {"m4": "train", "m5": "train", "m6": "test", "m7": "test"}
    wl.splits.write_text(json.dumps({"assignments": split}))
    wl.plan.write_text(json.dumps(plan))
    _generator(wl.translator("normal-covid").reverse_generator)
    rel = package(gen, plan, records, {"normal-covid": tmp_path / "g"}, ReleaseFolder(tmp_path / "out" / "tiny"),
                  ReleaseConfig(name="tiny", configs=("g_nc",), grid_images=2))

    cfg = AuditConfig(embedding="pixels", fidelity=False, shortlist=2, prdc_k=2, quality_repeats=2, bootstrap=20,
                      quality_features="embedding", precision="bf16")
    res = audit_in(wl.root, rel, cfg, out_dir=tmp_path / "audit")
    assert res.data_sha256 == rel.data_sha256 and res.path == tmp_path / "audit" / "audit.json"
    assert json.loads(res.path.read_text())["audited_release"]["data_sha256"] == rel.data_sha256
    assert res.data["counts"] == {"g_nc": 4} and res.summary["verdicts"]
    assert res.data["runtime"]["precision"] == "bf16"  # the inverse step ran with the audit's Runtime
    assert stamped_audit(res, rel.data_sha256) is res.data
    with pytest.raises(StampError, match="other images"):
        stamped_audit(res, "f" * 64)


def test_the_release_runs_train_generate_and_audit_on_one_runtime(monkeypatch, tmp_path):
    """`cxrsynth release` chooses the device once; each stage gets that Runtime with its own precision."""
    import cxrsynth.core.runtime as runtime
    from cxrsynth import pipeline

    class Stop(Exception):
        pass

    picked, seen = [], {}
    real_pick = runtime.pick_device
    monkeypatch.setattr(runtime, "pick_device", lambda *a, **k: picked.append(a) or real_pick("cpu"))
    monkeypatch.setattr(pipeline, "_ensure_plan", lambda *a: None)
    monkeypatch.setattr(pipeline, "train", lambda *a, **k: seen.setdefault("train", []).append(k["rt"]))
    monkeypatch.setattr(pipeline, "generate_in", lambda *a, **k: seen.setdefault("generate", []).append(k["rt"]))
    monkeypatch.setattr(pipeline, "package_in", lambda *a, **k: type("R", (), {"manifest": lambda self: {}})())

    def audit(*a, **k):
        seen.setdefault("audit", []).append(k["rt"])
        raise Stop

    monkeypatch.setattr(pipeline, "audit_in", audit)
    cfg = pipeline.resolve_pipeline(overrides=["train.precision=bf16", "generate.precision=fp32"])
    with pytest.raises(Stop):
        pipeline.release(tmp_path / "wd", tmp_path / "out", cfg)
    assert len(picked) == 1
    assert {k: [(rt.device.type, rt.precision) for rt in v] for k, v in seen.items()} == {
        "train": [("cpu", "bf16")] * 2, "generate": [("cpu", "fp32")], "audit": [("cpu", "fp32")]}


def test_generate_and_package_open_no_work_folder():
    """The stages that take artefacts name no work-folder file: only the pipeline and the CLI read the
    work folder for them (the benchmark and the audit take SplitData, read by pipeline.py: test_layout.py
    checks their modules, and test_benchmark_stage.py and test_audit_stage.py run them with no work
    folder; issue 23)."""
    from .test_structure import GRAPH

    assert {m: "cxrsynth.core.layout" in GRAPH[m] for m in ("cxrsynth.stages.generate", "cxrsynth.stages.release.package")} == \
        {"cxrsynth.stages.generate": False, "cxrsynth.stages.release.package": False}
    assert "cxrsynth.core.layout" in GRAPH["cxrsynth.pipeline"]  # the scan sees a module that does


def test_a_launched_benchmark_leaves_the_device_to_its_cells(tmp_path, monkeypatch):
    """With --launcher local|slurm the command (perhaps on a login node without the GPU) chooses no
    device: each launched cell builds its Runtime where it runs."""
    import cxrsynth.core.runtime as runtime
    from cxrsynth import pipeline
    from cxrsynth.cli import main

    picked, got = [], []
    monkeypatch.setattr(runtime, "pick_device", lambda *a, **k: picked.append(a) or torch.device("cpu"))

    def fake(*args, **kwargs):
        got.append(kwargs["rt"])
        (tmp_path / "b").mkdir(exist_ok=True)
        (tmp_path / "b" / "tables.md").write_text("| arm |\n")
        return BenchmarkResult({}, tmp_path / "b")

    monkeypatch.setattr(pipeline, "benchmark_in", fake)
    main(["-w", str(tmp_path / "wd"), "benchmark", "--launcher", "local", "--out", str(tmp_path / "b")])
    assert (picked, got) == ([], [None])


def test_a_benchmark_result_is_read_typed_and_taken_only_under_its_stamp(tmp_path):
    from cxrsynth.artifacts import BenchmarkResult
    from cxrsynth.artifacts.stamps import stamped_benchmark
    from cxrsynth.core.errors import StampError
    from cxrsynth.core.layout import BenchmarkFolder
    from cxrsynth.core.paths import write_json
    from cxrsynth.stages.release.benchmark_sections import BENCHMARK_TITLE
    from cxrsynth.stages.release.describe import benchmark_sections

    folder = BenchmarkFolder(tmp_path / "b")
    folder.root.mkdir()
    write_json(folder.results, {"kind": "cxrsynth.benchmark_results", "release_data_sha256": "a" * 64})
    folder.tables.write_text("| arm | AUROC |\n|---|---|\n| real | 0.9 |\n")
    res = BenchmarkResult.read(folder.root)
    assert (res.data_sha256, res.path, res.tables().splitlines()[-1]) == ("a" * 64, folder.results, "| real | 0.9 |")
    assert stamped_benchmark(res, "a" * 64) is res.data
    assert benchmark_sections(folder.root, "a" * 64)[BENCHMARK_TITLE] == res.tables()
    with pytest.raises(StampError, match="other images"):
        benchmark_sections(folder.root, "b" * 64)
    with pytest.raises(StampError, match="not stamped"):
        stamped_benchmark(BenchmarkResult({"kind": "cxrsynth.benchmark_results"}), "a" * 64)
