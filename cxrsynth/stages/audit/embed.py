"""The embedding phi every distance in the audit uses.

- ``pixels`` (fallback): the image downsampled to 32x32 and z-scored, flattened (1,024 values). Crude,
  but it needs nothing and it is what an attacker with no model could do.
- ``classifier:PATH``: the pooled features of a benchmark classifier (``runs/.../model.safetensors``,
  its architecture read from the file, torchvision or ``timm:`` only), as the issue asks; any cxrsynth
  classifier checkpoint of such an architecture works.
- Any ``torch.nn.Module`` mapping (N, 1, H, W) floats in [0, 1] to (N, d), passed from Python.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...core.errors import ConfigError


class PixelEmbedding(nn.Module):
    num_features = 32 * 32
    name = "pixels (32x32, z-scored)"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = nn.functional.interpolate(x.float(), size=(32, 32), mode="area").flatten(1)
        return (t - t.mean(1, keepdim=True)) / (t.std(1, keepdim=True) + 1e-6)


class ClassifierEmbedding(nn.Module):
    """A benchmark classifier's pooled features. Its architecture comes from the file's metadata, which
    may name only a torchvision or ``timm:`` architecture (:func:`~cxrsynth.measure.classifiers.file_arch`):
    a file never chooses code to run.

    A CNN's features depend on the scale it sees, so images are resized (bilinear with antialiasing, as
    PIL's resize that trained it) to the side the file says the classifier was trained at: a 128 px
    classifier auditing a 256 px release sees the images as it was trained to. A file that does not say
    (written before the metadata existed, or elsewhere) sees them at the audit's size."""

    def __init__(self, path: str | Path):
        super().__init__()
        from ...measure.classifiers import build_from_file, file_image_size

        self.model = build_from_file(path).eval()
        self.size = file_image_size(path)
        arch = self.model.arch
        self.num_features = self.model.head.in_features
        at = f", at {self.size} px" if self.size else ""
        self.name = f"classifier {arch} pooled features ({Path(path).name}{at})"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.size and tuple(x.shape[-2:]) != (self.size, self.size):
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True,
                                          align_corners=False)
        return self.model.features(x)


def make_embedding(spec: str | nn.Module) -> nn.Module:
    if isinstance(spec, nn.Module):
        return spec.eval()
    if spec == "pixels":
        return PixelEmbedding()
    if spec.startswith("classifier:"):
        return ClassifierEmbedding(spec.split(":", 1)[1])
    raise ConfigError("unknown embedding", spec, "use pixels or classifier:PATH")


@torch.no_grad()
def embed(module: nn.Module, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """uint8 (N, H, W) -> float32 (N, d)."""
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i:i + batch].astype(np.float32) / 255.0).unsqueeze(1)
        out.append(module(x).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, getattr(module, "num_features", 0)), np.float32)
