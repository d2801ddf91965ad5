"""No file chooses code to run (issue 24, probes N10, N11, N12, U5 and the U1 note).

On main a classifier ``.safetensors`` whose metadata said ``{"arch": "os:abort"}`` made the audit import
``os`` and call ``abort`` before any weight was read, given as ``--embedding classifier:PATH`` (N10) or
just planted where the default audit looks by itself (N11). Here ``os.abort`` is replaced by a recorder:
on main it is called; now nothing is, and the refusal (or the skip, for the default audit) is one line.
"""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import save_file

from cxrsynth.core.errors import CheckpointError, ConfigError

from .conftest import cli_error_line

pytestmark = pytest.mark.no_data


@pytest.fixture
def abort_calls(monkeypatch):
    """``os.abort`` replaced by a recorder: a call shows up in the list instead of killing the tests."""
    calls = []
    monkeypatch.setattr(os, "abort", lambda *a: calls.append(a))
    return calls


def _plant(path, arch="os:abort"):
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"head.weight": torch.zeros(2, 4), "head.bias": torch.zeros(2)}, str(path), metadata={"arch": arch})
    return path


def _work_folder(tmp_path):
    """A work folder with a split and a release stub: enough for the audit to reach its embeddings."""
    from cxrsynth.data.records import write_records

    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "splits.json").write_text(json.dumps({"assignment_sha256": "a" * 64}))
    write_records([], wd / "records.parquet")  # no records: the audit reads them before its embeddings
    rel = tmp_path / "rel" / "covid-cxr-synth"
    (rel.parent / "covid-cxr-synth.private").mkdir(parents=True)
    rel.mkdir()
    (rel.parent / "covid-cxr-synth.private" / "mapping.jsonl").write_text("")
    return wd, rel


def test_classifier_embedding_file_naming_code_is_refused_in_one_line(tmp_path, capsys, abort_calls):
    wd, rel = _work_folder(tmp_path)
    evil = _plant(tmp_path / "arch_abort.safetensors")
    line = cli_error_line(capsys, ["-w", str(wd), "audit", str(rel), "--embedding", f"classifier:{evil}",
                                   "--out", str(tmp_path / "a")])
    assert abort_calls == []
    assert "may name only a torchvision or timm: architecture" in line and "'os:abort'" in line and str(evil) in line
    # the same for any package.module:factory, even an importable harmless one
    _plant(evil, "os:getpid")
    with pytest.raises(CheckpointError, match="never code to run"):
        from cxrsynth.measure.classifiers import build_from_file

        build_from_file(evil)


def _own_of(wd):
    """What ``pipeline.audit_in`` hands the audit for ``--embedding auto``: the work folder's benchmark
    folder and its split's assignment sha256."""
    from cxrsynth.artifacts import SplitData
    from cxrsynth.core.layout import WorkLayout

    return WorkLayout(wd).benchmark_files, SplitData.read(wd).assignment_sha256


def test_planted_classifier_is_skipped_by_the_default_audit(tmp_path, capsys, abort_calls):
    from cxrsynth.stages.audit.run import embedding_specs

    wd, _ = _work_folder(tmp_path)
    planted = _plant(wd / "benchmark" / "runs" / "normal-covid" / "real" / "seed-0" / "model.safetensors")
    specs = embedding_specs("auto", *_own_of(wd))
    assert specs == {"pixels": "pixels"} and abort_calls == []
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(planted) in err[0] and "no readable benchmark/inputs.json" in err[0], err


def _own_run(wd, arch="mobilenet_v3_small"):
    """What `cxrsynth benchmark` leaves in WORKDIR/benchmark for one real-arm seed-0 cell (a small model)."""
    from cxrsynth.stages.benchmark.run import Cell, _save_model, cell_key
    from cxrsynth.measure.classifiers import build

    bench = wd / "benchmark"
    bench.mkdir(exist_ok=True)
    inputs = {"config": {"model": arch}, "release_data_sha256": None, "split_assignment_sha256": "a" * 64,
              "code_version": "x"}
    (bench / "inputs.json").write_text(json.dumps(inputs))
    cell = bench / "runs" / "normal-covid" / "real" / "seed-0"
    sha = _save_model(build(arch), cell / "model.safetensors", arch)
    result = {"cell_key": cell_key(inputs, Cell("normal-covid", "real", 0)), "model_sha256": sha}
    (cell / "result.json").write_text(json.dumps(result))
    return cell, inputs, result


