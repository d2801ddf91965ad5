"""Quality of the synthetic images: KID and FID, precision / recall / density / coverage (Naeem et al.
2020, from their definitions with k nearest neighbours), and pixel statistics.

- **Features.** Inception-v3 (pool3, 2,048-d) through torch-fidelity, from a local weights file (a path,
  or ``$TORCH_HOME/hub/checkpoints/weights-inception-2015-12-05-6726825d.pth``), never downloaded; or
  the audit's embedding. The output names the extractor: values from different extractors are not
  comparable.
- **Fair set sizes.** Every comparison draws equal-size subsamples of the two sets (``n`` = the smaller
  set, capped), repeats the draw, and reports mean and spread. KID (unbiased at any size) leads; FID is
  biased at small ``n`` and is reported with its dimension ``d`` and ``n`` (``n <= d``: the covariances
  are singular, compare FIDs only at equal ``n`` and ``d``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...core.errors import ConfigError
from ...core.extras import available, require

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"


def default_inception_path() -> Path:
    from torch.hub import get_dir

    return Path(get_dir()) / "checkpoints" / INCEPTION_FILE


def inception_weights(path: str | Path | None = None) -> Path:
    """The Inception weights file (``path``, else the torch cache); a clear error when it is not there."""
    where = Path(path) if path else default_inception_path()
    if not where.is_file():
        raise ConfigError(f"Inception-v3 weights for FID/KID not found: place {INCEPTION_FILE} there", where,
                          f"download it once from {INCEPTION_URL} (torch-fidelity's conversion of the TensorFlow "
                          "FID Inception) to that path, or pass quality_features=embedding")
    return where


def inception_available(path: str | Path | None = None) -> Path | None:
    if not available("torch_fidelity"):
        return None
    where = Path(path) if path else default_inception_path()
    return where if where.is_file() else None


class InceptionFeatures(nn.Module):
    """torch-fidelity's Inception-v3 (the FID network) as an embedding: float (N, 1, H, W) in [0, 1] ->
    (N, 2048). Gray is repeated to 3 channels and quantised to uint8, as torch-fidelity expects."""

    num_features = 2048

    def __init__(self, weights: str | Path):
        super().__init__()
        require("torch_fidelity", "Inception FID/KID", "pass quality_features=embedding")
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                               feature_extractor_weights_path=str(weights))
        self.name = f"inception-v3 pool3, 2048-d (torch-fidelity; weights {Path(weights).name})"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u8 = (x.float().clamp(0, 1) * 255).round().to(torch.uint8)
        return self.net(u8.expand(-1, 3, -1, -1) if u8.shape[1] == 1 else u8)[0]


def make_extractor(mode: str, embedding: nn.Module, weights: str | Path | None = None) -> tuple[nn.Module, str]:
    """``auto`` (Inception when its file is on disk, else the embedding), ``inception`` or ``embedding``."""
    if mode not in ("auto", "inception", "embedding"):
        raise ConfigError("unknown quality_features", mode, "use auto, inception or embedding")
    if mode == "inception" or (mode == "auto" and inception_available(weights)):
        return InceptionFeatures(inception_weights(weights)).eval(), ""
    note = ("" if mode == "embedding" else
            f"Inception-v3 weights not found ({weights or default_inception_path()}): features are the audit's "
            f"embedding; place {INCEPTION_FILE} there (from {INCEPTION_URL}) for standard FID/KID")
    return embedding, note


# --- metrics on features -------------------------------------------------------------------------------

def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance of the Gaussians fitted to two feature sets (sample covariances, n - 1).

    tr sqrt(S_a S_b) is the nuclear norm of A B^T with A, B the centred features / sqrt(n - 1), since
    (A B^T)(B A^T) has the non-zero eigenvalues of S_a S_b: exact, and small (n_a x n_b) when n < d.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ca, cb = a - a.mean(0), b - b.mean(0)
    A, B = ca / np.sqrt(len(a) - 1), cb / np.sqrt(len(b) - 1)
    if max(len(a), len(b)) <= a.shape[1]:
        tr_sqrt = np.linalg.svd(A @ B.T, compute_uv=False).sum()
    else:  # d x d: S_a^(1/2) S_b^(1/2) has the same singular values
        sa, sb = A.T @ A, B.T @ B
        tr_sqrt = np.linalg.svd(_sqrt_psd(sa) @ _sqrt_psd(sb), compute_uv=False).sum()
    diff = a.mean(0) - b.mean(0)
    return float(diff @ diff + (A * A).sum() + (B * B).sum() - 2 * tr_sqrt)


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def kid_from_features(a: np.ndarray, b: np.ndarray, subset_size: int, subsets: int = 1, seed: int = 0) -> float:
    """KID: the unbiased MMD^2 with the cubic polynomial kernel (x.y / d + 1)^3, by torch-fidelity,
    averaged over ``subsets`` draws of ``subset_size`` (<= both set sizes) from each set."""
    require("torch_fidelity", "KID (the audit's fidelity and quality measures)", "--set fidelity=false")
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, kid_features_to_metric

    out = kid_features_to_metric(torch.from_numpy(np.asarray(a, np.float64)), torch.from_numpy(np.asarray(b, np.float64)),
                                 kid_subsets=subsets, kid_subset_size=subset_size, kid_kernel="poly",
                                 kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1,
                                 rng_seed=seed, verbose=False)
    return float(out[KEY_METRIC_KID_MEAN])


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """torch-fidelity's KID kernel with its defaults: (x.y * gamma + 1)^3, gamma = 1 / d."""
    return (np.matmul(x, y.T) * (1.0 / x.shape[1]) + 1) ** 3


