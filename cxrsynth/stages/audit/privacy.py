"""Privacy measures, each a pure function of embeddings (phi, Euclidean distance d) or pixels, and the
statistical tests that turn them into calibrated verdicts (``verdicts.py``).

Definitions (see ``../shared/REFERENCES.md``, "Privacy of synthetic medical images"):
- linkage rank of s: the position of its own source among the real images of the search pool, ordered
  by d(phi s, phi r) (1 = nearest); ties are split evenly (an image tied with t others at the top
  counts 1 / (t + 1) towards top-1), so they favour neither the attacker nor the release. Its null is
  not 1 / pool size: an image translated from a normal X-ray lies near normal X-rays, and its source is
  one of them. :func:`shuffled_chance` is the top-1 rate expected if each image's source were another
  image's source of the same config (sources shuffled within config), given where the images lie;
  it equals 1 / pool size when every pool image is the source of one image;
- DCR(s) = min over pool images r of d(phi s, phi r); NNDR(s) = d1 / d2 to the two nearest pool images;
- authenticity (Alaa et al. 2022), from the definition for sets of unequal size: with r* the nearest
  pool image to s, s is authentic when d(s, r*) > d(r*, nearest other pool image);
- each of these is computed in the same way for new real images (a held-out set, patient-disjoint from
  training), which is the reference a verdict is calibrated against;
- SSIM (scikit-image's definition: data range 1, Gaussian window sigma 1.5, population covariance;
  :func:`ssim_many` computes the same numbers in batches) to the own source and to the ``k`` most
  similar other real images (shortlisted by embedding). 1 / (k + 1) is *not* the rate at which an
  unrelated source wins: the ``k`` others are chosen as nearest to the image, the source is not, so an
  unrelated source wins far less often. The null is measured instead (:func:`null_comparison`): the
  identical procedure on new real images, each given a random training image as pseudo-source.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

CHUNK = 512
TIE_RTOL = 1e-9  # distances equal to this relative tolerance are ties (duplicate images give equal rows)


def pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances (len(a), len(b)) in float64. For small sets only: see :func:`chunked`."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(d2, 0))


def chunked(a: np.ndarray, b: np.ndarray):
    """Yield (start, distances of a[start:start+CHUNK] to all of b): memory stays CHUNK x len(b)."""
    for i in range(0, len(a), CHUNK):
        yield i, pairwise(a[i:i + CHUNK], b)


# --- linkage -----------------------------------------------------------------------------------------

def linkage(syn: np.ndarray, pool: np.ndarray, source_index: np.ndarray) -> dict:
    """Rank of each synthetic image's own source (``pool[source_index[i]]``) among the whole pool, with
    each image's nearest pool image and its source (for :func:`shuffled_chance`)."""
    less = np.empty(len(syn), dtype=np.int64)
    ties = np.empty(len(syn), dtype=np.int64)
    first = np.zeros(len(syn), dtype=np.int64)
    for i, d in chunked(syn, pool):
        rows = np.arange(len(d))
        own = d[rows, source_index[i:i + len(d)]]
        tol = TIE_RTOL * np.maximum(own, 1e-12)[:, None]
        less[i:i + len(d)] = (d < own[:, None] - tol).sum(1)
        ties[i:i + len(d)] = (np.abs(d - own[:, None]) <= tol).sum(1) - 1  # the source itself is not a tie
        first[i:i + len(d)] = d.argmin(1)
    return {**rank_summary(less, ties, pool.shape[0]), "nearest": first, "source": np.asarray(source_index)}


def shuffled_chance(nearest: np.ndarray, source: np.ndarray, strata=None) -> np.ndarray:
    """Per image, the top-1 linkage credit expected under the null that its source is a random one of
    its stratum's (config's) sources: the share of the stratum's images whose source is the image's
    nearest pool image (``nearest``, ``source``: :func:`linkage`'s). Its mean is the null top-1 rate."""
    nearest, source = np.asarray(nearest, np.int64), np.asarray(source, np.int64)
    out = np.zeros(len(nearest))
    strata = np.zeros(len(nearest)) if strata is None else np.asarray(strata)
    size = int(max(nearest.max(initial=0), source.max(initial=0))) + 1
    for s in dict.fromkeys(strata.tolist()):
        k = strata == s
        out[k] = np.bincount(source[k], minlength=size)[nearest[k]] / k.sum()
    return out


def _harmonic(n: np.ndarray) -> np.ndarray:
    """H_n = sum_{j<=n} 1/j for integer arrays (exact to float precision for the sizes used here)."""
    n = np.asarray(n, dtype=np.int64)
    top = int(n.max()) if n.size else 0
    table = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, top + 1))])
    return table[n]


