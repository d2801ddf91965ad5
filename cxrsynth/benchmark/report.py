"""Tables (Markdown and CSV in the paper's shape) and ``report.html`` (figures embedded as data URIs,
so it opens in a browser with no network)."""

from __future__ import annotations

import base64
import csv
import html
import io
from pathlib import Path

import torch

from ..paths import atomic_write
from . import figures
from .arms import Cached, EvalDataset, eval_items
from .classifiers import build
from .fit import predict


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def _ms(stat: dict, pct: bool = True, digits: int = 2) -> str:
    if stat["mean"] is None:
        return "-"
    m, s = stat["mean"], stat["std"]
    if pct:
        return f"{100 * m:.{digits}f}" + (f" ± {100 * s:.{digits}f}" if stat["n"] > 1 else "")
    return f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if stat["n"] > 1 else "")


def tables(summary: dict) -> tuple[str, list[list[str]]]:
    """The paper's table (sensitivity %, FN per arm) and a full table (all metrics, mean ± sd over seeds)."""
    md, rows = [], [["task", "arm", "seeds", "skew", "sensitivity_mean", "sensitivity_sd", "fn_mean", "specificity_mean",
                     "precision_mean", "f1_mean", "auroc_mean", "auroc_sd", "auprc_mean", "auroc_vs_real", "auroc_vs_real_ci95"]]
    model = summary["config"]["model"]
    if summary.get("warning"):
        md.append(f"> **{summary['warning']}**\n")
    for task, arms in summary["summary"].items():
        names = list(arms)
        md.append(f"### {task} ({model}, {summary['protocol']} protocol)\n")
        md.append("| model | " + " | ".join(arms[a]["concrete_arm"] for a in names) + " |")
        md.append("|---|" + "---|" * len(names))
        md.append(f"| {model} (sensitivity %, FN) | " + " | ".join(
            f"{_ms(arms[a]['sensitivity'])}, {_ms(arms[a]['false_negatives'], pct=False, digits=1)}" for a in names) + " |")
        md.append("")
        md.append("| arm | seeds | train skew | sensitivity % | specificity % | precision % | F1 % | AUROC | AUPRC | AUROC vs real [95% CI] |")
        md.append("|---|---|---|---|---|---|---|---|---|---|")
        for a in names:
            s = arms[a]
            d = s.get("auroc_vs_real")
            dtxt = f"{d['difference']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]" if d else "-"
            skew = "-" if s["skew"] is None else f"{s['skew']:.2f}"
            md.append(f"| {s['concrete_arm']} | {s['seeds']} | {skew} | {_ms(s['sensitivity'])} | {_ms(s['specificity'])} | "
                      f"{_ms(s['precision'])} | {_ms(s['f1'])} | {_ms(s['auroc'], pct=False, digits=3)} | "
                      f"{_ms(s['auprc'], pct=False, digits=3)} | {dtxt} |")
            rows.append([task, s["concrete_arm"], str(s["seeds"]), skew, str(s["sensitivity"]["mean"]),
                         str(s["sensitivity"]["std"]), str(s["false_negatives"]["mean"]), str(s["specificity"]["mean"]),
                         str(s["precision"]["mean"]), str(s["f1"]["mean"]), str(s["auroc"]["mean"]), str(s["auroc"]["std"]),
                         str(s["auprc"]["mean"]), "" if not d else str(d["difference"]), "" if not d else f"{d['ci95'][0]};{d['ci95'][1]}"])
        md.append("")
    return "\n".join(md), rows


def _figures(out_dir: Path, results: list[dict], workdir: Path, cfg, models_from: str | None) -> list[Path]:
    figs = []
    device = torch.device("cpu")
    for task in sorted({r["task"] for r in results}):
        seed0 = {r["arm"]: r for r in results if r["task"] == task and r["seed"] == 0}
        figs.append(figures.confidence_scores(out_dir / "figures" / f"{task}-confidence.png", task, seed0))
        figs.append(figures.roc_pr(out_dir / "figures" / f"{task}-roc-pr.png", task, seed0))
        items = eval_items(workdir, task, "test", cfg.limit)
        ds = Cached(EvalDataset(items, cfg.image_size))
        models, cams, feats = {}, {}, {}
        for arm, r in seed0.items():
            ckpt = models_from or str(out_dir / "runs" / task / arm / "seed-0" / "model.safetensors")
            model = build(cfg.model, ckpt).to(device).eval()
            pred = predict(model, ds, device, features=True)
            feats[arm] = (pred["features"], pred["labels"])
            correct = [i for i in range(len(items)) if items[i].label == 1 and pred["scores"][i] >= r["threshold"]]
            cams[arm] = [(ds[i][0], float(pred["scores"][i])) for i in correct[:4]]
            models[arm] = (model, device)
        figs.append(figures.gradcam(out_dir / "figures" / f"{task}-gradcam.png", task, models, cams))
        figs.append(figures.umap_features(out_dir / "figures" / f"{task}-umap.png", task, feats))
    return figs


def _img_tag(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(path.stem)}</figcaption></figure>'


def _md_table_to_html(md: str) -> str:
    out, in_table = [], False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                out.append("<table>")
                in_table = True
            out.append("<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>")
        else:
            if in_table:
                out.append("</table>")
                in_table = False
            if line.startswith("### "):
                out.append(f"<h3>{html.escape(line[4:])}</h3>")
            elif line.startswith("> "):
                out.append(f"<p class='warn'>{html.escape(line[2:].strip('*'))}</p>")
    if in_table:
        out.append("</table>")
    return "\n".join(out)


def write_outputs(out_dir: Path, summary: dict, results: list[dict], workdir: Path, cfg, models_from: str | None = None) -> Path:
    md, rows = tables(summary)
    with atomic_write(out_dir / "tables.md") as fh:
        fh.write(md + "\n")
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    with atomic_write(out_dir / "tables.csv") as fh:
        fh.write(buf.getvalue())
    figs = _figures(out_dir, results, workdir, cfg, models_from)
    extra = ""
    audit = workdir / "audit" / "report_section.html"
    if audit.is_file():
        extra = audit.read_text()
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cxrsynth benchmark</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 6px;font-size:13px}} img{{max-width:100%}} .warn{{color:#a00;font-weight:bold}}
figure{{margin:1em 0}}</style></head><body>
<h1>cxrsynth benchmark ({html.escape(summary['protocol'])} protocol, {html.escape(summary['config']['model'])})</h1>
<p>Not for clinical use. Sensitivity with Wilson intervals, AUROC with patient-level bootstrap intervals; mean ± sd over
{max((a['seeds'] for t in summary['summary'].values() for a in t.values()), default=1)} seeds. Decision threshold: {'0.5 (paper)' if summary['protocol'] == 'paper' else 'chosen on validation'}.</p>
{_md_table_to_html(md)}
<h2>Figures</h2>
{''.join(_img_tag(p) for p in figs)}
{extra}
</body></html>
"""
    with atomic_write(out_dir / "report.html") as fh:
        fh.write(page)
    return out_dir / "report.html"