def _mmd2_unbiased(kxx: np.ndarray, kxy: np.ndarray, kyy: np.ndarray) -> float:
    """torch-fidelity's ``mmd2`` (unbiased): off-diagonal means of K_XX and K_YY, minus twice the mean of K_XY."""
    m = len(kxx)
    return float((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.sum() / (m * m))


def kid_subsets(a: np.ndarray, b: np.ndarray, picks: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """KID of ``a[ia]`` against ``b[ib]`` for each (ia, ib) of ``picks`` (index arrays, all of one size m):
    the value :func:`kid_from_features` (torch-fidelity) gives for that pair of subsamples.

    A subsample's kernel matrix is a block of the kernel matrix of all the rows the picks use, so when
    that matrix is cheaper than one per pick (sets not much larger than m, the usual case: 20 draws of
    500 from 1,000 images) it is computed once and indexed, instead of 3 x repeats matrix products."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not picks:
        return np.zeros(0)
    m = len(picks[0][0])
    ua = np.unique(np.concatenate([ia for ia, _ in picks]))
    ub = np.unique(np.concatenate([ib for _, ib in picks]))
    once = len(ua) ** 2 + len(ub) ** 2 + len(ua) * len(ub) <= 3 * len(picks) * m * m
    if once:
        kaa, kbb, kab = _poly_kernel(a[ua], a[ua]), _poly_kernel(b[ub], b[ub]), _poly_kernel(a[ua], b[ub])
    vals = []
    for ia, ib in picks:
        if once:
            pa, pb = np.searchsorted(ua, ia), np.searchsorted(ub, ib)
            vals.append(_mmd2_unbiased(kaa[np.ix_(pa, pa)], kab[np.ix_(pa, pb)], kbb[np.ix_(pb, pb)]))
        else:
            x, y = a[ia], b[ib]
            vals.append(_mmd2_unbiased(_poly_kernel(x, x), _poly_kernel(x, y), _poly_kernel(y, y)))
    return np.asarray(vals)


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


def _spread(values: list) -> dict | None:
    v = [x for x in values if x is not None]
    return {"mean": float(np.mean(v)), "std": float(np.std(v))} if v else None


def compare(real: np.ndarray, fake: np.ndarray, n_max: int | None = 1000, repeats: int = 10, seed: int = 0,
            k: int = 5) -> dict:
    """KID, FID and PRDC of two feature sets on ``repeats`` equal-size subsamples (n = the smaller set,
    capped at ``n_max``), as mean and spread (population std over the repeats)."""
    n = min(len(real), len(fake), n_max or max(len(real), len(fake)))
    dim = int(real.shape[1]) if real.ndim == 2 else 0
    base = {"n": int(n), "n_real": len(real), "n_fake": len(fake), "dimension": dim, "repeats": repeats}
    if n < 2:
        return {**base, "kid": None, "fid": None, "precision": None, "recall": None, "density": None,
                "coverage": None, "note": "fewer than 2 images in a set"}
    rng = np.random.default_rng(seed)
    kid, fid, pr = [], [], []
    for r in range(repeats):
        a = real[rng.choice(len(real), n, replace=False)]
        b = fake[rng.choice(len(fake), n, replace=False)]
        kid.append(kid_from_features(a, b, n, 1, seed + r))
        fid.append(fid_from_features(a, b))
        pr.append(prdc(a, b, k))
    out = {**base, "kid": _spread(kid), "fid": _spread(fid), "k": k,
           **{m: _spread([p[m] for p in pr]) for m in ("precision", "recall", "density", "coverage")}}
    notes = []
    if n <= dim:
        notes.append(f"n = {n} <= d = {dim}: sample covariances are singular and FID is biased upwards at this "
                     "size; compare FIDs only at equal n and d (KID is unbiased)")
    if n == len(real) and n == len(fake):
        notes.append("both sets used whole: the repeats do not differ")
    if notes:
        out["note"] = "; ".join(notes)
    return out


def pixel_stats(images: np.ndarray) -> dict:
    x = images.astype(np.float64) / 255
    hist = np.histogram(x, bins=16, range=(0, 1))[0]
    return {"mean": float(x.mean()), "std": float(x.std()), "per_image_mean_std": float(x.mean((1, 2)).std()),
            "histogram16": (hist / hist.sum()).round(5).tolist()}