def rank_summary(less: np.ndarray, ties: np.ndarray, n: int) -> dict:
    """Top-1, top-5 and mean reciprocal rank with ties split evenly (the expectation under a random
    order of tied images), with their chance levels in a pool of ``n``."""
    less, ties = np.asarray(less, dtype=np.int64), np.asarray(ties, dtype=np.int64)
    width = 1 + ties
    top1 = (less == 0) / width
    top5 = np.clip((5 - less) / width, 0, 1)
    mrr = (_harmonic(less + width) - _harmonic(less)) / width if len(less) else np.zeros(0)
    ranks = less + 1 + ties / 2  # mean rank among the tied positions
    mean = lambda x: float(np.mean(x)) if len(x) else None
    return {"less": less, "ties": ties, "ranks": ranks, "top1_credit": top1, "pool_size": n, "top1": mean(top1), "top5": mean(top5),
            "mrr": mean(mrr), "ties_share": mean(ties > 0), "chance_top1": 1 / n, "chance_top5": min(5 / n, 1.0),
            "chance_mrr": float(np.sum(1.0 / np.arange(1, n + 1)) / n)}


# --- nearest neighbours, DCR, NNDR, authenticity ---------------------------------------------------------

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


def pool_radius(pool: np.ndarray) -> np.ndarray:
    """Distance from each pool image to its nearest *other* pool image (Alaa et al.'s r* radius)."""
    if len(pool) < 2:
        return np.full(len(pool), np.inf)
    return nearest(pool, pool, 1, exclude_self=True)[0][:, 0]


def closeness(query: np.ndarray, pool: np.ndarray, radius: np.ndarray) -> dict:
    """DCR, NNDR and authenticity of each query image against the pool (``radius``: :func:`pool_radius`)."""
    if not len(query):
        z = np.zeros(0)
        return {"dcr": z, "nndr": z, "authentic": z.astype(bool)}
    two, near = nearest(query, pool, 2)
    return {"dcr": two[:, 0], "nndr": two[:, 0] / np.maximum(two[:, 1], 1e-12),
            "authentic": two[:, 0] > radius[near[:, 0]]}


def closer_to_training(syn: np.ndarray, train: np.ndarray, heldout: np.ndarray, seed: int = 0) -> float | None:
    """Share of ``syn`` closer to training (subsampled to the held-out size) than to held-out images;
    about 0.5 when the images are no closer to training than to new images."""
    if not len(heldout) or not len(train) or not len(syn):
        return None
    rng = np.random.default_rng(seed)
    sub = train[rng.choice(len(train), size=min(len(train), len(heldout)), replace=False)]
    return float(np.mean(nearest(syn, sub, 1)[0][:, 0] < nearest(syn, heldout, 1)[0][:, 0]))


# --- SSIM ------------------------------------------------------------------------------------------------

SSIM_SIGMA, SSIM_TRUNCATE = 1.5, 3.5
NEAR_COPY_SSIM = 0.95


