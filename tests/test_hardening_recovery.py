"""Recovery (issue 15, K3, K4, K14): checkpoints fall back, generator files are canonical, a lost
private mapping is remade.

On main: a damaged latest checkpoint stopped ``--resume`` with a hint ("delete this checkpoint folder")
that, followed, restarted the run at step 0; rotation then deleted the intact older checkpoint; the
same weights exported twice gave two files and two translator ids; a deleted private shard mapping
gave a traceback in ``release``.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from cxrsynth.core.config import resolve
from cxrsynth.core.errors import CheckpointError
from cxrsynth.stages.translate import train as train_mod
from cxrsynth.stages.translate.checkpoint import export_generator, latest_checkpoint, load_generator
from cxrsynth.stages.translate.networks import ResnetGenerator
from cxrsynth.stages.translate.train import TrainConfig, train

from .conftest import TINY, copy_workdir


def _cfg(*extra):
    return resolve(TrainConfig, overrides=TINY + ["task=normal-covid", *extra])


def _damage(ckpt):
    f = ckpt / "tensors.safetensors"
    data = bytearray(f.read_bytes())
    data[-10] ^= 0xFF
    f.write_bytes(bytes(data))


@pytest.fixture()
def spy_resume(monkeypatch):
    """The checkpoint folders ``train`` actually resumes from."""
    seen = []
    real = train_mod.load_checkpoint

    def spy(path, *args, **kwargs):
        seen.append(path.name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(train_mod, "load_checkpoint", spy)
    return seen


@pytest.mark.parametrize("how", ["damaged", "deleted_as_the_old_hint_said", "pointer_lost"])
def test_resume_falls_back_to_the_newest_intact_checkpoint(planned_workdir, tmp_path, spy_resume, capsys, how):
    run = tmp_path / "r"
    train(planned_workdir, _cfg("max_steps=4"), out_dir=run)  # checkpoints at steps 2 and 4
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("step-*")) == ["step-00000002", "step-00000004"]
    if how == "damaged":
        _damage(ckpts / "step-00000004")
    elif how == "deleted_as_the_old_hint_said":
        shutil.rmtree(ckpts / "step-00000004")
    else:
        (ckpts / "latest.json").unlink()
    rows_before = (run / "losses.csv").read_text().splitlines()[:3]  # header, steps 1 and 2
    rep = train(planned_workdir, _cfg("max_steps=6"), resume=True, out_dir=run)
    expected = "step-00000004" if how == "pointer_lost" else "step-00000002"
    assert spy_resume == [expected] and rep["steps"] == 6
    err = capsys.readouterr().err
    if how != "pointer_lost":
        assert f"resuming from {ckpts / 'step-00000002'} instead" in err
    # the log kept the rows it had up to the checkpoint: the run was not restarted at step 0
    assert (run / "losses.csv").read_text().splitlines()[:3] == rows_before
    assert [json.loads((p / "state.json").read_text())["step"] for p in sorted(ckpts.glob("step-*"))] == [4, 6]


def test_rotation_never_deletes_a_checkpoint_newer_than_the_one_resumed(planned_workdir, tmp_path, spy_resume):
    run = tmp_path / "r"
    train(planned_workdir, _cfg("max_steps=6", "keep_checkpoints=3"), out_dir=run)
    ckpts = run / "checkpoints"
    _damage(ckpts / "step-00000004")
    _damage(ckpts / "step-00000006")
    train(planned_workdir, _cfg("max_steps=3", "keep_checkpoints=2"), resume=True, out_dir=run)
    assert spy_resume == ["step-00000002"]
    # the intact step 2 and the new step 3 are kept (main kept the two newest names: the damaged ones)
    assert sorted(p.name for p in ckpts.glob("step-*")) == ["step-00000002", "step-00000003", "step-00000004",
                                                           "step-00000006"]
    # the next resume skips both damaged folders again
    assert latest_checkpoint(run).name == "step-00000003"


def test_only_damaged_checkpoints_is_a_clear_error(planned_workdir, tmp_path):
    run = tmp_path / "r"
    train(planned_workdir, _cfg("max_steps=2"), out_dir=run)
    _damage(run / "checkpoints" / "step-00000002")
    with pytest.raises(CheckpointError, match="no intact checkpoint in this run: step-00000002 "
                                              r"\(its tensors do not match their checksum\)"):
        train(planned_workdir, _cfg("max_steps=4"), resume=True, out_dir=run)


ARCH = {"name": "resnet_generator", "in_channels": 1, "out_channels": 1, "base": 4, "blocks": 1, "size": 64}


def test_identical_weights_give_byte_identical_generator_files(tmp_path):
    """safetensors writes its metadata in hash-map order, which changes from call to call (about half
    the calls differ with two keys): twelve exports of one network must give one file."""
    torch.manual_seed(0)
    net = ResnetGenerator(1, 1, 4, 1)
    files = set()
    for i in range(12):
        info = export_generator(net, tmp_path / f"g{i}.safetensors", ARCH)
        files.add((tmp_path / f"g{i}.safetensors").read_bytes())
        assert info["sha256"] == export_generator(net, tmp_path / "g.safetensors", ARCH)["sha256"]
    assert len(files) == 1
    loaded, info = load_generator(tmp_path / "g0.safetensors")
    assert info["arch"] == ARCH
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), net.state_dict().values()))


def test_translator_id_is_a_hash_of_the_tensors(tmp_path):
    """The same weights written by another tool, with other metadata, get the same translator id."""
    from safetensors.torch import save_file

    from cxrsynth.stages.translate.checkpoint import tensors_sha256, translator_id

    torch.manual_seed(1)
    net = ResnetGenerator(1, 1, 4, 1)
    info = export_generator(net, tmp_path / "a.safetensors", ARCH)
    sd = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(sd, str(tmp_path / "b.safetensors"), metadata={"arch": json.dumps(ARCH), "tool": "elsewhere"})
    _, other = load_generator(tmp_path / "b.safetensors")
    assert other["sha256"] != info["sha256"]  # another file ...
    assert translator_id("normal-covid", other) == translator_id("normal-covid", info)  # ... the same weights
    assert translator_id("normal-covid", info) == f"normal-covid-{tensors_sha256(sd)[:12]}"
    with torch.no_grad():
        next(net.parameters()).add_(1e-3)
    assert export_generator(net, tmp_path / "c.safetensors", ARCH)["tensors_sha256"] != info["tensors_sha256"]


def test_train_report_names_the_translator_by_its_tensors(trained):
    from cxrsynth.stages.translate.checkpoint import translator_id

    run = trained / "translators" / "normal-covid"
    rep = json.loads((run / "train_report.json").read_text())
    _, info = load_generator(run / "generator.safetensors")
    assert rep["translator_id"] == translator_id("normal-covid", info)


def test_lost_private_mapping_is_remade_by_release(built, tmp_path):
    from cxrsynth.pipeline import PipelineConfig, release
    from cxrsynth.stages.release.verify import verify

    from .test_release import GEN

    wd = copy_workdir(built[0], tmp_path / "wd", keep_generated=True)
    lost = wd / "generated" / "private" / "g_nc" / "shard-00001.jsonl"
    before = lost.read_text()
    lost.unlink()
    manifest = release(wd, tmp_path / "out", PipelineConfig(generate=GEN), audit=False)
    assert lost.read_text() == before  # the shard was redone: same ids, same sources
    assert manifest["counts"] == built[2]["counts"]
    assert verify(tmp_path / "out" / "covid-cxr-synth") == []
