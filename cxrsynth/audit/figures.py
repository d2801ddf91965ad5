"""Audit figures: DCR histograms (synthetic vs held-out real), SSIM to own source vs to the best other
real image, and the synthetic images closest to their sources shown beside them."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from ..plotting import plt, save_figure as _save


def write_all(out: Path, parts: list, train_px: np.ndarray, dcr_held: np.ndarray) -> list[Path]:
    dcr_syn = np.concatenate([p[1]["dcr"] for p in parts])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.histogram_bin_edges(np.concatenate([dcr_syn, dcr_held]) if len(dcr_held) else dcr_syn, bins=30)
    ax.hist(dcr_syn, bins=bins, alpha=0.6, density=True, label="synthetic -> training")
    if len(dcr_held):
        ax.hist(dcr_held, bins=bins, alpha=0.6, density=True, label="held-out real -> training")
        ax.axvline(np.percentile(dcr_held, 5), color="k", ls="--", lw=1, label="held-out 5th percentile")
    ax.set(xlabel="distance to closest training record (embedding)", ylabel="density", title="Distance to closest record")
    ax.legend(fontsize=8)
    figs = [_save(fig, out / "dcr.png")]

    own = np.concatenate([p[2]["ssim_source"] for p in parts])
    other = np.concatenate([p[2]["ssim_best_other"] for p in parts])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.linspace(min(own.min(), other.min()), 1, 30)
    ax.hist(own, bins=bins, alpha=0.6, label="SSIM to own source")
    ax.hist(other, bins=bins, alpha=0.6, label="SSIM to most similar other real image")
    ax.set(xlabel="SSIM", ylabel="images", title="Similarity of synthetic images to real ones")
    ax.legend(fontsize=8)
    figs.append(_save(fig, out / "ssim.png"))

    # the synthetic images most similar to their own sources, beside them
    cands = []
    for link, _, sim, *_rest, px, src in parts:
        for k in range(len(px)):
            cands.append((sim["margin"][k], px[k], train_px[src[k]], sim["ssim_source"][k]))
    cands.sort(key=lambda c: -c[0])
    top = cands[:4]
    fig, axes = plt.subplots(len(top), 2, figsize=(4.4, 2.2 * len(top)), squeeze=False)
    for row, (margin, s, r, ss) in enumerate(top):
        axes[row][0].imshow(s, cmap="gray", vmin=0, vmax=255)
        axes[row][0].set_title(f"synthetic (SSIM {ss:.2f})", fontsize=8)
        axes[row][1].imshow(r, cmap="gray", vmin=0, vmax=255)
        axes[row][1].set_title(f"its source (margin {margin:+.2f})", fontsize=8)
        for a in axes[row]:
            a.axis("off")
    fig.suptitle("Closest to their sources", fontsize=10)
    figs.append(_save(fig, out / "nearest_pairs.png"))
    return figs


def report_section(path: Path, result: dict, figs: list[Path]) -> Path:
    items = "".join(f"<li><b>{html.escape(v['name'])}</b>: {html.escape(v['verdict'])} ({html.escape(v['detail'])})</li>"
                    for v in result["summary"]["verdicts"])
    imgs = "".join(f'<figure><img alt="{p.stem}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
                   f"<figcaption>audit: {p.stem}</figcaption></figure>" for p in figs)
    q = result["quality"]["synthetic_vs_real_covid"]
    page = (f"<h2>Audit: privacy and quality</h2><p>{html.escape(result['summary']['text'].replace('**', ''))}</p><ul>{items}</ul>"
            f"<p>Quality against real COVID-19 ({html.escape(result['quality']['extractor'])}): FID {q['fid']}, "
            f"KID {q['kid_mean']}, precision {q.get('precision')}, recall {q.get('recall')}, density {q.get('density')}, "
            f"coverage {q.get('coverage')}</p>{imgs}")
    path.write_text(page)
    return path
