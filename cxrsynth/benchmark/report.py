"""Tables (Markdown and CSV in the paper's shape) and ``report.html`` (figures embedded as data URIs,
so it opens in a browser with no network)."""

from __future__ import annotations

import base64
import csv
import html
import io
from pathlib import Path

from ..artifacts.stamps import stamped_audit
from ..errors import StampError
from ..layout import AuditFolder, BenchmarkFolder
from ..paths import atomic_write
from . import attribution, figure_inputs, figures


def _ms(stat: dict, pct: bool = True, digits: int = 2) -> str:
    if stat["mean"] is None:
        return "-"
    m, s = stat["mean"], stat["std"]
    if pct:
        return f"{100 * m:.{digits}f}" + (f" ± {100 * s:.{digits}f}" if stat["n"] > 1 else "")
    return f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if stat["n"] > 1 else "")


def _ci(ci, digits: int = 3, pct: bool = False) -> str:
    if not ci:
        return ""
    f = (lambda v: f"{100 * v:.1f}") if pct else (lambda v: f"{v:.{digits}f}")
    return f" [{f(ci[0])}, {f(ci[1])}]"


def _diff(d: dict | None, key: str, ci_key: str, pct: bool) -> str:
    if not d or d.get(key) is None:
        return "-"
    f = (lambda v: f"{100 * v:+.1f}") if pct else (lambda v: f"{v:+.3f}")
    ci = d.get(ci_key)
    return f(d[key]) + (f" [{f(ci[0])}, {f(ci[1])}]" if ci else "")


def _ci_csv(d: dict | None, key: str) -> str:
    return "" if not d or not d.get(key) else f"{d[key][0]};{d[key][1]}"


def _externals(summary: dict) -> list[str]:
    return sorted((summary.get("controls") or {}).get("external") or {})


