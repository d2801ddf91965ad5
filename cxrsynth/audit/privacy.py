"""Privacy measures, each a pure function of embeddings (phi, Euclidean distance d) or pixels.

Definitions (see ``../shared/REFERENCES.md``, "Privacy of synthetic medical images"):
- linkage rank of s: the position of its own source among all real images of the same split, ordered
  by d(phi s, phi r) (1 = nearest); top-1, top-5 and mean reciprocal rank, against chance (1/N, 5/N,
  H_N / N);
- DCR(s) = min over training images r of d(phi s, phi r); held-out real images give the reference
  distribution (its 5th percentile; the share of synthetic images below it should be about 5%);
- NNDR(s) = d1 / d2 to the two nearest training images;
- authenticity (Alaa et al. 2022), from the definition for sets of unequal size: with r* the nearest
  training image to s, s is authentic when d(s, r*) > d(r*, nearest other training image);
- closer-to-training share: with the training pool subsampled to the held-out size, the share of s
  closer to training than to held-out images (about 0.5 when nothing is memorised);
- SSIM (scikit-image, data range 1, Gaussian window sigma 1.5) and PSNR to the own source, and the
  margin over the most similar other real image (shortlisted by embedding).
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


CHUNK = 512


def pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances (len(a), len(b)) in float64. For small sets only: see :func:`chunked`."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(d2, 0))


def chunked(a: np.ndarray, b: np.ndarray):
    """Yield (start, distances of a[start:start+CHUNK] to all of b): memory stays CHUNK x len(b)."""
    for i in range(0, len(a), CHUNK):
        yield i, pairwise(a[i:i + CHUNK], b)


def linkage(syn: np.ndarray, pool: np.ndarray, source_index: np.ndarray) -> dict:
    """Rank of each synthetic image's own source (``pool[source_index[i]]``) among the whole pool."""
    ranks = np.empty(len(syn), dtype=np.int64)
    for i, d in chunked(syn, pool):
        rows = np.arange(len(d))
        own = d[rows, source_index[i:i + len(d)]]
        ranks[i:i + len(d)] = 1 + (d < own[:, None]).sum(1)  # ties count in the image's favour
    return rank_summary(ranks, pool.shape[0])


def rank_summary(ranks: np.ndarray, n: int) -> dict:
    """Top-1, top-5 and mean reciprocal rank of linkage ranks in a pool of ``n``, and their chance levels."""
    return {"ranks": ranks, "pool_size": n, "top1": float(np.mean(ranks == 1)), "top5": float(np.mean(ranks <= 5)),
            "mrr": float(np.mean(1.0 / ranks)), "chance_top1": 1 / n, "chance_top5": min(5 / n, 1.0),
            "chance_mrr": float(np.sum(1.0 / np.arange(1, n + 1)) / n)}


