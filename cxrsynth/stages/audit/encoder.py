"""A chest X-ray feature space that does not depend on the arm being judged.

ImageNet features misjudge medical images (Stein et al. 2023), and the benchmark classifier is one of
the arms being compared, so the fidelity measures also use a small encoder trained here: a 3-class
classifier (normal / pneumonia / COVID-19) on every real *training* image of the work folder, at 64 px,
CPU-trainable in a minute or two. Its pooled features (64-d) are the feature space.

It is trained once per work folder and cached where the caller says (``cache``: the pipeline passes
``WorkLayout.cxr_encoder``; none: trained and not kept), safetensors with a JSON beside it
(``<cache>.json``, which is ``WorkLayout.cxr_encoder_info``) of how it was trained (images, class
counts, epochs, seed, accuracy) and its sha256, which audit.json
records: two audits compare only when the encoder's sha256 is the same. A cached encoder is reused
only while the training images it was made from (their ids and labels) are unchanged.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...artifacts.split_data import SplitData
from ...core.errors import DataNotFoundError
from ...measure.decoded import canonical as load_canonical  # decoded once per process
from ...core.paths import atomic_path, read_json, sha256_file, write_json
from ...core.runtime import torch_threads
from ...data.records import LABELS

SIDE = 64
WIDTH = 64


class CXREncoder(nn.Module):
    """(N, 1, H, W) in [0, 1] -> (N, 64): four stride-2 conv blocks, global average pool. Input of any
    size is brought to 64 px by area averaging first (the same path for every set)."""

    num_features = WIDTH

    def __init__(self):
        super().__init__()
        chans = [1, 16, 32, 64, WIDTH]
        layers = []
        for a, b in zip(chans, chans[1:]):
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(WIDTH, len(LABELS))
        self.name = "cxr-encoder (3-class CNN on this work folder's real training images, 64 px, 64-d)"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if x.shape[-1] != SIDE or x.shape[-2] != SIDE:
            x = nn.functional.interpolate(x, size=(SIDE, SIDE), mode="area")
        return self.body((x - 0.5) / 0.25)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def training_set(data: SplitData) -> tuple[list[str], np.ndarray, list]:
    """Ids, labels (index into LABELS) and records of every real training-split image with pixels."""
    assign = data.assign
    recs = sorted((r for r in data.records if r.has_pixels and assign.get(r.record_id) == "train"),
                  key=lambda r: r.record_id)
    if not recs:
        raise DataNotFoundError("no real training images with pixels to train the chest X-ray encoder on",
                                f"{len(data.records)} records, {sum(v == 'train' for v in assign.values())} in train")
    return [r.record_id for r in recs], np.array([LABELS.index(r.label) for r in recs]), recs


def _key(ids: list[str], labels: np.ndarray, epochs: int, seed: int) -> str:
    text = json.dumps([ids, labels.tolist(), epochs, seed, SIDE, WIDTH])
    return hashlib.sha256(text.encode()).hexdigest()


def train_encoder(images: np.ndarray, labels: np.ndarray, epochs: int = 20, seed: int = 0,
                  batch: int = 64) -> tuple[CXREncoder, dict]:
    """Train on uint8 (N, 64, 64) images with flips and small shifts; returns the model (eval mode) and
    its training-set accuracy and last loss (a fit check, not a benchmark).

    Runs on one thread: convolutions this small gain nothing from a second one and, on the shared
    2-core EPYC, lost to contention (0.12 s per batch of 64 on one thread, 0.8-1.4 s on two).
    """
    with torch_threads(1):
        return _train(images, labels, epochs, seed, batch)


def _train(images: np.ndarray, labels: np.ndarray, epochs: int, seed: int, batch: int) -> tuple[CXREncoder, dict]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = CXREncoder()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-3)
    x_all = torch.from_numpy(images.astype(np.float32) / 255).unsqueeze(1)
    y_all = torch.from_numpy(labels.astype(np.int64))
    counts = np.bincount(labels, minlength=len(LABELS)).astype(np.float64)
    weight = torch.tensor(np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / (counts > 0).sum(), 0), dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    steps = epochs * max(1, (len(x_all) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    net.train()
    last = float("nan")
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(x_all)))
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            x = x_all[idx]
            if rng.random() < 0.5:
                x = x.flip(-1)
            dy, dx = rng.integers(-4, 5, 2)
            x = torch.roll(x, (int(dy), int(dx)), dims=(-2, -1))
            loss = loss_fn(net.head(net.features(x)), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            last = float(loss.detach())
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net.head(net.features(x_all[i:i + 256])).argmax(1) for i in range(0, len(x_all), 256)])
    return net, {"train_accuracy": float((pred == y_all).float().mean()), "last_loss": last}


@torch.no_grad()
def _validation_accuracy(net: CXREncoder, data: SplitData) -> float | None:
    """Accuracy on the validation split's real images (never trained on): does the feature space
    generalise beyond the images it was fitted to? None when the split has none."""
    assign = data.assign
    recs = [r for r in data.records if r.has_pixels and assign.get(r.record_id) == "validation"]
    if not recs:
        return None
    x = torch.from_numpy(np.stack([load_canonical(r.path, SIDE) for r in recs]).astype(np.float32) / 255).unsqueeze(1)
    y = torch.tensor([LABELS.index(r.label) for r in recs])
    pred = torch.cat([net.head(net.features(x[i:i + 256])).argmax(1) for i in range(0, len(x), 256)])
    return float((pred == y).float().mean())


def cxr_encoder(data: SplitData, epochs: int = 20, seed: int = 0,
                cache: str | Path | None = None) -> tuple[CXREncoder, dict]:
    """The encoder of ``data``'s real training images, trained on first use and then read from
    ``cache`` (a safetensors path, its description at ``<cache>.json``; None: trained, kept nowhere);
    returns the model and its description (``sha256`` of the weights, how it was trained)."""
    from safetensors.torch import load_file, save_file

    ids, labels, recs = training_set(data)
    key = _key(ids, labels, epochs, seed)
    if cache is None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:  # the sha256 of the weights is taken from a file, as cached
            return cxr_encoder(data, epochs, seed, Path(tmp) / "cxr_encoder.safetensors")
    path = Path(cache)
    info_path = path.with_suffix(".json")
    if path.is_file() and info_path.is_file():
        info = read_json(info_path)
        if info.get("key") == key and info.get("sha256") == sha256_file(path):
            net = CXREncoder()
            net.load_state_dict(load_file(str(path)))
            return net.eval(), info
    images = np.stack([load_canonical(r.path, SIDE) for r in recs])
    net, fit = train_encoder(images, labels, epochs, seed)
    fit["validation_accuracy"] = _validation_accuracy(net, data)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    info = {"kind": "cxrsynth.cxr_encoder", "key": key, "sha256": sha256_file(path), "file": path.name,
            "architecture": "4 conv blocks (16-32-64-64, stride 2, batch norm, ReLU), global average pool, linear 3",
            "input": f"{SIDE} px gray, area-resampled", "features": WIDTH, "classes": list(LABELS),
            "trained_on": "every real training-split image with pixels of the work folder",
            "images": len(ids), "by_class": {c: int((labels == k).sum()) for k, c in enumerate(LABELS)},
            "ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
            "epochs": epochs, "seed": seed, "optimizer": "AdamW lr 3e-3 one-cycle, weight decay 1e-3, batch 64, "
            "class-balanced cross-entropy, random flips and shifts of up to 4 px", **fit}
    write_json(info_path, info)
    return net, info
