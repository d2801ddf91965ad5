"""The dataset card's sections made from a benchmark result stamped with the release: the benchmark's
tables, and the external test set (the Hannover repository: another hospital's COVID-19 films).

Why a section of its own: every internal COVID-19 image is a publication figure, so the internal test
set cannot show whether a model learned COVID-19 or the look of publication figures. The external set
can, and a reader of the card should see its sensitivity next to the internal one, with its patient-level
interval, before any other number. Only ``results.json`` is read (the release does not import the
benchmark); without a stamped result the section says so and shows no number.
"""

from __future__ import annotations

from ...artifacts.benchmark_run import external_not_measurable, shows_intervals

BENCHMARK_TITLE = "Benchmark"
EXTERNAL_TITLE = "External test set"
NO_BENCHMARK = ("No benchmark was run for this version (`cxrsynth benchmark` produces one).")
NO_EXTERNAL_BENCHMARK = (
    "No benchmark result stamped with this release is attached, so no external-set numbers are shown. "
    "`cxrsynth benchmark --release DIR --external hannover=DIR` scores every arm on the Hannover repository "
    "(COVID-19 films from another hospital), and the card shows them once that result is attached.")
#: why sensitivity falls on a set of positives from elsewhere (one sentence, printed under its table)
DROP_SENTENCE = (
    "A drop from the internal sensitivity is expected: these films come from {where}, are COVID-19 positives only "
    "(so only sensitivity is measured, not specificity or AUROC), and were acquired differently (portable AP films, "
    "other scanners and processing), while every internal COVID-19 image is a figure from a publication; a large drop "
    "means the internal numbers overstate what a model does elsewhere.")
#: why a rise there is no better detection (printed instead, or as well, when some arm's sensitivity rises)
RISE_SENTENCE = (
    "Higher than the internal sensitivity for {which}: not better detection. The set holds COVID-19 films only, so "
    "nothing here measures how often these models call a film from {where} without COVID-19 positive; a model that "
    "calls any film unlike its training negatives (NIH and RSNA) COVID-19 scores as high. Only a drop can be read: "
    "as the internal numbers overstating what a model does elsewhere.")
WHERE = {"hannover": "another hospital's clinical routine (Hannover Medical School)"}


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _ms(stat: dict | None) -> str:
    if not stat or stat.get("mean") is None:
        return "-"
    return _pct(stat["mean"]) + (f" ± {_pct(stat['std'])}" if stat.get("n", 1) > 1 else "")


def positives_only(report: dict) -> bool:
    """Whether an external set holds COVID-19 images and no negative for any task."""
    per_task = (report.get("per_task") or {}).values()
    return any(n["covid"] for n in per_task) and not any(n["negatives"] for n in per_task)


def _arm_row(arm: dict, name: str, intervals: bool) -> tuple[str, float | None]:
    """The arm's table row, and its external minus internal sensitivity (None where not measured)."""
    internal = arm.get("sensitivity") or {}
    e = ((arm.get("controls") or {}).get("external") or {}).get(name)
    if not e or (e.get("sensitivity") or {}).get("mean") is None:
        return f"| {arm['concrete_arm']} | {_ms(internal)} | not scored | - |", None
    unreadable = external_not_measurable(e)  # the report's rule: an interval wider than 50 points
    if unreadable:
        return f"| {arm['concrete_arm']} | {_ms(internal)} | {unreadable} | - |", None
    ci = e.get("sensitivity_patient_ci95") if intervals else None
    ext = _ms(e["sensitivity"]) + (f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "")
    delta = None if internal.get("mean") is None else e["sensitivity"]["mean"] - internal["mean"]
    return f"| {arm['concrete_arm']} | {_ms(internal)} | {ext} | {'-' if delta is None else f'{100 * delta:+.1f}'} |", delta


def external_section(results: dict | None) -> str:
    """The card's external-set section from a stamped ``results.json`` (its content), or the sentence
    that no result is attached (``None``). Per external set and task: each arm's sensitivity on the set,
    with its patient-level interval, beside its internal test sensitivity, and how to read a drop and a rise."""
    if results is None:
        return NO_EXTERNAL_BENCHMARK
    reports = (results.get("controls") or {}).get("external") or {}
    if not reports:
        return ("The attached benchmark scored no external set, so there is no number from outside the training "
                "sources here (`--external hannover=DIR` adds the Hannover repository).")
    intervals = shows_intervals(results)
    seeds = max((a.get("seeds", 1) for t in results["summary"].values() for a in t.values()), default=1)
    out = []
    for name, rep in sorted(reports.items()):
        deltas = {}  # (task, arm): external minus internal sensitivity
        fmt = rep.get("format", "?")
        labels = ", ".join(f"{k} {v:,}" for k, v in sorted((rep.get("by_label") or {}).items())) or "none"
        out.append(f"**{name}** ({fmt} layout): {rep.get('kept', 0):,} images of {rep.get('patients', '?')} patients "
                   f"scored (by label: {labels}), none of them trained on; images duplicating an image of the split "
                   "were dropped.")
        if not rep.get("kept"):
            out.append("")
            out.append("The set is empty after filtering: nothing was scored.")
            out.append("")
            continue
        for task, arms in results["summary"].items():
            if not (rep.get("per_task") or {}).get(task, {}).get("covid"):
                continue
            where = ("patient-bootstrap 95% interval" if intervals
                     else "no interval: in the paper protocol the test set chose each model")
            out += ["", f"{task}: sensitivity % at each arm's own threshold (mean ± sd over {seeds} seed"
                        f"{'s' if seeds != 1 else ''}; on {name}, {where})", "",
                    f"| arm | internal test sensitivity % | {name} sensitivity % | {name} minus internal, points |",
                    "|---|---|---|---|"]
            for arm in arms.values():
                row, deltas[task, arm["concrete_arm"]] = _arm_row(arm, name, intervals)
                out.append(row)
        if positives_only(rep):  # the sentence that fits the signs: a drop and a rise are read differently
            place = WHERE.get(fmt, "another hospital")
            rises = [f"{arm} ({task})" for (task, arm), d in deltas.items() if d is not None and d > 0]
            if not rises or any(d is not None and d <= 0 for d in deltas.values()):
                out += ["", DROP_SENTENCE.format(where=place)]
            if rises:
                out += ["", RISE_SENTENCE.format(which=", ".join(rises), where=place)]
        out.append("")
    return "\n".join(out).strip()
