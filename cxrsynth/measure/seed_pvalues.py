"""One p-value for a two-proportion question asked of several seeds that scored the same images.

Each seed of a benchmark arm calls the same images (say, same-source negatives and test negatives)
COVID-19 or not, at its own threshold. The seeds are not independent experiments, since the images are
shared, and the median of their p-values is no p-value. It can be anti-conservative: under some
dependence, P(median p <= t) reaches 2t, by Markov's inequality on how many seeds fall below t.

:func:`pooled_permutation_p` tests once. Each image's share of seeds that called it is its outcome.
The one-sided test permutes images between the two sets. It is exact under the same assumption as
Fisher's (images independent, exchangeable between the sets under the null), whatever the seeds' dependence,
because each image enters once. With one seed, or seeds that agree on every image, the shares are 0/1 and
the test *is* Fisher's exact test (run exactly). Otherwise it runs by Monte Carlo, with p = (1 + hits) /
(1 + draws), which is valid for any number of draws.

A stratified (Cochran-Mantel-Haenszel) test across seeds would need independent strata. Here every
stratum holds the same images, so it would count each image once per seed and overstate the evidence
k-fold.

:func:`order_statistic_p` is the fallback for runs that kept only their own p-values. The k-th smallest
of K p-values times K/k is valid under any dependence (Markov, as above; Rüschendorf 1982, Vovk & Wang
2020). With k = ceil(K/2) it is the median, made valid: twice the median for even K, 2K/(K+1) times it
for odd K, and the p itself for K = 1.
"""

from __future__ import annotations

import math

import numpy as np

#: Monte Carlo draws of the permutation test; its p is never below 1/(1 + draws)
PERMUTATION_DRAWS = 20_000
_CHUNK = 1_000  # draws per block: memory is chunk x images


def two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float | None:
    """One-sided Fisher exact test that the rate k1/n1 exceeds k2/n2 (images taken as independent): one
    seed's test, and the pooled test's exact case."""
    from scipy.stats import fisher_exact

    if not n1 or not n2:
        return None
    return float(fisher_exact([[k1, n1 - k1], [k2, n2 - k2]], alternative="greater").pvalue)


def per_image_shares(hits) -> np.ndarray:
    """Each image's share of seeds that called it (``hits``: 0/1 per image, or one row per seed)."""
    return np.atleast_2d(np.asarray(hits, dtype=float)).mean(axis=0)


def pooled_permutation_p(hits_a, hits_b, draws: int = PERMUTATION_DRAWS, seed: int = 0) -> tuple[float | None, str]:
    """One-sided p that images of ``a`` are called more often than those of ``b``, over all seeds at once.

    ``hits_a`` and ``hits_b`` hold one row per seed (the same seeds) or one 0/1 list. Returns the p and
    how it was made, or (None, why) when a side has no images or the seeds differ.
    """
    a, b = (np.atleast_2d(np.asarray(h, dtype=float)) for h in (hits_a, hits_b))
    if a.shape[1] == 0 or b.shape[1] == 0:
        return None, "no images on a side"
    if a.shape[0] != b.shape[0]:
        return None, "the two sets were scored by different seeds"
    ra, rb = a.mean(axis=0), b.mean(axis=0)
    x = np.r_[ra, rb]
    if np.all((x == 0) | (x == 1)):  # 0/1 shares: the permutation test is Fisher's, computed exactly
        p = two_proportion_p(int(ra.sum()), len(ra), int(rb.sum()), len(rb))
        return p, "Fisher exact" + (" (the seeds agree on every image)" if a.shape[0] > 1 else "")
    # with the total fixed, the difference of means grows with a's sum: compare sums
    observed, n_a, rng, hits = ra.sum(), len(ra), np.random.default_rng([seed, 7]), 0
    for start in range(0, draws, _CHUNK):
        m = min(_CHUNK, draws - start)
        pick = rng.random((m, len(x))).argpartition(n_a - 1, axis=1)[:, :n_a]
        hits += int(np.sum(x[pick].sum(axis=1) >= observed - 1e-9))
    return (1 + hits) / (1 + draws), f"permutation test of per-image shares over {a.shape[0]} seeds ({draws} draws)"


def order_statistic_p(pvalues: list[float]) -> float | None:
    """The median of K dependent p-values made valid: the k-th smallest times K/k, k = ceil(K/2), at most 1."""
    ps = sorted(float(p) for p in pvalues if p is not None)
    if not ps:
        return None
    k = math.ceil(len(ps) / 2)
    return min(1.0, ps[k - 1] * len(ps) / k)
