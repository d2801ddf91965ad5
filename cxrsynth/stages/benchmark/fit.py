"""Training and scoring one classifier (one task, arm and seed), as the paper did, on the monitor set
the protocol names.

The paper's recipe: Adadelta (lr 1e-3, rho 0.95, epsilon 1e-7 as Keras), batch 16, binary cross-entropy on the 2-unit softmax, inputs
scaled by 1/255, no augmentation, no class weights, up to 200 epochs; ReduceLROnPlateau (patience 5, absolute
threshold 1e-4) and early stopping (patience 15, min_delta 0, best weights restored) on the monitor loss. ``paper`` monitors the
TEST set, as the original code did (test leakage, flagged in every output); ``rigorous`` monitors the
validation set and picks the decision threshold there (Youden's J), then scores the test set once.

Speed (issue 14), each measured before it became a default (``bench/bench_speed.py --parts classifier``):

- the training set is decoded once per run into one uint8 tensor (a quarter of the float memory) and
  batches are converted to float on the fly; batches are drawn with the same sampler and seed as a
  DataLoader over the items, so the order, and in fp32 every number, is what it was;
- ``precision``: bf16 autocast for the training forward/backward where the hardware has it (``auto``, as
  ``device.py``): resnet18 at 128 px, batch 16, measured 1.5x fp32 in CPU time (3.81 -> 2.47 s per
  batch; the machine was shared, so wall times were not usable) on the 2-core AMD EPYC (AVX-512 BF16) CI
  machine, as bf16 halved the translator step there; fp16 with a GradScaler is offered on CUDA. Monitor
  and test predictions stay fp32, so early stopping and scores read full-precision outputs. ``fp32``
  gives the paper's numerics;
- ``channels_last``: on for CUDA only (``None``); on the CPU it measured slower with bf16 (2.81 vs
  2.47 s CPU per batch), as it did for the translators.
"""

from __future__ import annotations

import copy
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...core.config import at_least, positive
from ...core.device import autocast_dtype, use_channels_last
from ...core.errors import ConfigError
from ...measure import metrics as M


ADADELTA_RHO, ADADELTA_EPS = 0.95, 1e-7  # keras.optimizers.Adadelta defaults (Keras 2.3.1)
PLATEAU_MIN_DELTA = 1e-4  # keras.callbacks.ReduceLROnPlateau: min_delta, compared in absolute terms


@dataclass(frozen=True)
class FitConfig:
    max_epochs: int = 200
    batch_size: int = 16
    lr: float = 1e-3
    patience: int = 15
    lr_patience: int = 5
    workers: int = 0
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 where native; fp16: CUDA only
    channels_last: bool | None = None  # None: on for CUDA

    def __post_init__(self):
        # --max-epochs 0 would report an untrained model; 0 or negative sizes fail later with tracebacks.
        for name in ("max_epochs", "batch_size", "patience"):
            at_least(name, getattr(self, name), 1)
        at_least("lr_patience", self.lr_patience, 0)
        at_least("workers", self.workers, 0)
        positive("lr", self.lr)


def bce_softmax(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Keras' binary cross-entropy on a 2-unit softmax against one-hot targets (the paper's loss)."""
    probs = F.softmax(logits.float(), dim=1).clamp(1e-7, 1 - 1e-7)
    onehot = F.one_hot(labels, 2).float()
    return F.binary_cross_entropy(probs, onehot)


@torch.no_grad()
def predict(model: nn.Module, ds, device, batch_size: int = 32, features: bool = False):
    """COVID-19 probabilities (and pooled features when asked) for every item of ``ds``, in order."""
    model.eval()
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False)
    scores, feats, labels, losses = [], [], [], []
    for x, y in loader:
        x, y = x.to(device), torch.as_tensor(y).to(device)
        f = model.features(x)
        logits = model.head(f)
        losses.append(float(bce_softmax(logits, y)) * len(y))
        scores.append(F.softmax(logits.float(), 1)[:, 1].cpu().numpy())
        labels.append(y.cpu().numpy())
        if features:
            feats.append(f.cpu().numpy())
    n = max(len(ds), 1)
    out = {"scores": np.concatenate(scores) if scores else np.zeros(0), "labels": np.concatenate(labels) if labels else np.zeros(0, int),
           "loss": sum(losses) / n}
    if features:
        out["features"] = np.concatenate(feats) if feats else np.zeros((0, 0))
    return out


def optimizer(model: nn.Module, cfg: FitConfig):
    """Adadelta and its plateau schedule with Keras 2.3.1's defaults, which the paper's code ran with
    (torch's differ: rho 0.9, eps 1e-6, and a plateau threshold relative to the best loss)."""
    opt = torch.optim.Adadelta(model.parameters(), lr=cfg.lr, rho=ADADELTA_RHO, eps=ADADELTA_EPS)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.1, patience=cfg.lr_patience,
                                                       threshold=PLATEAU_MIN_DELTA, threshold_mode="abs")
    return opt, sched


