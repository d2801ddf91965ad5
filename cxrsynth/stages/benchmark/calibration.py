"""Calibration per arm: expected calibration error and a reliability diagram.

Why: the synthetic arms add COVID-19 positives and so shift the class prior the classifier learns
(train skew 2.1 -> 0.7 in the sample). Their scores then overstate the COVID-19 probability on a test
set with the real prior, which AUROC cannot see and a 0.5 cut turns into "more sensitivity". ECE and
calibration-in-the-large (mean score minus prevalence) make that shift visible per arm.

ECE: ``N_BINS`` equal-width bins of the score on [0, 1] (the last bin closed), ``sum_b (n_b / n) *
|mean score_b - share of COVID-19_b|``, over the test images of one run; the arm's value is the mean
over its seeds. The reliability diagram pools an arm's seeds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...measure import metrics as M

N_BINS = 10
METHOD = f"ECE over {N_BINS} equal-width score bins from 0 to 1, test images, mean over seeds"


def reliability(y_true, scores, n_bins: int = N_BINS) -> dict:
    """Per equal-width bin: its count, mean score and observed share of positives (None when empty);
    the ECE and calibration-in-the-large."""
    y, s = np.asarray(y_true, float), np.clip(np.asarray(scores, float), 0, 1)
    idx = np.minimum((s * n_bins).astype(int), n_bins - 1)
    count, conf, obs = [], [], []
    for b in range(n_bins):
        m = idx == b
        count.append(int(m.sum()))
        conf.append(float(s[m].mean()) if m.any() else None)
        obs.append(float(y[m].mean()) if m.any() else None)
    ece = sum(c / len(y) * abs(p - o) for c, p, o in zip(count, conf, obs) if c) if len(y) else None
    return {"bins": n_bins, "count": count, "mean_score": conf, "observed": obs, "ece": ece,
            "in_the_large": float(s.mean() - y.mean()) if len(y) else None}


def arm_calibration(runs: list[dict]) -> dict:
    """ECE and calibration-in-the-large per seed, summarised; the pooled reliability curve."""
    per = [reliability(r["test_labels"], r["test_scores"]) for r in runs]
    pooled = reliability([v for r in runs for v in r["test_labels"]], [v for r in runs for v in r["test_scores"]])
    return {"ece": M.summarise_seeds([p["ece"] for p in per]),
            "in_the_large": M.summarise_seeds([p["in_the_large"] for p in per]),
            "reliability_pooled": {k: pooled[k] for k in ("count", "mean_score", "observed")}}


def calibration(results: list[dict]) -> dict:
    """Per task and arm: :func:`arm_calibration`; with the method stated."""
    out: dict = {"method": METHOD, "tasks": {}}
    for r in results:
        out["tasks"].setdefault(r["task"], {}).setdefault(r["arm"], []).append(r)
    out["tasks"] = {t: {a: arm_calibration(sorted(rs, key=lambda r: r["seed"])) for a, rs in arms.items()}
                    for t, arms in out["tasks"].items()}
    return out


def reliability_figure(path: Path, task: str, arms: dict) -> Path:
    """One panel per task: observed share of COVID-19 against mean score per bin, one line per arm,
    the diagonal for perfect calibration; the legend gives each arm's ECE."""
    from ...core.plotting import plt, save_figure

    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], color="k", lw=1, ls="--", label="perfectly calibrated")
    for arm, c in arms.items():
        rel = c["reliability_pooled"]
        pts = [(p, o) for p, o in zip(rel["mean_score"], rel["observed"]) if p is not None]
        if pts:
            ece = c["ece"]["mean"]
            ax.plot(*zip(*pts), marker="o", ms=3, label=f"{arm} (ECE {ece:.3f})" if ece is not None else arm)
    ax.set_xlabel("mean score (COVID-19) in bin")
    ax.set_ylabel("share of COVID-19 in bin")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"{task}: reliability ({N_BINS} equal-width bins, seeds pooled)", fontsize=10)
    return save_figure(fig, path)