def _control_rows(task: str, arms: dict, externals: list[str]) -> list[str]:
    """Internal test, same-source negatives and each external set side by side, one row per arm."""
    head = ["arm", "test AUROC", "same-source FPR %", "same-source AUROC"]
    for name in externals:
        head += [f"{name} sensitivity %", f"{name} specificity %", f"{name} AUROC"]
    md = [f"#### {task}: shortcut controls (internal test vs same-source negatives vs external sets)\n",
          "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for a, s in arms.items():
        c = s.get("controls") or {}
        ss = c.get("same_source")
        cells = [s["concrete_arm"], _ms(s["auroc"], pct=False, digits=3)]
        cells += ([_ms(ss["fpr"]) + _ci(ss.get("fpr_wilson95"), pct=True), _ms(ss["auroc"], pct=False, digits=3) + _ci(ss.get("auroc_ci95"))]
                  if ss else ["-", "-"])
        for name in externals:
            e = (c.get("external") or {}).get(name)
            cells += ([_ms(e["sensitivity"]) + _ci(e.get("sensitivity_wilson95"), pct=True),
                       _ms(e["specificity"]) + _ci(e.get("specificity_wilson95"), pct=True),
                       _ms(e["auroc"], pct=False, digits=3) + _ci(e.get("auroc_ci95"))] if e else ["-", "-", "-"])
        md.append("| " + " | ".join(cells) + " |")
    md.append("")
    md += _verdict(task, arms)
    return md


def _verdict(task: str, arms: dict) -> list[str]:
    """One plain sentence per task: which arms call the collection's own non-COVID X-rays COVID-19 more
    often than they call the test set's NIH/RSNA negatives COVID-19 (source, not disease)."""
    flagged, rows = [], 0
    for s in arms.values():
        ss = (s.get("controls") or {}).get("same_source")
        spec = s["specificity"]["mean"]
        if not ss or ss["fpr"]["mean"] is None or spec is None:
            continue
        rows += 1
        if ss["fpr"]["mean"] > (1 - spec) + 0.05:
            flagged.append(f"{s['concrete_arm']} ({100 * ss['fpr']['mean']:.0f}% vs {100 * (1 - spec):.0f}%)")
    if not rows:
        return []
    if not flagged:
        return [f"{task}: no arm calls the collection's non-COVID X-rays COVID-19 more often than the test set's "
                "NIH/RSNA negatives: no sign here that the arms detect the source.\n"]
    return [f"{task}: these arms call the COVID-19 collection's own non-COVID X-rays COVID-19 far more often than "
            "the test set's NIH/RSNA negatives (false-positive rate, same-source vs test), so part of what they "
            "detect is the source: " + "; ".join(flagged) + ".\n"]


def _probe_rows(controls: dict) -> list[str]:
    md = ["### Probes: can a small classifier tell the sources apart?\n",
          "| probe | group A | group B | images A / B | AUROC [95% CI] |", "|---|---|---|---|---|"]
    for kind, probes in (("source (label held fixed)", controls.get("source_probe")),
                         ("real vs synthetic", controls.get("real_vs_synthetic"))):
        if not probes or "skipped" in probes:
            md.append(f"| {kind} | - | - | - | {(probes or {}).get('skipped', 'not run')} |")
            continue
        for key, p in probes.items():
            if "skipped" in p:
                md.append(f"| {kind}: {key} | - | - | - | skipped: {p['skipped']} |")
                continue
            auc = "-" if p["auroc"] is None else f"{p['auroc']:.3f}" + _ci(p.get("auroc_ci95"))
            md.append(f"| {kind}: {key} | {p['a']} | {p['b']} | {p['n_a']} / {p['n_b']} | {auc} |")
    md.append("")
    return md


EXPLAIN = [
    "How to read the controls (every COVID-19 image comes from one collection of publication figures, every negative "
    "from NIH or RSNA, so a model can score well by recognising the source instead of the disease):",
    "Same-source negatives are X-rays from the COVID-19 collection itself, of other diseases. A model that learned "
    "COVID-19 calls them negative: low false-positive rate and an AUROC (COVID-19 test images vs them) well above 0.5. "
    "A model that learned the collection calls them COVID-19: high false-positive rate, AUROC near 0.5. If an arm gains "
    "on the test set but not here, the gain is source detection, not COVID-19 detection.",
    "External sets come from elsewhere and were never trained on (images duplicating a training image are dropped). "
    "A drop from the internal test to an external set means the internal numbers overstate what the model does.",
    "The source probe tells the collection from NIH/RSNA with the label held fixed (pneumonia vs pneumonia): whatever "
    "it finds is the source. An AUROC near 1 means the sources are separable by simple image statistics, so any arm "
    "comparison on these data can reflect the source as much as COVID-19.",
    "The real-vs-synthetic probe (a classifier two-sample test) tells synthetic from real COVID-19. Near 0.5: it cannot; "
    "near 1: synthetic COVID-19 carries a signature of its own (it is translated from NIH/RSNA images), which the "
    "synthetic arms may teach the model instead of COVID-19.",
]


NO_INTERVALS = ("No confidence intervals in the paper protocol: the test set chose each model (early stopping and the "
                "learning-rate schedule watched it), so an interval over test patients would describe a selection, "
                "not an estimate.")


def without_intervals(obj):
    """A copy of ``obj`` with every interval (a key ending in ``ci95`` or ``wilson95``) set to None."""
    if isinstance(obj, dict):
        return {k: None if k.endswith(("ci95", "wilson95")) else without_intervals(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [without_intervals(v) for v in obj]
    return obj


def attribution_csv(s: dict) -> list[str]:
    """The CSV cells of one arm: its differences from real-oversampled and its step budget."""
    d, b = s.get("auroc_vs_oversampled"), s.get("budget") or {}
    steps = (b.get("steps") or {}).get("mean")
    return ["" if not d else str(d["difference"]), _ci_csv(d, "ci95"), "" if not d else str(d["sensitivity_difference"]),
            _ci_csv(d, "sensitivity_ci95"), "" if steps is None else str(steps),
            f"{b['best_at_last_epoch']}/{b['seeds']}" if b.get("seeds") else ""]


def header_lines(summary: dict) -> list[str]:
    """What the numbers below were measured on, before any table: the release the synthetic arms used
    (name, version, data_sha256 and, from the Hub, the resolved commit); for ``--eval-only`` the
    checkpoint, its head, the input normalisation and the threshold (and where it came from)."""
    out = []
    rel = summary.get("release_info")
    if rel:
        where = (f"Hub {rel['id']}, revision {rel['revision']}, commit {rel['commit']}" if rel["source"] == "hub"
                 else f"folder {rel['id']}")
        out.append(f"Release: {rel['name']} {rel['version']} (data_sha256 {rel['data_sha256']}; {where}).\n")
    ev = summary.get("evaluation")
    if ev:
        what = ev["checkpoint"] or "a model given in Python"
        out.append(f"Evaluated: {ev['model']} from {what}; head {ev['head']}; input normalisation {ev['normalize']}; "
                   f"threshold {ev['threshold']:.4g} ({ev['threshold_source']}).\n")
    return out


def tables(summary: dict) -> tuple[str, list[list[str]]]:
    """The paper's table (sensitivity %, FN per arm), a full table (all metrics, mean ± sd over seeds, each
    arm against ``real`` paired by seed), the shortcut controls per arm, and the probes."""
    if summary.get("protocol") == "paper":  # the test set chose the model: its intervals would be spurious
        summary = without_intervals(summary)
    externals = _externals(summary)
    head = ["task", "arm", "seeds", "skew", "sensitivity_mean", "sensitivity_sd", "fn_mean", "specificity_mean",
            "precision_mean", "f1_mean", "auroc_mean", "auroc_sd", "auprc_mean", "auroc_vs_real", "auroc_vs_real_ci95",
            "sensitivity_vs_real", "sensitivity_vs_real_ci95", "same_source_fpr_mean", "same_source_auroc_mean"]
    head += [f"external_{n}_{k}_mean" for n in externals for k in ("sensitivity", "specificity", "auroc")]
    head += ["auroc_vs_oversampled", "auroc_vs_oversampled_ci95", "sensitivity_vs_oversampled",
             "sensitivity_vs_oversampled_ci95", "steps_mean", "best_at_last_epoch"]
    md, rows = [], [head]
    model = summary["config"]["model"]
    notices = summary.get("notices") or ([summary["warning"]] if summary.get("warning") else [])
    for note in notices:
        md.append(f"> **{note}**\n")
    if summary.get("protocol") == "paper":
        md.append(NO_INTERVALS + "\n")
    md += header_lines(summary)
    for task, arms in summary["summary"].items():
        names = list(arms)
        md.append(f"### {task} ({model}, {summary['protocol']} protocol, {summary.get('split_method', '?')} split)\n")
        md.append("| model | " + " | ".join(arms[a]["concrete_arm"] for a in names) + " |")
        md.append("|---|" + "---|" * len(names))
        md.append(f"| {model} (sensitivity %, FN) | " + " | ".join(
            f"{_ms(arms[a]['sensitivity'])}, {_ms(arms[a]['false_negatives'], pct=False, digits=1)}" for a in names) + " |")
        md.append("")
        md.append("| arm | seeds | train skew | sensitivity % | specificity % | precision % | F1 % | AUROC | AUPRC | "
                  "AUROC vs real [95% CI] | sensitivity vs real, points [95% CI] |")
        md.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for a in names:
            s = arms[a]
            d = s.get("auroc_vs_real")
            skew = "-" if s["skew"] is None else f"{s['skew']:.2f}"
            md.append(f"| {s['concrete_arm']} | {s['seeds']} | {skew} | {_ms(s['sensitivity'])} | {_ms(s['specificity'])} | "
                      f"{_ms(s['precision'])} | {_ms(s['f1'])} | {_ms(s['auroc'], pct=False, digits=3)} | "
                      f"{_ms(s['auprc'], pct=False, digits=3)} | {_diff(d, 'difference', 'ci95', False)} | "
                      f"{_diff(d, 'sensitivity_difference', 'sensitivity_ci95', True)} |")
            c = s.get("controls") or {}
            ss = c.get("same_source") or {}
            row = [task, s["concrete_arm"], str(s["seeds"]), skew, str(s["sensitivity"]["mean"]),
                   str(s["sensitivity"]["std"]), str(s["false_negatives"]["mean"]), str(s["specificity"]["mean"]),
                   str(s["precision"]["mean"]), str(s["f1"]["mean"]), str(s["auroc"]["mean"]), str(s["auroc"]["std"]),
                   str(s["auprc"]["mean"]), "" if not d else str(d["difference"]), _ci_csv(d, "ci95"),
                   "" if not d else str(d["sensitivity_difference"]), _ci_csv(d, "sensitivity_ci95"),
                   str((ss.get("fpr") or {}).get("mean", "")), str((ss.get("auroc") or {}).get("mean", ""))]
            for n in externals:
                e = (c.get("external") or {}).get(n) or {}
                row += [str((e.get(k) or {}).get("mean", "")) for k in ("sensitivity", "specificity", "auroc")]
            rows.append(row + attribution_csv(s))
        md.append("")
        md += _control_rows(task, arms, externals)
        md += attribution.budget_lines(task, arms)
        if all("at_0.5" in s for s in arms.values()):
            md += attribution.prior_shift_lines(task, {a: arms[a]["at_0.5"] for a in names},
                                                {a: arms[a]["concrete_arm"] for a in names})
    if summary.get("controls"):
        md += _probe_rows(summary["controls"])
        md += [line + "\n" for line in EXPLAIN]
    return "\n".join(md), rows


def _figures(out_dir: Path, results: list[dict]) -> tuple[list[Path], list[str]]:
    """The figures from files alone: scores from each seed-0 ``result.json``, Grad-CAM maps and pooled
    features from each cell's ``figure_inputs.npz`` (written by the cell; absent when figures were off).
    Returns the figures and a note per task whose model figures could not be drawn."""
    figs, notes = [], []
    for task in sorted({r["task"] for r in results}):
        seed0 = {r["arm"]: r for r in results if r["task"] == task and r["seed"] == 0}
        figs.append(figures.confidence_scores(out_dir / "figures" / f"{task}-confidence.png", task, seed0))
        figs.append(figures.roc_pr(out_dir / "figures" / f"{task}-roc-pr.png", task, seed0))
        inputs = {arm: figure_inputs.read(BenchmarkFolder(out_dir).cell(task, arm, 0)) for arm in seed0}
        missing = sorted(arm for arm, v in inputs.items() if v is None)
        if missing:
            notes.append(f"{task}: no Grad-CAM or UMAP figure for {', '.join(missing)} (run with figures on)")
        drawn = {arm: v for arm, v in inputs.items() if v is not None}
        if drawn:
            figs.append(figures.gradcam(out_dir / "figures" / f"{task}-gradcam.png", task, drawn))
            figs.append(figures.umap_features(out_dir / "figures" / f"{task}-umap.png", task,
                                              {arm: (v["umap_features"], v["umap_groups"]) for arm, v in drawn.items()}))
    return figs, notes


def _audit_section(audit: AuditFolder | None, summary: dict) -> str:
    """The audit's HTML section, only when that audit judged the release these arms were trained on."""
    stamp = summary.get("release_data_sha256")
    if audit is None or not stamp or not audit.report_section.is_file() or not audit.json.is_file():
        return ""
    try:
        stamped_audit(audit.json, stamp)
    except (StampError, ValueError, OSError):
        return ""
    return audit.report_section.read_text()


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
            if line.startswith("#### "):
                out.append(f"<h4>{html.escape(line[5:])}</h4>")
            elif line.startswith("### "):
                out.append(f"<h3>{html.escape(line[4:])}</h3>")
            elif line.startswith("> "):
                out.append(f"<p class='warn'>{html.escape(line[2:].strip('*'))}</p>")
            elif line.strip():
                out.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        out.append("</table>")
    return "\n".join(out)


def write_outputs(out_dir: Path, summary: dict, results: list[dict], cfg, audit: AuditFolder | None = None) -> Path:
    """tables.md, tables.csv, figures/ and report.html from the results alone (no model is built)."""
    md, rows = tables(summary)
    with atomic_write(BenchmarkFolder(out_dir).tables) as fh:
        fh.write(md + "\n")
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    with atomic_write(out_dir / "tables.csv") as fh:
        fh.write(buf.getvalue())
    figs, notes = _figures(out_dir, results) if getattr(cfg, "figures", True) else ([], ["figures were off"])
    extra = _audit_section(audit, summary)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cxrsynth benchmark</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 6px;font-size:13px}} img{{max-width:100%}} .warn{{color:#a00;font-weight:bold}}
figure{{margin:1em 0}}</style></head><body>
<h1>cxrsynth benchmark ({html.escape(summary['protocol'])} protocol, {html.escape(summary['config']['model'])})</h1>
<p>Not for clinical use. {'No intervals (the test set chose the model)' if summary['protocol'] == 'paper' else 'Sensitivity with Wilson intervals, AUROC with patient-level bootstrap intervals'}; mean ± sd over
{max((a['seeds'] for t in summary['summary'].values() for a in t.values()), default=1)} seeds. Decision threshold: {'0.5 (paper)' if summary['protocol'] == 'paper' else 'chosen on validation'}.</p>
{_md_table_to_html(md)}
<h2>Figures</h2>
{''.join(f"<p>{html.escape(n)}</p>" for n in notes)}
{''.join(_img_tag(p) for p in figs)}
{extra}
</body></html>
"""
    with atomic_write(BenchmarkFolder(out_dir).report) as fh:
        fh.write(page)
    return BenchmarkFolder(out_dir).report


