"""Results by view (PA / AP / AP supine) and by sex, where a subgroup has enough patients.

Why: COVID-19 figures are often AP or AP supine, NIH and RSNA negatives mostly PA; a classifier can
score the view instead of the disease. Within one view that shortcut is gone, so an AUROC that holds
within views is evidence of more than view detection. A subgroup is measured only with at least
:data:`MIN_PATIENTS` patients of each class (fewer give intervals too wide to read); otherwise it is
reported as "not measurable" with its counts, never left out silently.
"""

from __future__ import annotations

import numpy as np

from ...measure import metrics as M

MIN_PATIENTS = 10  # per class, within the subgroup
VIEWS = {"PA": "PA", "AP": "AP", "AP SUPINE": "AP supine"}
SEXES = {"M": "male", "F": "female"}


def view_of(view: str | None) -> str | None:
    """The record's view as one of PA / AP / AP supine (others: laterals, unknown, None)."""
    return VIEWS.get(" ".join((view or "").replace("_", " ").upper().split()))


def sex_of(sex: str | None) -> str | None:
    return SEXES.get((sex or "").strip().upper()[:1])


def _arm_in(runs: list[dict], pick: np.ndarray, n: int, seed: int) -> dict:
    y = np.asarray(runs[0]["test_labels"])[pick]
    pats = [runs[0]["test_patients"][i] for i in pick]
    scores = [np.asarray(r["test_scores"], float)[pick] for r in runs]
    aucs = [M._auc(y, s) for s in scores]
    boot = M._patient_bootstrap(y, pats, lambda p: float(np.mean([M._auc(y[p], s[p]) for s in scores])), n, seed) if n else []
    sens = [float(np.mean(s[y == 1] >= r["threshold"])) for s, r in zip(scores, runs)]
    spec = [float(np.mean(s[y == 0] < r["threshold"])) for s, r in zip(scores, runs)]
    return {"auroc": float(np.mean(aucs)), "auroc_ci95": M._interval(boot, n, 0.95) if n else None,
            "sensitivity": float(np.mean(sens)), "specificity": float(np.mean(spec)), "seeds": len(runs)}


def subgroups(results: list[dict], meta: dict[str, tuple[str | None, str | None]], n: int = 1000, seed: int = 0) -> dict:
    """Per task, dimension (view, sex) and level: the counts, and per arm the AUROC (mean over seeds;
    patient-bootstrap interval, seeds fixed) and sensitivity / specificity at each run's threshold, or
    why it is not measurable. ``meta``: record_id -> (view, sex)."""
    out: dict = {"min_patients_per_class": MIN_PATIENTS, "tasks": {}}
    by_task: dict = {}
    for r in results:
        by_task.setdefault(r["task"], {}).setdefault(r["arm"], []).append(r)
    for task, arms in by_task.items():
        arms = {a: sorted(rs, key=lambda r: r["seed"]) for a, rs in arms.items()}
        ref = next(iter(arms.values()))[0]
        ids, y, pats = ref["test_record_ids"], np.asarray(ref["test_labels"]), ref["test_patients"]
        task_out = {}
        for dim, fn, col in (("view", view_of, 0), ("sex", sex_of, 1)):
            levels = [fn((meta.get(i) or (None, None))[col]) for i in ids]
            task_out[dim] = {"unrecorded_or_other_images": sum(v is None for v in levels)}
            for level in sorted({v for v in levels if v is not None}):
                pick = np.asarray([k for k, v in enumerate(levels) if v == level])
                pos = len({pats[k] for k in pick if y[k] == 1})
                neg = len({pats[k] for k in pick if y[k] == 0})
                entry = {"images": len(pick), "covid_patients": pos, "other_patients": neg}
                if min(pos, neg) < MIN_PATIENTS:
                    entry["not_measurable"] = (f"{pos} COVID-19 and {neg} other patients; needs {MIN_PATIENTS} "
                                               "of each")
                else:
                    entry["arms"] = {a: _arm_in([r for r in rs if r["test_record_ids"] == ids], pick, n, seed)
                                     for a, rs in arms.items() if any(r["test_record_ids"] == ids for r in rs)}
                task_out[dim][level] = entry
        out["tasks"][task] = task_out
    return out
