"""``compile: auto|on|off``: compiled output matches eager, files and checkpoints do not depend on it, and a
missing compiler falls back to eager. One test compiles with inductor (a tiny generator); training runs
through dynamo with the aot_eager backend; the rest stub torch.compile."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cxrsynth.core.config import resolve
from cxrsynth.core.errors import ConfigError
from cxrsynth.artifacts import GeneratedSet
from cxrsynth.stages.generate import GenerateConfig
from cxrsynth.pipeline import generate_in
from cxrsynth.stages.translate import compile as C
from cxrsynth.stages.translate.checkpoint import export_generator, latest_checkpoint, load_generator
from cxrsynth.stages.translate.networks import ResnetGenerator
from cxrsynth.stages.translate.train import TrainConfig, train

from .conftest import TINY, copy_workdir

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)


def test_option_values_and_where_auto_compiles():
    assert resolve(TrainConfig, overrides=["compile=on"]).compile == "on"  # YAML reads `on` as true
    assert resolve(GenerateConfig, overrides=["compile=off"]).compile == "off"
    assert GenerateConfig().compile == "auto" and TrainConfig().compile == "auto"
    with pytest.raises(ConfigError, match="compile"):
        resolve(GenerateConfig, overrides=["compile=sometimes"])
    assert C.wanted("auto", CPU, "generate", C.AUTO_MIN_IMAGES)
    assert not C.wanted("auto", CPU, "generate", C.AUTO_MIN_IMAGES - 1)  # the compile would not pay
    assert not C.wanted("auto", CUDA, "generate", 10 ** 6) and not C.wanted("auto", CPU, "train")  # unmeasured
    assert C.wanted("on", CPU, "train") and not C.wanted("off", CPU, "generate", 10 ** 6)


def test_no_compiler_or_a_failed_compile_falls_back_to_eager(monkeypatch, capsys):
    x = torch.rand(2, 1, 32, 32)
    net = ResnetGenerator(1, 1, 4, 1).eval()
    with torch.no_grad():
        ref = net(x)
    monkeypatch.setattr(C, "_warned", False)
    monkeypatch.setattr(C, "compiler_missing", lambda device: "no C++ compiler on PATH")
    assert C.maybe_compile(net, "on", CPU, "generate") is net and not C.is_compiled(net)
    from torch._inductor.exc import CppCompileError

    def broken(fn, **kw):
        def call(*a, **k):
            raise CppCompileError(["c++"], "boom")
        return call

    monkeypatch.setattr(C, "compiler_missing", lambda device: None)
    monkeypatch.setattr(C.torch, "compile", broken)
    C.maybe_compile(net, "on", CPU, "generate")
    assert C.is_compiled(net)
    with torch.no_grad():
        assert torch.equal(net(x), ref) and torch.equal(net(x), ref)
    assert not C.is_compiled(net) and "forward" not in vars(net)
    err = capsys.readouterr().err
    assert err.count("torch.compile unavailable") == 1 and err.count("\n") == 1


def test_compiled_generation_matches_eager_and_files_do_not_depend_on_it(trained, tmp_path):
    """6 images at batch 4: the last batch (2) is padded to reuse the compiled graph."""
    wd = copy_workdir(trained, tmp_path / "wd")
    base = ["limit=6", "shard_size=6", "batch_size=4", "workers=0", "configs=[g_nc]"]
    pngs = {}
    for mode in ("off", "on"):
        rep = generate_in(wd, resolve(GenerateConfig, overrides=base + [f"compile={mode}"]))
        assert rep["configs"]["g_nc"]["generated"] == 6 and rep["config"]["compile"] == mode
        assert rep["configs"]["g_nc"]["compiled"] is (mode == "on")
        pngs[mode] = {p["id"]: np.asarray(Image.open(wd / "generated" / p["file"])).astype(int)
                      for p in GeneratedSet(wd / "generated").provenance("g_nc")}
        (wd / "generated" / "g_nc" / "shard-00000.done.json").unlink()  # make the next run redo the shard
    assert pngs["on"].keys() == pngs["off"].keys() and len(pngs["on"]) == 6
    diff = np.stack([np.abs(pngs["on"][k] - pngs["off"][k]) for k in pngs["on"]])
    assert diff.max() <= 8 and diff.mean() < 1.0  # bf16 tolerance: a few grey levels at most

    # the exported file and the translator id are the same bytes whether the module was compiled or not
    gpath = wd / "translators" / "normal-covid" / "generator.safetensors"
    net, info = load_generator(gpath)
    C.maybe_compile(net, "on", CPU, "generate", fixed_batch=True)
    with torch.inference_mode():
        net(torch.zeros(4, 1, 64, 64))
    assert C.is_compiled(net) and not any("_orig_mod" in k for k in net.state_dict())
    again = export_generator(net, tmp_path / "g.safetensors", info["arch"])
    assert (tmp_path / "g.safetensors").read_bytes() == gpath.read_bytes()
    assert again["tensors_sha256"] == info["tensors_sha256"]


def test_a_checkpoint_written_with_compile_on_resumes_with_compile_off(planned_workdir, tmp_path, monkeypatch):
    """Dynamo traces the four networks forward and backward (AOTAutograd), but without inductor's C++
    build, which costs minutes on a 2-core machine for a training step; bench_speed.py times the real one."""
    import functools

    monkeypatch.setattr(C.torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    run = tmp_path / "run"
    on = train(planned_workdir, resolve(TrainConfig, overrides=TINY + ["max_steps=2", "compile=on"]), out_dir=run)
    assert all(np.isfinite(v) for v in on["last_losses"].values())
    keys = set(load_file(str(latest_checkpoint(run) / "tensors.safetensors")))
    assert not any("_orig_mod" in k for k in keys)
    assert json.loads((run / "config.json").read_text())["compile"] == "on"
    off = train(planned_workdir, resolve(TrainConfig, overrides=TINY + ["max_steps=3", "compile=off"]), resume=True,
                out_dir=run)
    assert off["steps"] == 3
    eager_run = tmp_path / "eager"
    train(planned_workdir, resolve(TrainConfig, overrides=TINY + ["max_steps=1", "compile=off"]), out_dir=eager_run)
    assert set(load_file(str(latest_checkpoint(eager_run) / "tensors.safetensors"))) == keys


def test_auto_compiles_training_only_where_compiled_measured_faster(tmp_path, monkeypatch):
    """``compile: auto`` for training reads the speed record bench_speed.py writes: compiled where this
    workload measured faster compiled on this machine, eager where it measured slower or never was."""
    from cxrsynth.core.runtime import Runtime
    from cxrsynth.stages.translate.compile_choice import RECORD_ENV, Workload, compiled_is_faster, record
    from cxrsynth.stages.translate.train import resolve_train_config, train_workload

    monkeypatch.setenv(RECORD_ENV, str(tmp_path / "speed.json"))
    cfg = resolve_train_config(overrides=["preset=paper", "size=128"])
    work = train_workload(cfg, Runtime.resolve("cpu", "fp32", False))
    assert work == Workload("paper", 128, 16, "fp32", False)
    assert compiled_is_faster(CPU, work) is None and not C.wanted("auto", CPU, "train", workload=work)
    record(CPU, work, eager_s=4.0, compiled_s=5.0)
    assert compiled_is_faster(CPU, work) is False and not C.wanted("auto", CPU, "train", workload=work)
    other = Workload("paper", 256, 16, "fp32", False)
    record(CPU, other, eager_s=21.0, compiled_s=18.0)  # another size, in the same file
    assert C.wanted("auto", CPU, "train", workload=other) and not C.wanted("auto", CPU, "train", workload=work)
    assert not C.wanted("off", CPU, "train", workload=other) and C.wanted("on", CPU, "train", workload=work)
    saved = json.loads((tmp_path / "speed.json").read_text())
    assert [len(v) for v in saved.values()] == [2]  # one machine, two workloads
    # another machine's (or torch's) measurement does not decide here
    (tmp_path / "speed.json").write_text(json.dumps({"Other CPU|cpu|1.0": {other.key(): {"eager_s": 2, "compiled_s": 1}}}))
    assert compiled_is_faster(CPU, other) is None
    (tmp_path / "speed.json").write_text("not json")  # unreadable: as if nothing were measured
    assert not C.wanted("auto", CPU, "train", workload=other)

    calls = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: calls.append(kw) or fn)
    monkeypatch.setattr(C, "compiler_missing", lambda device: None)
    record(CPU, other, eager_s=21.0, compiled_s=18.0)
    net = ResnetGenerator(1, 1, 4, 1)
    assert C.maybe_compile(net, "auto", CPU, "train", workload=other) is net and C.is_compiled(net) and len(calls) == 1
    net2 = ResnetGenerator(1, 1, 4, 1)
    C.maybe_compile(net2, "auto", CPU, "train", workload=work)
    assert not C.is_compiled(net2) and len(calls) == 1