def nearest(a: np.ndarray, b: np.ndarray, k: int = 2, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices of the ``k`` nearest rows of ``b`` for every row of ``a`` (chunked)."""
    dist = np.empty((len(a), k))
    idx = np.empty((len(a), k), dtype=np.int64)
    for i, d in chunked(a, b):
        if exclude_self:
            d[np.arange(len(d)), np.arange(i, i + len(d))] = np.inf
        kk = min(k, d.shape[1])
        part = np.argpartition(d, kk - 1, axis=1)[:, :kk]
        order = np.take_along_axis(d, part, 1).argsort(1)
        idx[i:i + len(d), :kk] = np.take_along_axis(part, order, 1)
        dist[i:i + len(d), :kk] = np.take_along_axis(d, idx[i:i + len(d), :kk], 1)
        if kk < k:
            dist[i:i + len(d), kk:] = dist[i:i + len(d), kk - 1:kk]
            idx[i:i + len(d), kk:] = idx[i:i + len(d), kk - 1:kk]
    return dist, idx


def dcr(syn: np.ndarray, train: np.ndarray, heldout: np.ndarray) -> dict:
    two, near = nearest(syn, train, 2)
    dcr_syn, nndr = two[:, 0], two[:, 0] / np.maximum(two[:, 1], 1e-12)
    dcr_held = nearest(heldout, train, 1)[0][:, 0] if len(heldout) else np.zeros(0)
    # authenticity: r* = nearest training image of s; compare with r*'s distance to its nearest other training image
    r_nn = nearest(train, train, 1, exclude_self=True)[0][:, 0] if len(train) > 1 else np.full(len(train), np.inf)
    authentic = dcr_syn > r_nn[near[:, 0]]
    return dcr_summary(dcr_syn, nndr, authentic, dcr_held)


def dcr_summary(dcr_syn: np.ndarray, nndr: np.ndarray, authentic: np.ndarray, dcr_held: np.ndarray) -> dict:
    p5 = float(np.percentile(dcr_held, 5)) if len(dcr_held) else None
    return {"dcr": dcr_syn, "nndr": nndr, "authentic": authentic, "dcr_heldout": dcr_held,
            "heldout_p5": p5, "share_below_heldout_p5": float(np.mean(dcr_syn < p5)) if p5 is not None else None,
            "synthetic_p5": float(np.percentile(dcr_syn, 5)) if len(dcr_syn) else None,
            "authentic_share": float(np.mean(authentic)) if len(authentic) else None,
            "nndr_median": float(np.median(nndr)) if len(nndr) else None}


def closer_to_training(syn: np.ndarray, train: np.ndarray, heldout: np.ndarray, seed: int = 0) -> float | None:
    if not len(heldout) or not len(train):
        return None
    rng = np.random.default_rng(seed)
    sub = train[rng.choice(len(train), size=min(len(train), len(heldout)), replace=False)]
    return float(np.mean(nearest(syn, sub, 1)[0][:, 0] < nearest(syn, heldout, 1)[0][:, 0]))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two uint8 images on [0, 1], Gaussian window (sigma 1.5), as the references prescribe."""
    return float(structural_similarity(a.astype(np.float64) / 255, b.astype(np.float64) / 255, data_range=1.0,
                                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    if np.array_equal(a, b):
        return float("inf")
    return float(peak_signal_noise_ratio(a.astype(np.float64) / 255, b.astype(np.float64) / 255, data_range=1.0))


def source_similarity(syn_px: np.ndarray, pool_px: np.ndarray, syn_emb: np.ndarray, pool_emb: np.ndarray,
                      source_index: np.ndarray, shortlist: int = 10) -> dict:
    """SSIM / PSNR to the own source, and the margin over the most similar *other* shortlisted real image."""
    _, near = nearest(syn_emb, pool_emb, shortlist + 1)
    own_ssim, own_psnr, margin, best_other = [], [], [], []
    for i in range(len(syn_px)):
        src = int(source_index[i])
        cand = [int(j) for j in near[i] if j != src][:shortlist]
        s_own = ssim(syn_px[i], pool_px[src])
        s_other = max((ssim(syn_px[i], pool_px[j]) for j in cand), default=-1.0)
        own_ssim.append(s_own)
        own_psnr.append(psnr(syn_px[i], pool_px[src]))
        best_other.append(s_other)
        margin.append(s_own - s_other)
    return similarity_summary(np.asarray(own_ssim), np.asarray(own_psnr), np.asarray(best_other), np.asarray(margin))


def similarity_summary(own_ssim: np.ndarray, own_psnr: np.ndarray, best_other: np.ndarray, margin: np.ndarray) -> dict:
    finite = own_psnr[np.isfinite(own_psnr)]
    return {"ssim_source": own_ssim, "psnr_source": own_psnr, "ssim_best_other": best_other,
            "margin": margin, "ssim_source_median": float(np.median(own_ssim)),
            "psnr_source_median": float(np.median(finite)) if len(finite) else float("inf"),
            "share_positive_margin": float(np.mean(margin > 0))}


def max_ssim_against(syn_px: np.ndarray, ref_px: np.ndarray, syn_emb: np.ndarray, ref_emb: np.ndarray,
                     shortlist: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """For each synthetic image: the largest SSIM among its ``shortlist`` nearest references, and its DCR to them."""
    if not len(ref_px):
        return np.zeros(len(syn_px)), np.full(len(syn_px), np.inf)
    dist, near = nearest(syn_emb, ref_emb, shortlist)
    best = np.array([max(ssim(syn_px[i], ref_px[j]) for j in dict.fromkeys(near[i].tolist())) for i in range(len(syn_px))])
    return best, dist[:, 0]
