"""Tables (Markdown and CSV in the paper's shape) and ``report.html`` (figures embedded as data URIs,
so it opens in a browser with no network). :func:`render_report` is the one renderer of the page: it
takes a :class:`~cxrsynth.artifacts.BenchmarkResult` and reads only its folder's files."""

from __future__ import annotations

import base64
import csv
import html
import io
from pathlib import Path

from ...artifacts import BenchmarkResult
from ...artifacts.benchmark_run import external_not_measurable, shows_intervals
from ...artifacts.stamps import stamped_audit
from ...core.errors import StampError
from ...core.layout import AuditFolder, BenchmarkFolder
from ...core.paths import atomic_write, read_json
from . import attribution
from . import figure_inputs
from . import figures
from . import report_analyses


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


def _control_rows(task: str, arms: dict, externals: list[str], empty: set[str] = frozenset()) -> list[str]:
    """Internal test, same-source negatives and each external set side by side, one row per arm
    (``empty``: external sets with nothing left to score)."""
    head = ["arm", "test AUROC", "test FPR %", "same-source FPR %", "one-sided p (same-source > test)",
            "same-source AUROC"]
    if externals:
        head.append("internal sensitivity %")
    for name in externals:
        head += [f"{name} sensitivity % [patient CI]", f"{name} vs internal, points", f"{name} specificity %",
                 f"{name} AUROC"]
    control = next((s["controls"]["same_source"]["verdict"].get("control") for s in arms.values()
                    if (s.get("controls") or {}).get("same_source")), None) or "negatives"
    md = [f"#### {task}: shortcut controls (internal test vs same-source {control}, frontal, vs external sets)\n",
          "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for a, s in arms.items():
        c = s.get("controls") or {}
        ss = c.get("same_source")
        spec = s["specificity"]["mean"]
        cells = [s["concrete_arm"], _ms(s["auroc"], pct=False, digits=3), "-" if spec is None else f"{100 * (1 - spec):.1f}"]
        cells += _same_source_cells(ss)
        if externals:
            cells.append(_ms(s["sensitivity"]))
        for name in externals:
            e = (c.get("external") or {}).get(name)
            cells += _external_cells(e, s["sensitivity"]["mean"]) if name not in empty else ["empty (see notice)"] + ["-"] * 3
        md.append("| " + " | ".join(cells) + " |")
    md.append("")
    md += _verdict(task, arms)
    return md


def _external_cells(e: dict | None, internal_sens: float | None) -> list[str]:
    """Sensitivity with its patient-level interval (a Wilson interval on images when no per-patient one
    was computed), its difference from the internal sensitivity, specificity and AUROC (a set of
    positives only has neither)."""
    if not e:
        return ["-", "-", "-", "-"]
    ci = e.get("sensitivity_patient_ci95") or e.get("sensitivity_wilson95")
    sens, drop = _ms(e["sensitivity"]) + _ci(ci, pct=True), "-"
    unreadable = external_not_measurable(e)
    if unreadable:
        sens = unreadable
    elif e["sensitivity"]["mean"] is not None and internal_sens is not None:
        drop = f"{100 * (e['sensitivity']['mean'] - internal_sens):+.1f}"
    none = "n/a (no negatives)"
    spec = none if e["specificity"]["mean"] is None else _ms(e["specificity"]) + _ci(e.get("specificity_wilson95"), pct=True)
    auc = none if e["auroc"]["mean"] is None else _ms(e["auroc"], pct=False, digits=3) + _ci(e.get("auroc_ci95"))
    return [sens, drop, spec, auc]


def _external_lines(summary: dict) -> list[str]:
    """One line per external set: what was read, what was scored, and every image left out, by reason."""
    from .external import lost_counts

    out = []
    for name, rep in sorted(((summary.get("controls") or {}).get("external") or {}).items()):
        fmt = rep.get("format", "?")
        out.append(f"External set {name} ({fmt}): {rep.get('listed', rep['images'])} images found, {rep.get('kept', '?')} scored "
                   f"({rep.get('patients', '?')} patients; by label {rep.get('by_label', {})}); left out: "
                   f"{lost_counts(rep)}.\n")
    return out


def _same_source_cells(ss: dict | None) -> list[str]:
    """FPR with its interval (or "not measurable" and why), the test's p, AUROC vs the COVID-19 test images."""
    if not ss:
        return ["-", "-", "-"]
    v = ss.get("verdict") or {}
    if v.get("verdict") == "not measurable":
        return [f"not measurable ({v['why']})", "-", "-"]
    how = v.get("p_method") or ""
    note = " (one test over the seeds)" if "pooled per image" in how else " (bound on the seeds' median)" if "valid bound" in how else ""
    p = "-" if v.get("p") is None else f"{v['p']:.3g}" + (note if v.get("seeds", 1) > 1 else "")
    return [_ms(ss["fpr"]) + _ci(ss.get("fpr_ci95"), pct=True), p,
            _ms(ss["auroc"], pct=False, digits=3) + _ci(ss.get("auroc_ci95"))]


def _verdict(task: str, arms: dict) -> list[str]:
    """Plain sentences per task, each resting on a test: which arms call the collection's own X-rays of
    the task's negative class COVID-19 more often than the test set's NIH/RSNA negatives (one-sided
    two-proportion test, p < 0.05 from one test over the seeds, and an interval of the difference excluding 0 from one
    bootstrap over seeds and patients): source, not disease. A control too small for its interval is said to be not measurable,
    and nothing is read from it."""
    from .controls import SHORTCUT_ALPHA

    verdicts = [((s.get("controls") or {}).get("same_source") or {}).get("verdict") or {} for s in arms.values()]
    rows = [(s["concrete_arm"], v) for s, v in zip(arms.values(), verdicts) if v.get("verdict")]
    if not rows:
        return []
    control = rows[0][1].get("control") or "non-COVID X-rays"
    unmeasured = [a for a, v in rows if v["verdict"] == "not measurable"]
    flagged = [f"{a} ({100 * v['fpr']:.0f}% vs {100 * v['test_fpr']:.0f}%, p = {v['p']:.2g}"
               + (f"; difference {_points(v['difference_patient_ci95'])} points" if v.get("difference_patient_ci95") else "")
               + ")" for a, v in rows if v["verdict"] == "source"]
    boot = any("patient bootstrap" in (v.get("test") or "") for _, v in rows)  # kept where intervals are not shown
    exact = _exact_test(rows)
    test = (f"{exact}, p < {SHORTCUT_ALPHA}, and a patient-bootstrap 95% interval of the difference "
            "that excludes 0" if boot else f"{exact}, p < {SHORTCUT_ALPHA}, images taken as independent")
    clear = [a for a, v in rows if v["verdict"] == "no evidence"]
    out = []
    if unmeasured:
        out.append(f"{task}: the same-source control ({control} of the COVID-19 collection, frontal) is not measurable "
                   f"for {', '.join(unmeasured)}: {rows[0][1].get('why', 'too few images')}; nothing is read from it.\n")
    if flagged:
        out.append(f"{task}: these arms call the COVID-19 collection's own {control} COVID-19 more often than the test "
                   f"set's NIH/RSNA negatives (false-positive rate, same-source vs test; {test}), so part of what "
                   "they detect is the source: " + "; ".join(flagged) + ".\n")
    if clear:
        out.append(f"{task}: for {', '.join(clear)}, the false-positive rate on the collection's own {control} is not "
                   f"significantly above the test negatives' ({exact}, p >= {SHORTCUT_ALPHA}"
                   + (", or a patient-bootstrap interval of the difference that includes 0" if boot else "") + "): no "
                   "evidence here that they detect the source (which is not evidence that they do not).\n")
    return out


def _exact_test(rows: list) -> str:
    """How the arms' p values were made, in words: one test over the seeds where the cells kept per-image calls."""
    if any(v.get("seeds", 1) > 1 and "pooled per image" in (v.get("p_method") or "") for _, v in rows):
        return ("one-sided exact test over all seeds at once (each image's share of seeds calling it COVID-19, "
                "permuted between the two sets; Fisher's exact test when the seeds agree)")
    if any("valid bound" in (v.get("p_method") or "") for _, v in rows):
        return "one-sided Fisher exact test per seed, combined by a valid bound on the median (twice it for two seeds)"
    return "one-sided Fisher exact test"


def _points(ci) -> str:
    return f"[{100 * ci[0]:+.0f}, {100 * ci[1]:+.0f}]"


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
    "Same-source negatives are frontal X-rays from the COVID-19 collection itself, of the task's own negative class: "
    "its 'No Finding' X-rays for normal-covid, its non-COVID pneumonias for pneumonia-covid (for normal-covid a "
    "pneumonia is no control: a model that learned disease may rightly call it positive). A model that learned the "
    "task calls them negative about as often as the test set's NIH/RSNA negatives, and ranks the COVID-19 test "
    "images above them (AUROC well above 0.5). A model that learned the collection calls them COVID-19: a "
    "false-positive rate above the test negatives', AUROC near 0.5. An arm is named only when a one-sided "
    "two-proportion test gives p < 0.05 (one test over all seeds: each image's share of seeds calling it COVID-19 is "
    "permuted between the two sets, which is Fisher's exact test when the seeds agree; images taken as independent) "
    "and, since one patient may give "
    "several films, a bootstrap over whole patients puts the difference's 95% interval above 0 (one bootstrap that resamples seeds and patients together); a control "
    "of fewer than 10 images, or whose interval spans more than 50 points, is not measurable.",
    "External sets come from elsewhere and were never trained on (images duplicating any image of the split, train, "
    "validation or test, are dropped and counted). A set of COVID-19 images only (the Hannover repository) measures "
    "sensitivity at each arm's own threshold, with a patient-level bootstrap interval, beside the internal one. A "
    "drop is expected there: the films come from another hospital's clinical routine (portable AP films of "
    "ventilated patients, other scanners, other processing), while every internal COVID-19 image is a figure from a "
    "publication, cropped and compressed; a model that learned what publication figures look like, rather than "
    "COVID-19, loses most. A large drop means the internal numbers overstate what the model does elsewhere. A rise "
    "is not better detection: with no negatives from that hospital, a model that calls any film unlike its "
    "training negatives COVID-19 scores as high, and its specificity there is unknown.",
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
    """A copy of ``obj`` with every interval (a key ending in ``ci95`` or ``wilson95``) set to None.

    An external set's entry keeps the verdict its interval gave (``not_measurable_why``): whether 71
    patients can be read is decided by their interval, and without it every set would read "not measurable"."""
    if isinstance(obj, dict):
        out = {k: None if k.endswith(("ci95", "wilson95")) else without_intervals(v) for k, v in obj.items()}
        if "sensitivity_patient_ci95" in obj and isinstance(obj.get("sensitivity"), dict):  # an arm's summary entry
            out["not_measurable_why"] = external_not_measurable(obj) or ""
        return out
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
    if not shows_intervals(summary):  # the test set chose the model: its intervals would be spurious
        summary = without_intervals(summary)
    externals = _externals(summary)
    head = ["task", "arm", "seeds", "skew", "sensitivity_mean", "sensitivity_sd", "fn_mean", "specificity_mean",
            "precision_mean", "f1_mean", "auroc_mean", "auroc_sd", "auprc_mean", "auroc_vs_real", "auroc_vs_real_ci95",
            "sensitivity_vs_real", "sensitivity_vs_real_ci95", "same_source_fpr_mean", "same_source_auroc_mean",
            "same_source_control", "same_source_p_more_than_test", "same_source_verdict"]
    head += [f"external_{n}_{k}" for n in externals for k in ("sensitivity_mean", "sensitivity_patient_ci95",
                                                               "specificity_mean", "auroc_mean")]
    head += ["auroc_vs_oversampled", "auroc_vs_oversampled_ci95", "sensitivity_vs_oversampled",
             "sensitivity_vs_oversampled_ci95", "steps_mean", "best_at_last_epoch"]
    head.append("notices")  # every notice (paper protocol, foreign release, empty external set) on every row
    md, rows = [], [head]
    model = summary["config"]["model"]
    notices = summary.get("notices") or ([summary["warning"]] if summary.get("warning") else [])
    for note in notices:
        md.append(f"> **{note}**\n")
    if not shows_intervals(summary):
        md.append(NO_INTERVALS + "\n")
    md += header_lines(summary)
    md += report_analyses.header(summary)  # power, before any number
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
            v = ss.get("verdict") or {}
            row += [str(v.get("control") or ""), "" if v.get("p") is None else str(v["p"]), str(v.get("verdict") or "")]
            for n in externals:
                e = (c.get("external") or {}).get(n) or {}
                row += [str((e.get("sensitivity") or {}).get("mean", "")), _ci_csv(e, "sensitivity_patient_ci95"),
                        str((e.get("specificity") or {}).get("mean", "")), str((e.get("auroc") or {}).get("mean", ""))]
            rows.append(row + attribution_csv(s) + [" | ".join(notices)])
        md.append("")
        empty = {n for n, r in ((summary.get("controls") or {}).get("external") or {}).items() if not r.get("kept", 1)}
        md += _control_rows(task, arms, externals, empty)
        md += attribution.budget_lines(task, arms)
        if all("at_0.5" in s for s in arms.values()):
            md += attribution.prior_shift_lines(task, {a: arms[a]["at_0.5"] for a in names},
                                                {a: arms[a]["concrete_arm"] for a in names})
    md += report_analyses.sections(summary)
    if summary.get("controls"):
        md += _external_lines(summary)
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
    """tables.md and tables.csv from ``summary`` (results.json's content), then figures/ and report.html
    from the folder's files by :func:`render_report` (no model is built). ``results``: the cells' results
    (kept for the callers; the report reads the same from each cell's ``result.json``); ``cfg.figures``
    false: no figure."""
    md, rows = tables(summary)
    with atomic_write(BenchmarkFolder(out_dir).tables) as fh:
        fh.write(md + "\n")
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    with atomic_write(out_dir / "tables.csv") as fh:
        fh.write(buf.getvalue())
    page = render_report(BenchmarkResult(summary, Path(out_dir)), audit, figures=getattr(cfg, "figures", True))
    with atomic_write(BenchmarkFolder(out_dir).report) as fh:
        fh.write(page)
    return BenchmarkFolder(out_dir).report


def _seed0_results(result: BenchmarkResult) -> list[dict]:
    """The seed-0 cells' ``result.json`` of the runs results.json lists (their per-image scores are what
    the figures draw); a cell whose file is missing is left out."""
    folder = BenchmarkFolder(result.folder)
    out = []
    for run in result.data.get("runs") or []:
        if run.get("seed") == 0:
            path = folder.cell(run["task"], run["arm"], 0) / "result.json"
            if path.is_file():
                out.append(read_json(path))
    return out


def render_report(result: BenchmarkResult, audit: AuditFolder | None = None, figures: bool | None = None) -> str:
    """report.html for the benchmark ``result`` (read from or written to ``result.folder``), from files
    alone: the tables from its results, the figures from each seed-0 cell's ``result.json`` and
    ``figure_inputs.npz``; no model is built. The figures' PNGs are drawn into ``folder/figures/`` and
    embedded (the page opens with no network). ``audit``: its section is embedded only when it judged
    the release the arms were trained on. ``figures``: draw them (None: as the run's config says)."""
    if result.folder is None:
        raise ValueError("render_report needs a benchmark result with its folder (its cells' files)")
    summary, out_dir = result.data, result.folder
    draw = (summary.get("config") or {}).get("figures", True) if figures is None else figures
    md, _ = tables(summary)
    figs, notes = _figures(out_dir, _seed0_results(result)) if draw else ([], ["figures were off"])
    if draw:
        figs += report_analyses.figures(out_dir, summary)  # a reliability diagram per task
    extra = _audit_section(audit, summary)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cxrsynth benchmark</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 6px;font-size:13px}} img{{max-width:100%}} .warn{{color:#a00;font-weight:bold}}
figure{{margin:1em 0}}</style></head><body>
<h1>cxrsynth benchmark ({html.escape(summary['protocol'])} protocol, {html.escape(summary['config']['model'])})</h1>
<p>Not for clinical use. {'No intervals (the test set chose the model)' if not shows_intervals(summary) else 'Sensitivity intervals: Wilson for per-patient counts, else a patient bootstrap (on an external set, a patient-level bootstrap interval); AUROC with patient-level bootstrap intervals'};
each shortcut sentence rests on a one-sided two-proportion test; mean ± sd over
{max((a['seeds'] for t in summary['summary'].values() for a in t.values()), default=1)} seeds. Decision threshold: {'0.5 (paper)' if summary['protocol'] == 'paper' else 'chosen on validation'}.</p>
{_md_table_to_html(md)}
<h2>Figures</h2>
{''.join(f"<p>{html.escape(n)}</p>" for n in notes)}
{''.join(_img_tag(p) for p in figs)}
{extra}
</body></html>
"""