def ssim_many(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """SSIM of one uint8 image against each of a stack, exactly as ``skimage.metrics.structural_similarity``
    (data range 1, Gaussian weights, sigma 1.5, truncate 3.5, population covariance, borders cropped)."""
    ys = np.asarray(ys)
    if not len(ys):
        return np.zeros(0)
    xf = x.astype(np.float64) / 255
    yf = ys.astype(np.float64) / 255
    g2 = lambda z: gaussian_filter(z, SSIM_SIGMA, mode="reflect", truncate=SSIM_TRUNCATE)
    g3 = lambda z: gaussian_filter(z, (0, SSIM_SIGMA, SSIM_SIGMA), mode="reflect", truncate=SSIM_TRUNCATE)
    ux, uy = g2(xf), g3(yf)
    vx, vy, vxy = g2(xf * xf) - ux * ux, g3(yf * yf) - uy * uy, g3(yf * xf) - uy * ux
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    return s[:, pad:-pad, pad:-pad].mean((1, 2))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two uint8 images on [0, 1], Gaussian window (sigma 1.5), as the references prescribe."""
    return float(ssim_many(a, b[None])[0])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) / 255 - b.astype(np.float64) / 255) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def source_similarity(syn_px: np.ndarray, pool_px: np.ndarray, syn_emb: np.ndarray, pool_emb: np.ndarray,
                      source_index: np.ndarray, shortlist: int = 10) -> dict:
    """SSIM to the own source against its ``shortlist`` nearest other pool images (by embedding).

    ``win``: the credit of the own source for being the most similar of the shortlist (ties split
    evenly); ``chance``: 1 / (candidates), which is *not* the rate at which an unrelated source wins
    (the others are the image's nearest, the source is not): run the same function on new real images
    with random pseudo-sources for that (the calibrated null).
    """
    n = len(syn_px)
    own, best_other, win, chance, psnr_own = (np.zeros(n) for _ in range(5))
    if n:
        _, near = nearest(syn_emb, pool_emb, min(shortlist + 1, len(pool_emb)))
    for i in range(n):
        src = int(source_index[i])
        cand = [int(j) for j in dict.fromkeys(near[i].tolist()) if j != src][:shortlist]
        s = ssim_many(syn_px[i], pool_px[[src] + cand])
        own[i], best_other[i] = s[0], (s[1:].max() if len(cand) else -1.0)
        top = s.max()
        win[i] = (s[0] == top) / max(1, int((s == top).sum()))
        chance[i] = 1 / (1 + len(cand))
        psnr_own[i] = psnr(syn_px[i], pool_px[src])
    finite = psnr_own[np.isfinite(psnr_own)]
    return {"ssim_source": own, "ssim_best_other": best_other, "margin": own - best_other, "win": win,
            "chance": chance, "psnr_source": psnr_own,
            "ssim_source_median": float(np.median(own)) if n else None,
            "psnr_source_median": (float(np.median(finite)) if len(finite) else float("inf")) if n else None,
            "win_share": float(win.mean()) if n else None, "chance_rate": float(chance.mean()) if n else None}


def max_ssim_against(syn_px: np.ndarray, ref_px: np.ndarray, syn_emb: np.ndarray, ref_emb: np.ndarray,
                     shortlist: int = 10) -> np.ndarray:
    """For each image: the largest SSIM among its ``shortlist`` nearest references (by embedding)."""
    if not len(ref_px) or not len(syn_px):
        return np.full(len(syn_px), np.nan)
    _, near = nearest(syn_emb, ref_emb, min(shortlist, len(ref_emb)))
    return np.array([ssim_many(syn_px[i], ref_px[list(dict.fromkeys(near[i].tolist()))]).max()
                     for i in range(len(syn_px))])


# --- tests ---------------------------------------------------------------------------------------------

def clopper_pearson(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for a proportion (``successes`` rounded to a count)."""
    if n == 0:
        return (0.0, 1.0)
    k, a = int(round(successes)), (1 - level) / 2
    from scipy.stats import beta  # here, not at the top: scipy.stats takes ~0.6 s to import, and most
    # processes that import this module (generate, release) never test anything

    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def chance_test(credit: np.ndarray, chance: float) -> dict:
    """Rate of a per-image success credit (in [0, 1], ties split) against a stated chance rate: binomial
    test (one-sided, greater; credits summed and rounded to a count) and a 95% Clopper-Pearson interval of
    the difference from chance."""
    n = len(credit)
    if n == 0:
        return {"n": 0, "value": None, "reference": chance, "difference": None, "interval": None, "p_value": None}
    k = float(np.sum(credit))
    lo, hi = clopper_pearson(k, n)
    from scipy.stats import binomtest

    p = float(binomtest(int(round(k)), n, min(max(chance, 0.0), 1.0), alternative="greater").pvalue)
    value = k / n
    return {"n": n, "value": value, "reference": chance, "difference": value - chance,
            "interval": [lo - chance, hi - chance], "p_value": p}


def _boot_interval(samples: np.ndarray, level: float = 0.95) -> list[float]:
    a = (1 - level) / 2
    return [float(np.quantile(samples, a)), float(np.quantile(samples, 1 - a))]


def _strata(syn: np.ndarray, ref, strata) -> list[tuple[np.ndarray, np.ndarray]]:
    """(synthetic values, reference values) per stratum present among the synthetic images.

    ``strata`` (one label per synthetic image) with ``ref`` a dict {label: reference values}: each
    synthetic image is compared with the reference of its own stratum (e.g. its config's label-matched
    held-out images); ``strata`` None: one stratum, ``ref`` an array."""
    if strata is None:
        return [(syn, np.asarray(ref, float))]
    strata = np.asarray(strata)
    return [(syn[strata == s], np.asarray(ref.get(s, ()), float)) for s in dict.fromkeys(strata.tolist())]


def _empty(n: int, n_ref: int, **extra) -> dict:
    return {"n": n, "n_reference": n_ref, "value": None, "reference": None, "difference": None, "interval": None,
            **extra}


def share_difference(syn_flags: np.ndarray, ref_flags, boots: int = 2000, seed: int = 0, strata=None) -> dict:
    """Share of synthetic images with a property minus the same share among new real images, with a
    95% bootstrap interval (both sets resampled, within each stratum). With ``strata`` (one label per
    synthetic image; ``ref_flags`` a dict {label: flags}) the reference share is the strata's shares
    weighted as the synthetic images are, so each image is held against its own kind of new image."""
    syn_flags = np.asarray(syn_flags, float)
    parts = _strata(syn_flags, ref_flags, strata)
    n_ref = sum(len(r) for _, r in parts)
    if not len(syn_flags) or any(not len(r) for _, r in parts):
        return _empty(len(syn_flags), n_ref)
    rng = np.random.default_rng(seed)
    w = np.array([len(s) for s, _ in parts]) / len(syn_flags)
    v = float(syn_flags.mean())
    r = float(sum(wk * rf.mean() for wk, (_, rf) in zip(w, parts)))
    diffs = np.zeros(boots)
    for wk, (sf, rf) in zip(w, parts):
        diffs += wk * (sf[rng.integers(0, len(sf), (boots, len(sf)))].mean(1)
                       - rf[rng.integers(0, len(rf), (boots, len(rf)))].mean(1))
    return {"n": len(syn_flags), "n_reference": n_ref, "value": v, "reference": r, "difference": v - r,
            "interval": _boot_interval(diffs)}


def exact_two_proportion(syn_credit: np.ndarray, ref_credit, strata=None) -> float | None:
    """One-sided p that the synthetic share exceeds the reference share: Fisher's exact test, stratified
    (the conditional test of a common odds ratio of 1: the synthetic successes summed over strata, whose
    null law, given each stratum's margins, is a convolution of hypergeometric laws). Credits (ties
    split) are summed and rounded to counts per stratum."""
    from scipy.stats import hypergeom

    syn_credit = np.asarray(syn_credit, float)
    parts = _strata(syn_credit, ref_credit, strata)
    if not len(syn_credit) or any(not len(r) for _, r in parts):
        return None
    law, observed = np.ones(1), 0
    for s, r in parts:
        k1, k0 = int(round(s.sum())), int(round(r.sum()))
        n1, total, succ = len(s), len(s) + len(r), k1 + k0
        lo, hi = max(0, n1 + succ - total), min(n1, succ)
        pmf = np.zeros(hi + 1)
        pmf[lo:] = hypergeom.pmf(np.arange(lo, hi + 1), total, succ, n1)
        law, observed = np.convolve(law, pmf), observed + k1
    return float(min(1.0, law[observed:].sum()))


def null_comparison(syn_credit: np.ndarray, null_credit, boots: int = 2000, seed: int = 0, strata=None) -> dict:
    """A share against its calibrated null (the same procedure run on new real images, each given a
    random pseudo-source): :func:`share_difference`'s interval and :func:`exact_two_proportion`'s p."""
    out = share_difference(syn_credit, null_credit, boots, seed, strata)
    out["p_value"] = exact_two_proportion(syn_credit, null_credit, strata) if out["value"] is not None else None
    return out


def tail_difference(syn: np.ndarray, ref, q: float = 5.0, boots: int = 2000, seed: int = 0, strata=None) -> dict:
    """Share of synthetic values below the ``q``-th percentile of new real images' values, minus the same
    share for the new real images themselves (about q%), with a 95% bootstrap interval that resamples both
    sets and so carries the uncertainty of the percentile. With ``strata`` (see :func:`share_difference`)
    each synthetic image is held against the percentile of its own stratum's reference."""
    syn = np.asarray(syn, float)
    parts = _strata(syn, ref, strata)
    n_ref = sum(len(r) for _, r in parts)
    if not len(syn) or any(not len(r) for _, r in parts):
        return _empty(len(syn), n_ref, cutoff=None)
    w = np.array([len(s) for s, _ in parts]) / len(syn)
    cuts = [float(np.percentile(r, q)) for _, r in parts]
    v = float(sum(wk * np.mean(s < c) for wk, (s, _), c in zip(w, parts, cuts)))
    r = float(sum(wk * np.mean(rf < c) for wk, (_, rf), c in zip(w, parts, cuts)))
    rng = np.random.default_rng(seed)
    diffs = np.zeros(boots)
    for b in range(boots):
        for wk, (sv, rv) in zip(w, parts):
            rr = rv[rng.integers(0, len(rv), len(rv))]
            sb = sv[rng.integers(0, len(sv), len(sv))]
            c = np.percentile(rr, q)
            diffs[b] += wk * (np.mean(sb < c) - np.mean(rr < c))
    return {"n": len(syn), "n_reference": n_ref, "value": v, "reference": r, "difference": v - r,
            "interval": _boot_interval(diffs), "cutoff": cuts[0] if len(cuts) == 1 else cuts}
