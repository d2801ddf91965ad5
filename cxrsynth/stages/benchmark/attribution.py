"""What the synthetic images add, read three ways from the finished runs of one task.

- **Against two references.** Every arm is compared, paired by seed, with ``real`` and with
  ``real-oversampled``: the latter has as many positives as ``real+all`` (real COVID-19 repeated), so
  it matches the synthetic arms' class balance and, at a fixed epoch count, their optimizer steps. A
  synthetic arm that beats ``real`` but not ``real-oversampled`` has shown a count or step effect, not
  a translator effect.
- **The step budget, per arm.** Arms differ in size, and early stopping ends each run at its own epoch,
  so their budgets differ. It is reported, not equalised (cheaper, and honest as long as it is read):
  optimizer steps, epochs run, best epoch, and how many seeds peaked at their last epoch (a run that
  peaks at its last epoch had not converged, so its ranking is uncertain).
- **The prior-shift reading.** At the fixed 0.5 cut (the paper's argmax), adding positives lowers the
  training skew, which moves scores up: sensitivity at 0.5 rises and specificity falls even when the
  ranking (AUROC) does not improve. Sensitivity at 0.5, specificity at 0.5 and AUROC are put side by
  side for every arm, and an arm whose sensitivity at 0.5 rises over ``real`` while its AUROC does not
  is named as such.
"""

from __future__ import annotations

from ...measure import metrics as M

#: The references every arm is compared with: key in the arm's summary -> reference arm.
REFERENCES = {"auroc_vs_real": "real", "auroc_vs_oversampled": "real-oversampled"}


def paired_against(by_arm: dict[str, list[dict]], ref_arm: str, bootstrap: int) -> dict[str, dict]:
    """arm -> its paired-by-seed difference from ``ref_arm`` (AUROC and sensitivity; metrics.paired_seed_difference),
    for every arm with at least one seed scored on the same test images as the reference."""
    if ref_arm not in by_arm:
        return {}
    ref = {r["seed"]: r for r in by_arm[ref_arm]}
    out = {}
    for arm, runs in by_arm.items():
        pairs = [(ref[r["seed"]], r) for r in runs if r["seed"] in ref
                 and r["test_record_ids"] == ref[r["seed"]]["test_record_ids"]]
        if arm == ref_arm or not pairs:
            continue
        a, b = zip(*pairs)
        out[arm] = M.paired_seed_difference(
            a[0]["test_labels"], a[0]["test_patients"], [r["test_scores"] for r in a], [r["test_scores"] for r in b],
            [r["threshold"] for r in a], [r["threshold"] for r in b], bootstrap)
    return out


def budget(runs: list[dict]) -> dict:
    """The training budget one arm's seeds took (steps are absent from runs made before they were recorded)."""
    fits = [r.get("fit") or {} for r in runs]
    last = [f["best_epoch"] == f["epochs_run"] for f in fits if f.get("epochs_run")]
    return {"steps": M.summarise_seeds([f.get("steps") for f in fits]),
            "epochs_run": M.summarise_seeds([f.get("epochs_run") for f in fits]),
            "best_epoch": M.summarise_seeds([f.get("best_epoch") for f in fits]),
            "best_at_last_epoch": sum(last), "seeds": len(last)}


def _at_half(run: dict) -> tuple[float | None, float | None]:
    y, s = run["test_labels"], run["test_scores"]
    m = M.threshold_metrics(y, s, 0.5)
    return m["sensitivity"], m["specificity"]


def prior_shift(by_arm: dict[str, list[dict]]) -> dict[str, dict]:
    """arm -> mean over seeds of sensitivity and specificity at the 0.5 cut and of AUROC, each arm's
    differences from ``real``, and ``prior_shift``: true when sensitivity at 0.5 rises over ``real`` while
    AUROC does not (a shift of the class prior, not a better classifier)."""
    rows = {}
    for arm, runs in by_arm.items():
        half = [_at_half(r) for r in runs]
        rows[arm] = {"sensitivity_at_0.5": M.summarise_seeds([h[0] for h in half])["mean"],
                     "specificity_at_0.5": M.summarise_seeds([h[1] for h in half])["mean"],
                     "auroc": M.summarise_seeds([r["test"]["auroc"] for r in runs])["mean"]}
    ref = rows.get("real")
    for arm, row in rows.items():
        if ref is None or arm == "real" or None in (row["sensitivity_at_0.5"], row["auroc"], ref["sensitivity_at_0.5"],
                                                     ref["auroc"]):
            row |= {"sensitivity_vs_real": None, "specificity_vs_real": None, "auroc_vs_real": None, "prior_shift": False}
            continue
        d_sens = row["sensitivity_at_0.5"] - ref["sensitivity_at_0.5"]
        d_auc = row["auroc"] - ref["auroc"]
        d_spec = (None if row["specificity_at_0.5"] is None or ref["specificity_at_0.5"] is None
                  else row["specificity_at_0.5"] - ref["specificity_at_0.5"])
        row |= {"sensitivity_vs_real": d_sens, "specificity_vs_real": d_spec, "auroc_vs_real": d_auc,
                "prior_shift": d_sens > 0 and d_auc <= 0}
    return rows


