"""The analyses results.json carries beside the per-arm summary (issue 20), computed from the cells'
result files alone, as ``run.summarise`` does for every launcher:

- ``operating_points``: every arm at one fixed specificity picked on validation (``operating.py``);
- ``power``: the minimal detectable differences of the test split, stated before the grid (``power.py``);
- ``comparisons``: the primary comparison and the Holm-corrected secondary ones (``power.py``);
- ``calibration``: ECE and reliability per arm (``calibration.py``);
- ``subgroups``: by view and sex where measurable (``subgroups.py``).
"""

from __future__ import annotations

from .calibration import calibration
from .operating import compare_arms
from .power import comparisons, power_before_grid
from .inputs import SplitData
from .subgroups import subgroups


def operating_points(results: list[dict], bootstrap: int) -> dict:
    """Per task: every arm at one fixed specificity, beside the own-threshold numbers of the summary."""
    by_task: dict = {}
    for r in results:
        by_task.setdefault(r["task"], {}).setdefault(r["arm"], []).append(r)
    return {task: compare_arms(arms, bootstrap) for task, arms in sorted(by_task.items())}


def analyses(data: SplitData, cfg, results: list[dict], summary: dict) -> dict:
    """The five analyses above, as results.json keys (``data``: the records and split)."""
    records = data.grouped
    ops = operating_points(results, cfg.bootstrap)
    return {"operating_points": ops, "power": power_before_grid(data, cfg.tasks, cfg.limit),
            "comparisons": comparisons(results, summary, ops, cfg.bootstrap),
            "calibration": calibration(results),
            "subgroups": subgroups(results, {r.record_id: (r.view, r.sex) for r in records}, cfg.bootstrap)}
