"""tables.md sections and report figures of ``analyses.py``'s results (render only: every number is
read from results.json)."""

from __future__ import annotations

from pathlib import Path

from .calibration import METHOD as CALIBRATION_METHOD, reliability_figure
from .power import power_lines


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _ci(ci, pct: bool = True, show: bool = True) -> str:
    """`` [lo, hi]``; nothing without an interval, or where intervals are not shown (the paper protocol: the
    test set chose each model, so an interval over test patients describes a selection, not an estimate)."""
    if not ci or not show:
        return ""
    f = (lambda v: f"{100 * v:+.1f}") if pct else (lambda v: f"{v:+.3f}")
    return f" [{f(ci[0])}, {f(ci[1])}]"


def _p(v) -> str:
    return "-" if v is None else f"{v:.3g}"


def header(summary: dict) -> list[str]:
    """Power, stated before any table, and the pre-specified primary comparison's rule."""
    power = summary.get("power")
    if not power:
        return []
    out = [line + ("\n" if i == len(power_lines(power)) - 1 else "") for i, line in enumerate(power_lines(power))]
    cmp = summary.get("comparisons")
    if cmp:
        out.append(f"Primary comparison (pre-specified): {cmp['primary_rule']}. Secondary: {cmp['secondary_rule']}.\n")
    return out


def _operating(task: str, ops: dict, show: bool = True) -> list[str]:
    names = list(ops["targets"])
    md = [f"#### {task}: sensitivity at one specificity (threshold picked on validation per arm; interval re-picks it "
          "in each patient-bootstrap draw)\n",
          "| arm | " + " | ".join(f"{n} ({100 * ops['targets'][n]:.1f}% spec.): sensitivity % [95% CI], test spec. %, "
                                 f"balanced acc. %, vs real, points [95% CI]" for n in names) + " |",
          "|---|" + "---|" * len(names)]
    for arm, per in ops["arms"].items():
        cells = []
        for n in names:
            a = per[n]
            lo_hi = a.get("sensitivity_ci95")
            ci = f" [{_pct(lo_hi[0])}, {_pct(lo_hi[1])}]" if lo_hi and show else ""
            d = a.get("vs_real")
            vs = "-" if not d else f"{100 * d['sensitivity_difference']:+.1f}{_ci(d['ci95'], show=show)}"
            cells.append(f"{_pct(a['sensitivity'])}{ci}, {_pct(a['specificity'])}, {_pct(a['balanced_accuracy'])}, {vs}")
        md.append(f"| {arm} | " + " | ".join(cells) + " |")
    return md + [""]


def _comparisons(cmp: dict, show: bool = True) -> list[str]:
    md = ["### Comparisons: the primary one, then the rest with Holm-adjusted p-values\n",
          "| task | primary: arm vs control | AUROC difference [95% CI] | p (uncorrected) | chosen by |", "|---|---|---|---|---|"]
    for task, p in cmp["primary"].items():
        if p.get("not_measured"):
            md.append(f"| {task} | {p.get('arm') or '-'} vs {p['against']} | not measured: {p['not_measured']} | - | - |")
        else:
            d = "-" if p["difference"] is None else f"{p['difference']:+.3f}{_ci(p['ci95'], pct=False, show=show)}"
            md.append(f"| {task} | {p['arm']} vs {p['against']} | {d} | {_p(p['p'])} | {p['chosen_by']} |")
    md += ["", "| secondary comparison | p (bootstrap, two-sided) | p (Holm) |", "|---|---|---|"]
    md += [f"| {c['comparison']} | {_p(c['p'])} | {_p(c['p_holm'])} |" for c in cmp["secondary"]]
    return md + [""]


def _calibration(cal: dict) -> list[str]:
    md = [f"### Calibration ({CALIBRATION_METHOD}; in the large = mean score - share of COVID-19)\n",
          "| task | arm | ECE (mean ± sd) | calibration in the large |", "|---|---|---|---|"]
    for task, arms in cal["tasks"].items():
        for arm, c in arms.items():
            e, il = c["ece"], c["in_the_large"]
            md.append(f"| {task} | {arm} | {e['mean']:.3f} ± {e['std']:.3f} | {il['mean']:+.3f} |" if e["mean"] is not None
                      else f"| {task} | {arm} | - | - |")
    return md + [""]


def _subgroups(sub: dict, show: bool = True) -> list[str]:
    ci = " [patient-bootstrap 95% CI]" if show else ""
    md = [f"### Subgroups (measured with at least {sub['min_patients_per_class']} patients of each class; AUROC mean "
          f"over seeds{ci}; sensitivity / specificity at each run's threshold)\n",
          f"| task | subgroup | images (COVID-19 / other patients) | per arm: AUROC{' [CI]' if show else ''}, sens. %, "
          "spec. % |", "|---|---|---|---|"]
    for task, dims in sub["tasks"].items():
        for dim, levels in dims.items():
            for level, e in levels.items():
                if level == "unrecorded_or_other_images":
                    continue
                where = f"{e['images']} ({e['covid_patients']} / {e['other_patients']})"
                if "not_measurable" in e:
                    md.append(f"| {task} | {dim} {level} | {where} | not measurable: {e['not_measurable']} |")
                    continue
                cells = "; ".join(f"{a}: {v['auroc']:.3f}{_ci(v['auroc_ci95'], pct=False, show=show).replace('+', '')}, "
                                  f"{_pct(v['sensitivity'])}, {_pct(v['specificity'])}" for a, v in e["arms"].items())
                md.append(f"| {task} | {dim} {level} | {where} | {cells} |")
    return md + [""]


def sections(summary: dict) -> list[str]:
    """Operating points per task, comparisons, calibration and subgroups, where results.json has them."""
    md, show = [], summary.get("protocol") != "paper"
    for task, ops in (summary.get("operating_points") or {}).items():
        if ops:
            md += _operating(task, ops, show)
    if summary.get("comparisons"):
        md += _comparisons(summary["comparisons"], show)
    if summary.get("calibration"):
        md += _calibration(summary["calibration"])
    if summary.get("subgroups"):
        md += _subgroups(summary["subgroups"], show)
    return md


def figures(out_dir: Path, summary: dict) -> list[Path]:
    """One reliability diagram per task."""
    cal = (summary.get("calibration") or {}).get("tasks") or {}
    return [reliability_figure(out_dir / "figures" / f"{task}-reliability.png", task, arms) for task, arms in cal.items()]
