"""Training on the sample data: runs, logs, checkpoints, resumes exactly after a kill, and runs under DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from cxrsynth.core.config import resolve
from cxrsynth.core.errors import CheckpointError, ConfigError
from cxrsynth.stages.translate.checkpoint import latest_checkpoint, load_generator
from cxrsynth.stages.translate.train import TrainConfig, train

from .conftest import TINY


def _cfg(*extra):
    return resolve(TrainConfig, overrides=TINY + list(extra))


def _tensors(run):
    ckpt = latest_checkpoint(run)
    t = load_file(str(ckpt / "tensors.safetensors"))
    t.pop("rng.torch")  # torch's global RNG: nothing in the loop draws from it
    return t


def test_short_run_writes_everything(planned_workdir, tmp_path):
    run = tmp_path / "run"
    rep = train(planned_workdir, _cfg("max_steps=5"), out_dir=run)
    assert rep["steps"] == 5 and rep["total_steps"] == 16 and not rep["finished"]
    assert rep["train_images"] == {"A": 8, "B": 8}
    lines = (run / "losses.csv").read_text().splitlines()
    assert len(lines) == 6 and lines[0].startswith("step,epoch,lr,G_A")
    from PIL import Image

    assert Image.open(run / "samples" / "step-00000004.png").size == (4 * 64, 3 * 64)  # 4 sources x 3 rows
    state = json.loads((latest_checkpoint(run) / "state.json").read_text())
    assert state["step"] == 5 and state["config"]["size"] == 64
    net, info = load_generator(run / "generator.safetensors")
    assert info["arch"]["blocks"] == 2
    with torch.no_grad():
        assert net(torch.zeros(1, 1, 64, 64)).shape == (1, 1, 64, 64)
    card = (run / "README.md").read_text()
    assert rep["translator_id"] in card and "Not for clinical use" in card
    assert (run / "private" / "reverse_generator.safetensors").is_file()
    with pytest.raises(ConfigError, match="already has checkpoints"):
        train(planned_workdir, _cfg("max_steps=6"), out_dir=run)


def _train_cmd(workdir, out, *extra):
    return [sys.executable, "-m", "cxrsynth.cli", "-w", str(workdir), "train", "--task", "normal-covid",
            "--out", str(out), "--max-steps", "12", *extra] + [x for kv in TINY + ["save_every=1"] for x in ("--set", kv)]


def _run_killed_and_resumed(cmd, full, killed, kill_after: int, steps: int) -> None:
    """Train ``cmd(full)`` uninterrupted; train ``cmd(killed)``, SIGKILL it once a checkpoint at step >=
    ``kill_after`` exists, then finish it with ``--resume``. All three on one thread: the same count in
    each (CPU float sums depend on it), and at 64 px a second thread only waits on the first (on this
    2-core machine with other work running, 12 steps took 49 s on two and 9 s on one)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(cmd(full), check=True, capture_output=True, env=env)
    proc = subprocess.Popen(cmd(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        ck = latest_checkpoint(killed)
        if ck is not None and json.loads((ck / "state.json").read_text())["step"] >= kill_after:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stopped_at = json.loads((latest_checkpoint(killed) / "state.json").read_text())["step"]
    assert kill_after <= stopped_at < steps, "the run must be killed part-way"
    subprocess.run(cmd(killed, "--resume"), check=True, capture_output=True, env=env)


def test_kill_and_resume_reaches_the_same_weights(planned_workdir, tmp_path):
    """All three runs are processes with the same thread count: CPU float sums depend on it."""
    full, killed = tmp_path / "full", tmp_path / "killed"
    _run_killed_and_resumed(lambda out, *extra: _train_cmd(planned_workdir, out, *extra), full, killed, 3, 12)
    rep = json.loads((killed / "train_report.json").read_text())
    assert rep["steps"] == 12
    a, b = _tensors(full), _tensors(killed)
    assert a.keys() == b.keys() and len(a) > 200
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    # the loss log has each step exactly once after the resume
    steps = [int(r.split(",")[0]) for r in (killed / "losses.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 13))


def test_corrupt_checkpoint_is_refused(planned_workdir, tmp_path):
    run = tmp_path / "r"
    train(planned_workdir, _cfg("max_steps=2"), out_dir=run)
    f = latest_checkpoint(run) / "tensors.safetensors"
    data = bytearray(f.read_bytes())
    data[-10] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="do not match their checksum"):
        train(planned_workdir, _cfg("max_steps=4"), resume=True, out_dir=run)


def test_vanilla_loss_and_flip_options(planned_workdir, tmp_path):
    rep = train(planned_workdir, _cfg("max_steps=2", "gan_loss=vanilla", "flip=true", "lambda_identity=0"),
                out_dir=tmp_path / "v")
    assert rep["last_losses"]["idt_A"] == 0 and rep["steps"] == 2


# `cxrsynth train` under torchrun, with an exit hook registered before anything of cxrsynth's (atexit runs
# last-in first-out, so it runs last): it records whether the process group is still there, and how many DDP
# modules are alive, as the interpreter is about to tear down.
DDP_EXIT_PROBE = """
import atexit, gc, json, os, sys

def record():
    import torch
    from torch.nn.parallel import DistributedDataParallel

    live = sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects())
    with open(os.path.join(sys.argv[1], "exit-rank-" + os.environ["RANK"] + ".json"), "w") as fh:
        json.dump({"group": torch.distributed.is_initialized(), "ddp_alive": live}, fh)

atexit.register(record)
from cxrsynth.cli import main

main(sys.argv[2:])
"""


@pytest.mark.slow
def test_ddp_two_cpu_processes_with_gloo(planned_workdir, tmp_path):
    """Two gloo processes train one translator. Each leaves no DDP module and no process group to the
    interpreter's teardown, where gloo's reducer aborted a process now and then ("terminate called without
    an active exception": bench/README.md, bench/ddp_exit.py)."""
    run = tmp_path / "ddp"
    probe = tmp_path / "probe.py"
    probe.write_text(DDP_EXIT_PROBE)
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            str(probe), str(tmp_path), "-w", str(planned_workdir), "train", "--task", "pneumonia-covid", "--out", str(run),
            "--max-steps", "3", "--device", "cpu", "--json"] + [x for kv in TINY for x in ("--set", kv)]
    res = subprocess.run(args, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "broadcast_buffers" not in res.stderr  # deprecated in torch 2.13 (forward_sync_buffers)
    rep = json.loads((run / "train_report.json").read_text())
    assert rep["world_size"] == 2 and rep["steps"] == 3
    assert rep["steps_per_epoch"] == 4  # 8 images, batch 1 on each of 2 processes
    assert (run / "generator.safetensors").is_file()
    for rank in (0, 1):
        assert json.loads((tmp_path / f"exit-rank-{rank}.json").read_text()) == {"group": False, "ddp_alive": 0}


# --- the `paper` preset: the authors' own recipe --------------------------------------------------------

PAPER = ["preset=paper", "size=64", "base=8", "disc_base=8", "batch_size=4", "epochs_constant=12"]


def test_paper_preset_resolves_the_authors_recipe():
    from cxrsynth.stages.translate.train import resolve_train_config

    cfg = resolve_train_config(overrides=["preset=paper"])
    assert (cfg.generator, cfg.base, cfg.disc_base, cfg.init, cfg.loop) == ("unet", 32, 64, "glorot", "keras")
    assert (cfg.gan_loss, cfg.lambda_cycle, cfg.lambda_identity, cfg.pool_size) == ("lsgan", 10.0, 0.1, 0)
    assert (cfg.batch_size, cfg.epochs_constant, cfg.epochs_decay, cfg.flip, cfg.jitter) == (16, 100, 0, True, False)
    assert resolve_train_config(overrides=["preset=paper", "batch_size=8"]).batch_size == 8  # explicit wins
    assert resolve_train_config().generator == "resnet"
    with pytest.raises(ConfigError, match="multiple of 16"):
        resolve_train_config(overrides=["preset=paper", "size=72"])
    with pytest.raises(ConfigError, match="unknown preset"):
        resolve_train_config(overrides=["preset=keras"])


def test_paper_update_trains_discriminators_first_on_current_fakes(planned_workdir, tmp_path):
    """One Keras-GAN update: D on real, D on the fakes of the not-yet-updated generators, then G."""
    from cxrsynth.stages.translate.train import CycleGAN, Runtime, build_models, resolve_train_config

    cfg = resolve_train_config(overrides=PAPER)
    nets = build_models(cfg)
    model = CycleGAN(nets, cfg, Runtime(torch.device("cpu")))
    calls = []
    g0 = {k: v.clone() for k, v in nets["G_A"].state_dict().items()}
    real_A, real_B = torch.rand(4, 1, 64, 64) * 2 - 1, torch.rand(4, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        expected_fake_B = nets["G_A"](real_A)
    d_inputs = []
    for name in ("D", "G"):
        orig = model.opt[name].step

        def spy(*a, _orig=orig, _name=name, **k):
            calls.append(_name)
            if _name == "G":  # the generators have not moved before their own step
                assert all(torch.equal(g0[key], val) for key, val in nets["G_A"].state_dict().items())
            return _orig(*a, **k)

        model.opt[name].step = spy
    nets["D_A"].register_forward_pre_hook(lambda mod, args: d_inputs.append(args[0].detach().clone()))
    losses = model.step(real_A, real_B, 0)
    assert calls == ["D", "D", "G"]
    assert torch.equal(d_inputs[0], real_B) and torch.allclose(d_inputs[1], expected_fake_B)
    assert model.pools["A"].images == [] and model.pools["B"].images == []  # no history pool
    assert set(losses) == {"G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B"}
    assert not any(torch.equal(g0[k], v) for k, v in nets["G_A"].state_dict().items() if k.endswith("conv.weight"))


def test_paper_epochs_draw_both_domains_without_replacement(planned_workdir):
    from cxrsynth.stages.translate.train import TrainingSet

    data = TrainingSet(planned_workdir, "normal-covid", 64, jitter=False)
    assert data.steps_per_epoch("keras", 4) == 8 // 4 - 1 and data.steps_per_epoch("canonical", 4) == 2
    a, b = data.batch(0, 0, 8, 0, 0, flip=True, loop="keras")
    for batch in (a, b):  # 8 distinct images of 8: drawn without replacement
        assert len({tuple(x.flatten()[:4096:97].tolist()) for x in batch}) == 8
    with pytest.raises(ConfigError, match="two batches"):
        data.steps_per_epoch("keras", 8)


def test_a_canonical_run_cannot_resume_with_the_paper_preset(planned_workdir, tmp_path):
    from cxrsynth.stages.translate.train import resolve_train_config

    run = tmp_path / "c"
    train(planned_workdir, _cfg("max_steps=1"), out_dir=run)
    saved = json.loads((run / "config.json").read_text())
    with pytest.raises(ConfigError, match="changes the run") as err:
        train(planned_workdir, resolve_train_config(base=saved, overrides=["preset=paper"]), resume=True, out_dir=run)
    assert "preset" in str(err.value)
    with pytest.raises(ConfigError, match="changes the run"):  # the preset's fields alone are refused too
        train(planned_workdir, resolve_train_config(overrides=TINY + ["preset=paper", "max_steps=2", "disc_base=8"]),
              resume=True, out_dir=run)


def test_checkpoints_by_wall_time_and_losses_logged_in_batches(planned_workdir, tmp_path):
    """Checkpoints come every save_every steps, every save_every_minutes and at the last step (no longer at
    every epoch end); the loss log holds every step once although it is copied to the host in batches."""
    timed, steps_only = tmp_path / "timed", tmp_path / "steps"
    train(planned_workdir, _cfg("max_steps=5", "save_every=1000", "save_every_minutes=0.000001", "keep_checkpoints=10",
                                "log_every=3"), out_dir=timed)
    assert sorted(p.name for p in (timed / "checkpoints").glob("step-*")) == [f"step-{i:08d}" for i in range(1, 6)]
    rows = (timed / "losses.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in rows[1:]] == [1, 2, 3, 4, 5]
    assert all(len(r.split(",")) == 12 for r in rows)
    rep = train(planned_workdir, _cfg("max_steps=5", "save_every=1000", "save_every_minutes=null", "keep_checkpoints=10"),
                out_dir=steps_only)
    assert [p.name for p in (steps_only / "checkpoints").glob("step-*")] == ["step-00000005"]
    assert set(rep["last_losses"]) == {"G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B"}
    assert all(isinstance(v, float) for v in rep["last_losses"].values())
