"""Artefacts that cross stage boundaries: stamps that keep foreign results out of a card, and the
benchmark's translator cache keyed by what its images were made from."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from cxrsynth.artifacts import GeneratedSet, ReleaseFolder, SplitData
from cxrsynth.core.errors import StampError
from cxrsynth.core.paths import write_json
from cxrsynth.stages.release.describe import describe


def _copy_release(built, tmp_path) -> ReleaseFolder:
    src = ReleaseFolder(built[1])
    dst = ReleaseFolder(tmp_path / src.name)
    shutil.copytree(src.root, dst.root)
    shutil.copytree(src.private, dst.private)
    return dst


def _bench_folder(path, stamp, table="| arm | AUROC |\n|---|---|\n| real | 0.9 |"):
    path.mkdir(parents=True)
    results = {"kind": "cxrsynth.benchmark_results"}
    if stamp is not ...:
        results["release_data_sha256"] = stamp
    write_json(path / "results.json", results)
    (path / "tables.md").write_text(table + "\n")
    return path


def test_card_takes_only_a_benchmark_stamped_with_its_release(built, tmp_path):
    from cxrsynth.stages.release.verify import verify as verify_release

    rel = _copy_release(built, tmp_path)
    manifest = rel.manifest()
    foreign = _bench_folder(tmp_path / "foreign", "0" * 64, "| FOREIGN TABLE |")
    unstamped = _bench_folder(tmp_path / "unstamped", ..., "| UNSTAMPED TABLE |")
    with pytest.raises(StampError, match="other images"):
        describe(rel, manifest, foreign)
    with pytest.raises(StampError, match="not stamped"):
        describe(rel, manifest, unstamped)
    card = rel.card.read_text()
    assert "FOREIGN" not in card and "UNSTAMPED" not in card  # refused before anything was written
    mine = _bench_folder(tmp_path / "mine", manifest["data_sha256"], "| real | 0.987 |")
    describe(rel, manifest, mine)
    assert "| real | 0.987 |" in rel.card.read_text()
    assert verify_release(rel.root) == []


def test_card_takes_only_an_audit_stamped_with_its_release(built, tmp_path):
    """``describe`` is the one renderer and checks the audit's stamp as it checks the benchmark's: an
    audit of other images is refused before anything is written, its own audit reaches manifest and card."""
    from cxrsynth.artifacts import AuditResult
    from cxrsynth.stages.release.verify import verify as verify_release

    rel = _copy_release(built, tmp_path)
    manifest = rel.manifest()
    before = {p.name: p.read_bytes() for p in rel.root.iterdir() if p.is_file()}

    def audit(stamp, text):
        return AuditResult({"audited_release": {"data_sha256": stamp}, "summary": {"text": text, "verdicts": []}})

    with pytest.raises(StampError, match="other images"):
        describe(rel, manifest, audit=audit("0" * 64, "FOREIGN AUDIT"))
    assert {p.name: p.read_bytes() for p in rel.root.iterdir() if p.is_file()} == before
    written = describe(rel, manifest, audit=audit(manifest["data_sha256"], "This very release was audited."))
    assert written["audit"]["text"] == "This very release was audited." and manifest["audit"] is None
    assert rel.manifest()["audit"] == written["audit"] and "This very release was audited." in rel.card.read_text()
    assert verify_release(rel.root) == []


def test_release_pipeline_attaches_the_work_folders_benchmark_only_when_stamped(tmp_path):
    from cxrsynth.stages.release.describe import stamped_benchmark_or_none

    _bench_folder(tmp_path / "b", "a" * 64)
    assert stamped_benchmark_or_none(tmp_path / "b", "a" * 64) == tmp_path / "b"
    assert stamped_benchmark_or_none(tmp_path / "b", "b" * 64) is None
    assert stamped_benchmark_or_none(tmp_path / "missing", "a" * 64) is None


def _perturbed_run(src_run, dst_run):
    """A copy of a translator run whose exported generator has other weights (as a retrained one would)."""
    from safetensors.torch import load_file

    from cxrsynth.stages.translate.checkpoint import export_generator, load_generator

    shutil.copytree(src_run, dst_run)
    net, info = load_generator(dst_run / "generator.safetensors")
    sd = load_file(str(dst_run / "generator.safetensors"))
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.add_(0.05 * torch.sign(p) + 0.01)
    assert any(not torch.equal(sd[k], v) for k, v in net.state_dict().items() if k in sd)
    export_generator(net, dst_run / "generator.safetensors", info["arch"])
    return dst_run


def test_new_translator_files_give_a_new_release_not_the_cached_one(trained, tmp_path):
    """The bug: `benchmark --translator` kept the first release (and its data_sha256) when the translator
    files changed, so old numbers appeared under new translators."""
    from cxrsynth.stages.benchmark.run import synthetic_from_translators
    from cxrsynth.core.layout import WorkLayout

    from .conftest import copy_workdir

    wd = copy_workdir(trained, tmp_path / "wd")
    lay = WorkLayout(wd)
    first = {t: str(lay.translator(t).root) for t in ("normal-covid", "pneumonia-covid")}
    out = tmp_path / "bench"
    data = SplitData.read(wd)  # what pipeline.benchmark_in hands the stage
    rel_a = ReleaseFolder(synthetic_from_translators(data, out, first, limit=8))
    sha_a = rel_a.data_sha256
    assert rel_a.manifest()["counts"] == {"g_nc": 8, "g_pc": 8, "all": 16}
    again = ReleaseFolder(synthetic_from_translators(data, out, first, limit=8))
    assert again.root == rel_a.root and again.data_sha256 == sha_a  # same translators: the cache is reused
    second = dict(first, **{"normal-covid": str(_perturbed_run(lay.translator("normal-covid").root,
                                                                tmp_path / "retrained-nc"))})
    rel_b = ReleaseFolder(synthetic_from_translators(data, out, second, limit=8))
    assert rel_b.root != rel_a.root and rel_b.data_sha256 != sha_a
    gnc_a = {r["translator_id"] for r in rel_a.provenance() if r["config"] == "g_nc"}
    gnc_b = {r["translator_id"] for r in rel_b.provenance() if r["config"] == "g_nc"}
    gpc_a = [r["png_sha256"] for r in rel_a.provenance() if r["config"] == "g_pc"]
    gpc_b = [r["png_sha256"] for r in rel_b.provenance() if r["config"] == "g_pc"]
    assert gnc_a.isdisjoint(gnc_b)  # the new g_nc images name the new translator
    assert gpc_a == gpc_b  # the unchanged translator's images are the same


def test_generated_set_fingerprint_follows_the_shards(trained, tmp_path):
    from cxrsynth.core.config import resolve
    from cxrsynth.stages.generate import GenerateConfig
    from cxrsynth.pipeline import generate_in

    from .conftest import copy_workdir

    wd = copy_workdir(trained, tmp_path / "wd")
    cfg = resolve(GenerateConfig, overrides=["limit=6", "shard_size=3", "configs=g_nc", "workers=0"])
    generate_in(wd, cfg)
    gen = GeneratedSet(wd / "generated")
    fp = gen.fingerprint(("g_nc",))
    assert gen.current_shards("g_nc") == ["shard-00000", "shard-00001"]
    per_config, mapping = gen.collect(("g_nc",))
    assert len(per_config["g_nc"]) == 6 and [m["id"] for m in mapping] == [p["id"] for p in per_config["g_nc"]]
    marker = gen.marker("g_nc", "shard-00001")
    done = json.loads(marker.read_text())
    marker.write_text(json.dumps(dict(done, key="another translator")))
    assert gen.fingerprint(("g_nc",)) != fp
