"""Training and scoring one classifier (one task, arm and seed), as the paper did, on the monitor set
the protocol names.

The paper's recipe: Adadelta (lr 1e-3, rho 0.95, epsilon 1e-7 as Keras), batch 16, binary cross-entropy on the 2-unit softmax, inputs
scaled by 1/255, no augmentation, no class weights, up to 200 epochs; ReduceLROnPlateau (patience 5, absolute
threshold 1e-4) and early stopping (patience 15, min_delta 0, best weights restored) on the monitor loss. ``paper`` monitors the
TEST set, as the original code did (test leakage, flagged in every output); ``rigorous`` monitors the
validation set and picks the decision threshold there (Youden's J), then scores the test set once.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import at_least, positive
from . import metrics as M


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


def fit(model: nn.Module, train_ds, monitor_ds, cfg: FitConfig, seed: int, device, progress=None) -> dict:
    """Train with early stopping on ``monitor_ds``; returns the history; ``model`` holds the best weights."""
    torch.manual_seed(seed)
    model.to(device)
    opt, sched = optimizer(model, cfg)
    gen = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True, generator=gen,
                                         num_workers=cfg.workers)
    best, best_loss, best_epoch, bad, history = None, float("inf"), 0, 0, []
    t0 = time.perf_counter()
    for epoch in range(1, cfg.max_epochs + 1):
        model.train()
        total, n = 0.0, 0
        for x, y in loader:
            x, y = x.to(device), torch.as_tensor(y).to(device)
            opt.zero_grad(set_to_none=True)
            loss = bce_softmax(model(x), y)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(y)
            n += len(y)
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
    return {"epochs_run": len(history), "best_epoch": best_epoch, "best_monitor_loss": best_loss,
            "seconds": round(time.perf_counter() - t0, 2), "history": history}


def score(y_true, scores, patients, threshold: float, bootstrap: int, seed: int) -> dict:
    out = M.threshold_metrics(y_true, scores, threshold)
    out.update({"threshold": threshold, "auroc": M.auroc(y_true, scores), "auprc": M.auprc(y_true, scores),
                "auroc_ci95": M.bootstrap_auroc(y_true, scores, patients, bootstrap, seed) if bootstrap else None})
    return out