def prior_shift_lines(task: str, rows: dict[str, dict], names: dict[str, str]) -> list[str]:
    """The Markdown table (every arm: sensitivity and specificity at 0.5, AUROC, and their differences from
    real) and one sentence per arm whose sensitivity at 0.5 rises while its AUROC does not."""
    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}"

    def pts(v):
        return "-" if v is None else f"{100 * v:+.1f}"

    md = [f"#### {task}: the prior-shift reading (fixed 0.5 cut)\n",
          "| arm | sensitivity at 0.5 % | specificity at 0.5 % | AUROC | sensitivity vs real, points | "
          "specificity vs real, points | AUROC vs real |", "|---|---|---|---|---|---|---|"]
    for arm, r in rows.items():
        auc = "-" if r["auroc"] is None else f"{r['auroc']:.3f}"
        dauc = "-" if r["auroc_vs_real"] is None else f"{r['auroc_vs_real']:+.3f}"
        md.append(f"| {names[arm]} | {pct(r['sensitivity_at_0.5'])} | {pct(r['specificity_at_0.5'])} | {auc} | "
                  f"{pts(r['sensitivity_vs_real'])} | {pts(r['specificity_vs_real'])} | {dauc} |")
    md.append("")
    for arm, r in rows.items():
        if r["prior_shift"]:
            md.append(f"{names[arm]}: sensitivity at 0.5 rises by {pts(r['sensitivity_vs_real'])} points over real "
                      f"while AUROC does not ({r['auroc_vs_real']:+.3f}; specificity {pts(r['specificity_vs_real'])} "
                      "points): a shift of the class prior (more positives in training move every score up), not a "
                      "better classifier.\n")
    return md


def budget_lines(task: str, arms: dict[str, dict]) -> list[str]:
    """The Markdown table of each arm's step budget and its differences from both references."""
    def stat(s, digits=0):
        return "-" if not s or s["mean"] is None else f"{s['mean']:.{digits}f}"

    def diff(d, key, ci_key, pct):
        if not d or d.get(key) is None:
            return "-"
        f = (lambda v: f"{100 * v:+.1f}") if pct else (lambda v: f"{v:+.3f}")
        ci = d.get(ci_key)
        return f(d[key]) + (f" [{f(ci[0])}, {f(ci[1])}]" if ci else "")

    if not any((s.get("budget") or {}).get("seeds") or any(s.get(k) for k in REFERENCES) for s in arms.values()):
        return []  # nothing trained here (--eval-only) and nothing to compare
    md = [f"#### {task}: what the synthetic images add (vs real and vs the count-matched real-oversampled)\n",
          "| arm | steps | epochs run | best epoch | seeds peaking at last epoch | AUROC vs real | "
          "AUROC vs real-oversampled | sensitivity vs real, points | sensitivity vs real-oversampled, points |",
          "|---|---|---|---|---|---|---|---|---|"]
    for s in arms.values():
        b = s.get("budget") or {}
        peak = f"{b['best_at_last_epoch']} of {b['seeds']}" if b.get("seeds") else "-"
        md.append(f"| {s['concrete_arm']} | {stat(b.get('steps'))} | {stat(b.get('epochs_run'), 1)} | "
                  f"{stat(b.get('best_epoch'), 1)} | {peak} | "
                  + " | ".join(diff(s.get(k), "difference", "ci95", False) for k in REFERENCES) + " | "
                  + " | ".join(diff(s.get(k), "sensitivity_difference", "sensitivity_ci95", True) for k in REFERENCES)
                  + " |")
    md += ["", "Steps differ between arms (larger training sets take more steps per epoch; early stopping ends each "
           "run at its own epoch): the budget is reported, not equalised. An arm whose seeds peak at their last "
           "epoch had not converged, and its ranking is uncertain. real-oversampled has as many positives as "
           "real+all, so a synthetic arm's gain over real that it does not keep over real-oversampled is a count or "
           "step effect, not something the translator added.\n"]
    return md
