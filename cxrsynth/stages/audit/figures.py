"""Audit figures: DCR histograms (synthetic vs new real images), SSIM to own source vs to the most
similar other real image, and the synthetic images closest to their sources shown beside them."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from ...core.paths import atomic_write
from ...core.plotting import plt
from ...core.plotting import save_figure as _save
from .fidelity import report_html


def write_all(out: Path, m: dict, syn_px: np.ndarray, pool_px: np.ndarray, src: np.ndarray) -> list[Path]:
    """``m``: one embedding's per-image measures (:func:`cxrsynth.stages.audit.verdicts.per_image`)."""
    dcr_syn, dcr_held = m["syn"]["dcr"], m["held"]["dcr"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.histogram_bin_edges(np.concatenate([dcr_syn, dcr_held]) if len(dcr_held) else dcr_syn, bins=30)
    ax.hist(dcr_syn, bins=bins, alpha=0.6, density=True, label="synthetic -> training")
    if len(dcr_held):
        ax.hist(dcr_held, bins=bins, alpha=0.6, density=True, label="new real (held-out) -> training")
        ax.axvline(np.percentile(dcr_held, 5), color="k", ls="--", lw=1, label="new real 5th percentile")
    ax.set(xlabel="distance to closest training record (embedding)", ylabel="density", title="Distance to closest record")
    ax.legend(fontsize=8)
    figs = [_save(fig, out / "dcr.png")]

    own, other = m["similarity"]["ssim_source"], m["similarity"]["ssim_best_other"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.linspace(min(own.min(), other.min()), 1, 30)
    ax.hist(own, bins=bins, alpha=0.6, label="SSIM to own source")
    ax.hist(other, bins=bins, alpha=0.6, label="SSIM to most similar other real image (shortlist)")
    ax.set(xlabel="SSIM", ylabel="images", title="Similarity of synthetic images to real ones")
    ax.legend(fontsize=8)
    figs.append(_save(fig, out / "ssim.png"))

    margin = m["similarity"]["margin"]
    top = np.argsort(-margin)[:4]
    fig, axes = plt.subplots(len(top), 2, figsize=(4.4, 2.2 * len(top)), squeeze=False)
    for row, k in enumerate(top):
        axes[row][0].imshow(syn_px[k], cmap="gray", vmin=0, vmax=255)
        axes[row][0].set_title(f"synthetic (SSIM {own[k]:.2f})", fontsize=8)
        axes[row][1].imshow(pool_px[src[k]], cmap="gray", vmin=0, vmax=255)
        axes[row][1].set_title(f"its source (margin {margin[k]:+.2f})", fontsize=8)
        for a in axes[row]:
            a.axis("off")
    fig.suptitle("Closest to their sources", fontsize=10)
    figs.append(_save(fig, out / "nearest_pairs.png"))
    return figs


def _fmt(x) -> str:
    if x is None:
        return "n/a"
    return f"{x['mean']:.4g} ± {x['std']:.2g}" if isinstance(x, dict) else f"{x:.4g}"


def report_section(path: Path, result: dict, figs: list[Path]) -> Path:
    from .verdicts import caveat_after

    items = "".join(f"<li><b>{html.escape(v['name'])}</b>: {html.escape(v['verdict'])} ({html.escape(v['detail'])})</li>"
                    + (f"<li><i>{html.escape(caveat_after(v))}</i></li>" if caveat_after(v) else "")
                    for v in result["summary"]["verdicts"])
    imgs = "".join(f'<figure><img alt="{p.stem}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
                   f"<figcaption>audit: {p.stem}</figcaption></figure>" for p in figs)
    q = result["quality"]["synthetic_vs_real_covid"]
    page = (f"<h2>Audit: privacy and quality</h2><p>{html.escape(result['summary']['text'].replace('**', ''))}</p><ul>{items}</ul>"
            f"<p>Quality against real COVID-19 ({html.escape(result['quality']['extractor'])}; {q['repeats']} equal-size "
            f"subsamples of n = {q['n']}, mean ± sd): KID {_fmt(q.get('kid'))}, FID {_fmt(q.get('fid'))} (d = {q['dimension']}), "
            f"precision {_fmt(q.get('precision'))}, recall {_fmt(q.get('recall'))}, density {_fmt(q.get('density'))}, "
            f"coverage {_fmt(q.get('coverage'))}</p>{report_html(result.get('fidelity'))}{imgs}")
    with atomic_write(path) as fh:
        fh.write(page)
    return path