def decode_once(ds, workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Every item of ``ds`` as one (N, C, H, W) tensor and its labels: uint8 when that is lossless (the
    datasets here give k / 255), float otherwise (a transform's output); read in order, in parallel."""
    from .arms import Cached

    inner = ds.ds if isinstance(ds, Cached) else ds  # read what a Cached wraps, so nothing is held twice
    loader = torch.utils.data.DataLoader(inner, batch_size=64, shuffle=False, num_workers=workers)
    xs, ys = [], []
    for x, y in loader:
        xs.append(x)
        ys.append(torch.as_tensor(y))
    x, y = torch.cat(xs), torch.cat(ys)
    u8 = x.mul(255).round_().clamp_(0, 255).to(torch.uint8)
    return (u8 if torch.equal(u8.float().div_(255), x) else x), y


def amp_for(precision: str, device: torch.device) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
    """The autocast dtype for ``precision`` on ``device`` and, for fp16, the gradient scaler it needs."""
    if precision == "fp16":
        if device.type != "cuda":
            raise ConfigError("fit.precision fp16 needs a CUDA device", str(device), "use bf16 or fp32 on this device")
        return torch.float16, torch.amp.GradScaler("cuda")
    return autocast_dtype(precision, device), None


def fit(model: nn.Module, train_ds, monitor_ds, cfg: FitConfig, seed: int, device, progress=None) -> dict:
    """Train with early stopping on ``monitor_ds``; returns the history; ``model`` holds the best weights."""
    torch.manual_seed(seed)
    device = torch.device(device)
    amp, scaler = amp_for(cfg.precision, device)
    fmt = torch.channels_last if use_channels_last(cfg.channels_last, device) else torch.contiguous_format
    model.to(device, memory_format=fmt)
    opt, sched = optimizer(model, cfg)
    images, labels = decode_once(train_ds, cfg.workers)
    if device.type == "cuda":
        images, labels = images.to(device), labels.to(device)
    # the same index batches as a shuffling DataLoader over the items with this generator
    gen = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(range(len(images)), batch_size=cfg.batch_size, shuffle=True, generator=gen)
    scale = 255.0 if images.dtype == torch.uint8 else 1.0
    best, best_loss, best_epoch, bad, history, steps = None, float("inf"), 0, 0, [], 0
    t0 = time.perf_counter()
    for epoch in range(1, cfg.max_epochs + 1):
        model.train()
        total, n = 0.0, 0
        for idx in loader:
            x = images[idx.to(images.device)].to(device, non_blocking=True).float().div_(scale)
            x, y = x.contiguous(memory_format=fmt), labels[idx.to(labels.device)].to(device)
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=amp) if amp is not None else nullcontext():
                logits = model(x)
            loss = bce_softmax(logits, y)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            total += float(loss.detach()) * len(y)
            n += len(y)
            steps += 1
        mon = predict(model, monitor_ds, device)["loss"]
        sched.step(mon)
        history.append({"epoch": epoch, "train_loss": total / max(n, 1), "monitor_loss": mon,
                        "lr": opt.param_groups[0]["lr"]})
        if progress:
            progress(epoch, history[-1])
        if mon < best_loss:  # Keras EarlyStopping(min_delta=0): any decrease counts as an improvement
            best, best_loss, best_epoch, bad = copy.deepcopy(model.state_dict()), mon, epoch, 0
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    if best is not None:
        model.load_state_dict(best)
    # steps: optimizer updates taken, so that arms of different sizes can be compared on their budget
    return {"epochs_run": len(history), "best_epoch": best_epoch, "best_monitor_loss": best_loss, "steps": steps,
            "seconds": round(time.perf_counter() - t0, 2), "history": history}


def score(y_true, scores, patients, threshold: float, bootstrap: int, seed: int) -> dict:
    out = M.threshold_metrics(y_true, scores, threshold)
    out.update({"threshold": threshold, "auroc": M.auroc(y_true, scores), "auprc": M.auprc(y_true, scores),
                "auroc_ci95": M.bootstrap_auroc(y_true, scores, patients, bootstrap, seed) if bootstrap else None})
    return out | M.clustered_rates(y_true, scores, patients, threshold, bootstrap, seed)
