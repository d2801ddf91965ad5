"""Figures of the benchmark (matplotlib, Agg): confidence scores of the COVID-19 test images with the 0.5
line (paper Figs. 4-7), ROC and PR curves, Grad-CAM maps of correctly classified COVID-19 test images
on the last convolutional layer (Fig. 1; pytorch-grad-cam), and the paper's 2-D UMAP of the
classifier's pooled features per arm (Fig. 8: 180 training images per group, n_neighbors 15)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from ...core.plotting import plt, save_figure as _save
from ...core.runtime import torch_threads


def confidence_scores(path: Path, task: str, runs: dict[str, dict]) -> Path:
    """Softmax COVID-19 score of each COVID-19 test image, per arm (seed 0), with 0.5 and the threshold."""
    fig, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 3), sharey=True, squeeze=False)
    for ax, (arm, r) in zip(axes[0], runs.items()):
        s = np.asarray(r["test_scores"])[np.asarray(r["test_labels"]) == 1]
        ax.scatter(np.arange(len(s)), s, s=12, c=np.where(s >= r["threshold"], "tab:green", "tab:red"))
        ax.axhline(0.5, color="k", lw=1, ls="--", label="0.5")
        if abs(r["threshold"] - 0.5) > 1e-9:
            ax.axhline(r["threshold"], color="tab:blue", lw=1, label=f"threshold {r['threshold']:.2f}")
        ax.set_title(arm, fontsize=9)
        ax.set_xlabel("COVID-19 test image")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("confidence (COVID-19)")
    fig.suptitle(f"{task}: confidence scores of the COVID-19 test images", fontsize=10)
    return _save(fig, path)


def roc_pr(path: Path, task: str, runs: dict[str, dict]) -> Path:
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4))
    for arm, r in runs.items():
        y, s = np.asarray(r["test_labels"]), np.asarray(r["test_scores"])
        if len(set(y.tolist())) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, s)
        p, rc, _ = precision_recall_curve(y, s)
        auc = r["test"]["auroc"]
        a.plot(fpr, tpr, label=f"{arm} (AUROC {auc:.3f})")
        b.plot(rc, p, label=f"{arm} (AUPRC {r['test']['auprc']:.3f})")
    a.plot([0, 1], [0, 1], "k:", lw=1)
    a.set(xlabel="1 - specificity", ylabel="sensitivity", title=f"{task}: ROC")
    b.set(xlabel="recall (sensitivity)", ylabel="precision", title=f"{task}: precision-recall")
    a.legend(fontsize=7)
    b.legend(fontsize=7)
    return _save(fig, path)


def gradcam(path: Path, task: str, inputs: dict[str, dict]) -> Path:
    """Grad-CAM maps computed by each cell (``inputs[arm]``: its ``figure_inputs.npz`` arrays) over the
    correctly classified COVID-19 test images they were computed on."""
    n = max((len(v["cam_images"]) for v in inputs.values()), default=0)
    fig, axes = plt.subplots(len(inputs), max(n, 1), figsize=(2.2 * max(n, 1), 2.3 * len(inputs)), squeeze=False)
    for row, (arm, v) in enumerate(inputs.items()):
        for col in range(max(n, 1)):
            ax = axes[row][col]
            ax.axis("off")
            if not len(v["cam_images"]) and col == 0:
                ax.text(0.5, 0.5, f"{arm}:\nno COVID-19 test image\nclassified correctly", ha="center", va="center", fontsize=8)
            if col >= len(v["cam_images"]):
                continue
            sc = float(v["cam_scores"][col])
            if not int(v["cam_layer"]):
                ax.text(0.5, 0.5, f"{arm}:\nno convolutional layer\nfor Grad-CAM", ha="center", va="center", fontsize=8)
                continue
            ax.imshow(v["cam_images"][col].astype(np.float32), cmap="gray")
            ax.imshow(v["cam_maps"][col].astype(np.float32), cmap="jet", alpha=0.35)
            ax.set_title(f"{arm}\nscore {sc:.2f}" if col == 0 else f"score {sc:.2f}", fontsize=7)
    fig.suptitle(f"{task}: Grad-CAM of correctly classified COVID-19 test images", fontsize=10)
    return _save(fig, path)


GROUPS = {0: ("negative (real)", "tab:blue"), 1: ("COVID-19 (real)", "tab:red"), 2: ("COVID-19 (synthetic)", "tab:orange")}


def umap_features(path: Path, task: str, feats: dict[str, tuple[np.ndarray, np.ndarray]], seed: int = 0,
                  n_neighbors: int = 15) -> Path:
    """The paper's Fig. 8: 2-D UMAP (n_neighbors 15) of pooled features of training images, one panel
    per arm; ``feats[arm] = (features, group)`` with group 0 negative, 1 real COVID-19, 2 synthetic."""
    with warnings.catch_warnings():  # "Tensorflow not installed; ParametricUMAP will be unavailable"
        warnings.simplefilter("ignore")
        import umap

    fig, axes = plt.subplots(1, len(feats), figsize=(3.3 * len(feats), 3.2), squeeze=False)
    for ax, (arm, (x, g)) in zip(axes[0], feats.items()):
        if len(x) >= 5:
            # "n_jobs overridden to 1 by setting random_state": chosen, not news; numba (UMAP) would leave
            # torch on every core (runtime.torch_threads)
            with warnings.catch_warnings(), torch_threads():
                warnings.filterwarnings("ignore", category=UserWarning, module=r"umap(\.|$)")
                emb = umap.UMAP(n_neighbors=min(n_neighbors, len(x) - 1), n_components=2, random_state=seed,
                                init="random").fit_transform(x)
            for lab, (name, color) in GROUPS.items():
                m = g == lab
                if m.any():
                    ax.scatter(emb[m, 0], emb[m, 1], s=8, c=color, label=f"{name} ({int(m.sum())})")
            ax.legend(fontsize=6)
        ax.set_title(arm, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{task}: UMAP of pooled classifier features (training images, real vs synthetic)", fontsize=10)
    return _save(fig, path)
