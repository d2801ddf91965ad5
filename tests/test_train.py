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

from cxrsynth.config import resolve
from cxrsynth.errors import CheckpointError, ConfigError
from cxrsynth.translate.checkpoint import latest_checkpoint, load_generator
from cxrsynth.translate.train import TrainConfig, train

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


def test_kill_and_resume_reaches_the_same_weights(planned_workdir, tmp_path):
    """All three runs are processes with the same thread count: CPU float sums depend on it."""
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_train_cmd(planned_workdir, full), check=True, capture_output=True)
    proc = subprocess.Popen(_train_cmd(planned_workdir, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        ck = latest_checkpoint(killed)
        if ck is not None and json.loads((ck / "state.json").read_text())["step"] >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stopped_at = json.loads((latest_checkpoint(killed) / "state.json").read_text())["step"]
    assert 3 <= stopped_at < 12, "the run must be killed part-way"
    subprocess.run(_train_cmd(planned_workdir, killed, "--resume"), check=True, capture_output=True)
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


@pytest.mark.slow
def test_ddp_two_cpu_processes_with_gloo(planned_workdir, tmp_path):
    run = tmp_path / "ddp"
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "cxrsynth.cli", "-w", str(planned_workdir), "train", "--task", "pneumonia-covid", "--out", str(run),
            "--max-steps", "3", "--device", "cpu", "--json"] + [x for kv in TINY for x in ("--set", kv)]
    res = subprocess.run(args, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode == 0, res.stderr[-3000:]
    rep = json.loads((run / "train_report.json").read_text())
    assert rep["world_size"] == 2 and rep["steps"] == 3
    assert rep["steps_per_epoch"] == 4  # 8 images, batch 1 on each of 2 processes
    assert (run / "generator.safetensors").is_file()
