"""A classifier two-sample test: can a small linear model tell two sets of images apart?

Used by the benchmark (shortcut controls: collection vs collection, real vs synthetic) and by the audit
(fidelity: real vs synthetic against its baselines), so it sits below both. Out-of-fold AUROC of a
logistic regression on small z-scored thumbnails, with folds grouped by patient, so no image is scored by
a model that saw its patient; 0.5 means the sets cannot be told apart.

A linear probe on 32 px thumbnails can see how an image was shrunk (a direct decode to 32 px and a
bilinear shrink of a 128 px image differ in blur). So every image a probe compares reaches 32 px by one
path, :func:`probe_pixels`: decoded (real) or read (synthetic) at the same array size first, then
shrunk by :func:`resample`.
"""

from __future__ import annotations

import numpy as np

from . import metrics as M

PROBE_SIDE = 32  # pixels per side of the probe's input: small on purpose (a linear probe, not a model)
PROBE_MAX = 200  # images per side at most


def resample(images: np.ndarray, side: int) -> np.ndarray:
    """uint8 (N, H, W) -> float32 (N, side, side) in [0, 1] by PIL bilinear: the one path by which real,
    untranslated and synthetic images reach a smaller input size (the probe's 32 px)."""
    from PIL import Image

    if images.shape[-1] == side and images.shape[-2] == side:
        return images.astype(np.float32) / 255
    return np.stack([np.asarray(Image.fromarray(a).resize((side, side), Image.Resampling.BILINEAR), np.float32)
                     for a in images]) / 255 if len(images) else np.zeros((0, side, side), np.float32)


def probe_pixels(images: np.ndarray) -> np.ndarray:
    """uint8 (N, S, S), every set at the same S -> the probe's input, float32 (N, PROBE_SIDE ** 2)."""
    return resample(np.asarray(images), PROBE_SIDE).reshape(len(images), -1)


def cap(n: int, cap: int, seed: int) -> np.ndarray:
    idx = np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=cap, replace=False)) if n > cap else idx


def probe(x_a: np.ndarray, x_b: np.ndarray, groups_a: list[str], groups_b: list[str], bootstrap: int,
          seed: int = 0) -> dict:
    """Out-of-fold AUROC of a logistic regression telling group ``b`` (1) from ``a`` (0), folds by patient.

    Each image is scored by a model that never saw its patient; the interval resamples patients.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([x_a, x_b])
    y = np.r_[np.zeros(len(x_a)), np.ones(len(x_b))].astype(int)
    groups = np.asarray(list(groups_a) + list(groups_b))
    n_folds = min(5, len(set(groups_a)), len(set(groups_b)))
    if n_folds < 2:
        return {"n_a": len(x_a), "n_b": len(x_b), "auroc": None, "auroc_ci95": None,
                "note": "too few patients on one side for a cross-validated probe"}
    scores = np.zeros(len(y))
    for tr, te in StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed).split(x, y, groups):
        if len(set(y[tr].tolist())) < 2:
            scores[te] = 0.5
            continue
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000))
        scores[te] = clf.fit(x[tr], y[tr]).predict_proba(x[te])[:, 1]
    return {"n_a": len(x_a), "n_b": len(x_b), "folds": n_folds, "auroc": M.auroc(y, scores),
            "auroc_ci95": M.bootstrap_auroc(y, scores, groups.tolist(), bootstrap, seed) if bootstrap else None}
