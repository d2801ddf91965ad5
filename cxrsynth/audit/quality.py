"""Quality of the synthetic images: FID and KID (torchmetrics), precision / recall / density / coverage
(Naeem et al. 2020, from their definitions with k nearest neighbours), and pixel statistics.

FID/KID use Inception-v3 only when torch-fidelity and its weights file are already on disk
(``$TORCH_HOME/hub/checkpoints/weights-inception-2015-12-05-6726825d.pth``); otherwise the audit's
embedding, and the output says which. Values from different extractors are not comparable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


def inception_available() -> Path | None:
    try:
        import torch_fidelity  # noqa: F401  (only whether it is installed matters)
    except ImportError:
        return None
    from torch.hub import get_dir

    path = Path(get_dir()) / "checkpoints" / INCEPTION_FILE
    return path if path.is_file() else None


class _Gray3(nn.Module):
    """Wraps the embedding for torchmetrics: it receives float images in [0, 1]."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.num_features = int(getattr(inner, "num_features"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x[:, :1] if x.shape[1] == 3 else x)


def fid_kid(real: np.ndarray, fake: np.ndarray, embedding: nn.Module) -> dict:
    """FID and KID (mean, std) between two uint8 (N, H, W) sets; KID subsets fit small sets."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    n = min(len(real), len(fake))
    if n < 2:
        return {"fid": None, "kid_mean": None, "kid_std": None, "n_real": len(real), "n_fake": len(fake)}
    weights = inception_available()
    if weights is not None:
        feat, extractor, kwargs = 2048, "inception-v3 (torch-fidelity weights, local file)", {"feature_extractor_weights_path": str(weights)}
    else:
        feat, extractor, kwargs = _Gray3(embedding), getattr(embedding, "name", type(embedding).__name__), {}
    size = real.shape[-1]
    fid = FrechetInceptionDistance(feature=feat, normalize=True, input_img_size=(1, size, size), **kwargs)
    subset = max(2, min(50, n - 1))
    kid = KernelInceptionDistance(feature=feat, normalize=True, subset_size=subset, subsets=50, **kwargs)
    for arr, is_real in ((real, True), (fake, False)):
        for i in range(0, len(arr), 64):
            x = torch.from_numpy(arr[i:i + 64].astype(np.float32) / 255.0).unsqueeze(1)
            if weights is not None:
                x = x.expand(-1, 3, -1, -1)
            fid.update(x, real=is_real)
            kid.update(x, real=is_real)
    km, ks = kid.compute()
    return {"fid": float(fid.compute()), "kid_mean": float(km), "kid_std": float(ks), "kid_subset_size": subset,
            "n_real": len(real), "n_fake": len(fake), "extractor": extractor}


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict:
    """Precision, recall, density and coverage of ``fake`` against ``real`` embeddings (Naeem et al. 2020)."""
    from .privacy import chunked, nearest

    if len(real) <= k or len(fake) <= k:
        return {"precision": None, "recall": None, "density": None, "coverage": None, "k": k}
    r_real = nearest(real, real, k, exclude_self=True)[0][:, k - 1]  # k-NN radius, the point itself left out
    r_fake = nearest(fake, fake, k, exclude_self=True)[0][:, k - 1]
    in_count = np.zeros(len(fake))  # how many real balls hold each fake image
    recall_hit = np.zeros(len(real), dtype=bool)
    cover = np.zeros(len(real), dtype=bool)
    for i, d in chunked(real, fake):  # d: real chunk x fake
        rr = r_real[i:i + len(d)]
        in_count += (d < rr[:, None]).sum(0)
        recall_hit[i:i + len(d)] = (d < r_fake[None, :]).any(1)
        cover[i:i + len(d)] = d.min(1) < rr
    return {"precision": float((in_count > 0).mean()), "recall": float(recall_hit.mean()),
            "density": float(in_count.mean() / k), "coverage": float(cover.mean()), "k": k}


def pixel_stats(images: np.ndarray) -> dict:
    x = images.astype(np.float64) / 255
    hist = np.histogram(x, bins=16, range=(0, 1))[0]
    return {"mean": float(x.mean()), "std": float(x.std()), "per_image_mean_std": float(x.mean((1, 2)).std()),
            "histogram16": (hist / hist.sum()).round(5).tolist()}