def test_default_audit_takes_only_its_own_benchmark_classifier(tmp_path, capsys, abort_calls):
    from cxrsynth.stages.audit.embed import make_embedding
    from cxrsynth.stages.audit.run import embedding_specs
    from cxrsynth.core.paths import sha256_file

    wd, _ = _work_folder(tmp_path)
    cell, inputs, result = _own_run(wd)
    model = cell / "model.safetensors"
    assert result["model_sha256"] == sha256_file(model)  # what the benchmark records is the file's sha256
    specs = embedding_specs("auto", *_own_of(wd))
    assert specs == {"pixels": "pixels", "classifier": f"classifier:{model}"} and capsys.readouterr().err == ""
    assert make_embedding(specs["classifier"]).num_features == 576

    def skipped() -> str:
        assert embedding_specs("auto", *_own_of(wd)) == {"pixels": "pixels"}
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(model) in err[0], err
        return err[0]

    good = model.read_bytes()
    model.write_bytes(good[:-4] + b"\0\0\0\0")  # another file in its place
    assert "sha256 differs" in skipped()
    model.write_bytes(good)
    (cell / "result.json").write_text(json.dumps(result | {"cell_key": "0" * 64}))
    assert "does not carry the key" in skipped()
    (cell / "result.json").write_text(json.dumps(result))
    (wd / "splits.json").write_text(json.dumps({"assignment_sha256": "b" * 64}))  # another split since
    assert "not run on this work folder's split" in skipped()
    (wd / "splits.json").write_text(json.dumps({"assignment_sha256": "a" * 64}))
    (cell / "result.json").write_text("[1, 2]")
    assert "no readable result.json" in skipped()
    # a forger who writes a matching inputs.json, result.json and sha256 still cannot choose code: the
    # architecture of a file may only be torchvision or timm:
    inputs["config"]["model"] = "os:abort"
    (wd / "benchmark" / "inputs.json").write_text(json.dumps(inputs))
    from cxrsynth.stages.benchmark.run import Cell, cell_key
    from cxrsynth.core.paths import sha256_file

    _plant(model)
    (cell / "result.json").write_text(json.dumps({"cell_key": cell_key(inputs, Cell("normal-covid", "real", 0)),
                                                  "model_sha256": sha256_file(model)}))
    assert "never code to run" in skipped() and abort_calls == []


def test_pickle_renamed_safetensors_is_one_line(tmp_path, capsys):
    """U5: a pickle renamed .safetensors as the audit's classifier; and U1's note: no weights_only advice."""
    wd, rel = _work_folder(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.getpid, ())

    torch.save({"a": Evil()}, tmp_path / "evil.pt")
    (tmp_path / "evil.safetensors").write_bytes((tmp_path / "evil.pt").read_bytes())
    for name in ("evil.safetensors", "evil.pt"):
        line = cli_error_line(capsys, ["-w", str(wd), "audit", str(rel), "--embedding",
                                       f"classifier:{tmp_path / name}", "--out", str(tmp_path / "a")])
        assert "not a readable safetensors file" in line and name in line and "weights_only" not in line
    from cxrsynth.measure.classifiers import load_state_file

    with pytest.raises(CheckpointError) as err:  # benchmark --init and --eval-only read checkpoints here
        load_state_file(tmp_path / "evil.pt")
    text = err.value.one_line()
    assert "refused unread" in text and "weights_only" not in text and "GLOBAL posix.getpid" in text


def test_model_factory_must_be_callable(capsys):
    """N12: --model names code; what it names is checked to be a function before it is called."""
    from cxrsynth.measure.classifiers import build

    with pytest.raises(ConfigError, match=r"the model factory is not a function \(os:sep\); sep is a str"):
        build("os:sep")


def test_help_says_that_a_factory_runs_code(capsys):
    from click.testing import CliRunner

    from cxrsynth.cli import cli

    bench = CliRunner().invoke(cli, ["benchmark", "--help"]).output
    assert "imports that module and runs that function" in " ".join(bench.split())
    audit = " ".join(CliRunner().invoke(cli, ["audit", "--help"]).output.split())
    assert "a file never chooses code to run" in audit and "own benchmark classifier" in audit
