"""The audit as a stage: a release of four tiny translations, its records, split and plan (made here in
tmp_path by test_benchmark_stage's builder) and a translator run in; an :class:`AuditResult` stamped
with the release out, and no work folder opened. ``pipeline.audit_in`` is the one reader of a work
folder for it."""

from __future__ import annotations

import copy
import csv

import pytest

from cxrsynth.artifacts import AuditResult, Plan, Records, SplitData, Splits, TranslatorRun
from cxrsynth.core.layout import TranslatorFolder, WorkLayout
from cxrsynth.core.runtime import Runtime
from cxrsynth.stages.audit.run import AuditConfig, audit

from .test_benchmark_stage import _artefacts
from .test_stages import _generator

pytestmark = pytest.mark.no_data

#: small enough for seconds on 2 cores; the fidelity section is off where it is not under test
SMALL = AuditConfig(embedding="pixels", fidelity=False, shortlist=2, prdc_k=2, quality_repeats=2, bootstrap=20,
                    quality_features="embedding")


@pytest.fixture
def made(tmp_path, monkeypatch):
    """The release, its SplitData (the translators learnt from two of the train-split COVID-19 images)
    and the translator run with a private reverse generator; then every work-folder reader refuses."""
    records, splits, plan, release = _artefacts(tmp_path)
    plan = copy.deepcopy(plan)
    plan["tasks"]["normal-covid"]["translator_train"]["covid"] = ["m0", "m1"]
    _generator(TranslatorFolder(tmp_path / "run").reverse_generator)
    run = TranslatorRun.read(tmp_path / "run")

    def no_folder(*args, **kwargs):
        raise AssertionError("the audit stage opened a work folder")

    for cls in (SplitData, Records, Splits, Plan, TranslatorRun):
        monkeypatch.setattr(cls, "read", classmethod(no_folder))
    monkeypatch.chdir(tmp_path)
    return release, SplitData(records, splits, plan), run


def test_the_audit_stage_takes_artefacts_and_returns_a_result_stamped_with_the_release(made, tmp_path):
    release, data, run = made
    out = tmp_path / "audit"
    res = audit(release, data, SMALL, Runtime.resolve("cpu", "bf16"), out, {"normal-covid": run})

    assert isinstance(res, AuditResult) and res.path == out / "audit.json"
    assert res.data_sha256 == release.data_sha256  # stamped with the release's images
    assert AuditResult.read(res.path).data_sha256 == release.data_sha256  # and so is audit.json
    assert res.data["counts"] == {"g_nc": 4}
    for section in ("privacy", "quality", "pools", "summary", "thresholds", "timing"):
        assert res.data[section], section
    assert "fidelity" not in res.data  # off
    assert res.summary["verdicts"] and res.summary["text"].startswith("Audited 4 synthetic images")
    pools = res.data["pools"]
    assert (pools["train"], pools["covid_translator_train"]) == (7, 2)  # 4 sources + 3 COVID-19; 2 from the plan
    assert pools["heldout_reference"]["g_nc"]["label"] == "normal" and pools["heldout"] > 0
    # the inverse step ran the run's reverse generator, on the Runtime given
    assert res.data["sampled"]["g_nc"]["inverse"] == 4 and res.data["runtime"] == {"device": "cpu", "precision": "bf16"}
    assert next(iter(res.data["privacy"]["overall"].values()))["inverse"]["n"] == 4
    with open(out / "per_image.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["id"] for r in rows) == sorted(m["id"] for m in release.mapping())
    assert "Audit: privacy and quality" in (out / "report_section.html").read_text()


def test_without_a_reverse_generator_the_inverse_test_is_left_out(made, tmp_path):
    release, data, _ = made
    res = audit(release, data, SMALL, None, tmp_path / "a", {})
    assert res.data_sha256 == release.data_sha256
    assert res.data["sampled"]["g_nc"]["inverse"] == 0
    inverse = next(iter(res.data["privacy"]["overall"].values()))["inverse"]
    assert inverse["n"] == 0 and inverse["note"] == "reverse generator unavailable"
    assert res.data["runtime"]["precision"] == "fp32"  # no Runtime given: the config's


def test_the_fidelity_section_keeps_its_encoder_where_it_is_told(made, tmp_path):
    from cxrsynth.core.paths import sha256_file

    release, data, run = made
    cache = tmp_path / "cache" / "enc.safetensors"
    cfg = AuditConfig(**{**SMALL.__dict__, "fidelity": True, "fidelity_encoder_epochs": 1})
    res = audit(release, data, cfg, None, tmp_path / "a", {"normal-covid": run}, encoder_cache=cache)
    fid = res.data["fidelity"]
    assert fid["overall"]["n"]["synthetic"] == 4 and set(fid["per_config"]) == {"g_nc"}
    assert fid["feature_space_notes"]["cxr_encoder"]["sha256"] == sha256_file(cache)
    assert cache.with_suffix(".json").is_file() and res.summary["fidelity"]


def test_an_audit_needs_the_plan_and_says_so(made, tmp_path):
    from cxrsynth.core.errors import ConfigError

    release, data, run = made
    with pytest.raises(ConfigError, match="needs the release plan"):
        audit(release, SplitData(data.records, data.splits), SMALL, None, tmp_path / "a", {"normal-covid": run})
    with pytest.raises(TypeError, match="pipeline.audit_in"):  # the old call, audit(release, workdir, cfg)
        audit(release, tmp_path, SMALL, None, tmp_path / "a")


def test_audit_in_reads_the_work_folder_and_hands_the_stage_its_artefacts(tmp_path, monkeypatch):
    """The CLI and the release go through ``pipeline.audit_in``: it reads the records, split and plan,
    finds the translator runs (the work folder's, or those given), the encoder cache and the benchmark
    folder, and calls the stage with them."""
    import cxrsynth.stages.audit.run as stage
    from cxrsynth import pipeline
    from cxrsynth.artifacts import ReleaseFolder

    from .test_benchmark_stage import _split_manifest
    from .test_stages import _records

    layout = WorkLayout(tmp_path / "wd")
    records = _records(tmp_path / "src", 3)
    SplitData(records, _split_manifest({"r0": "train"}), {"tasks": {}}).write(layout.root)
    _generator(layout.translator("normal-covid").reverse_generator)
    given = _generator(tmp_path / "elsewhere" / "generator.safetensors")
    seen = {}
    monkeypatch.setattr(stage, "audit", lambda *a, **k: seen.update(args=a, kwargs=k) or AuditResult({}))

    pipeline.audit_in(layout.root, tmp_path / "rel" / "x", SMALL, private=tmp_path / "priv")
    release, data, cfg = seen["args"]
    k = seen["kwargs"]
    assert release == ReleaseFolder(tmp_path / "rel" / "x", tmp_path / "priv") and cfg is SMALL
    assert [r.record_id for r in data.records] == ["r0", "r1", "r2"] and data.assign == {"r0": "train"}
    assert data.plan == {"tasks": {}}
    assert k["translators"]["normal-covid"].reverse_generator == layout.translator("normal-covid").reverse_generator
    assert k["translators"]["pneumonia-covid"].reverse_generator is None  # not trained: no inverse test for it
    assert (k["out_dir"], k["encoder_cache"], k["benchmark"], k["home"]) == (
        layout.audit, layout.cxr_encoder, layout.benchmark_files, layout.root)

    pipeline.audit_in(layout.root, tmp_path / "rel" / "x", SMALL, out_dir=tmp_path / "o",
                      translators={"normal-covid": given})
    k = seen["kwargs"]
    assert k["out_dir"] == tmp_path / "o"
    assert k["translators"]["normal-covid"].generator == given  # a --translator file: its own run folder
    assert k["translators"]["normal-covid"].reverse_generator is None
