"""A benchmark run folder's identity, readable without the benchmark: what a cell's key is made of, and
which of its numbers may carry intervals.

``benchmark/run.py`` writes ``inputs.json`` (what the run's numbers depend on) and one ``result.json``
per cell carrying ``cell_key``; the audit checks a classifier it picks up by itself against them
(``audit/own_classifier.py``). Both use this one definition, so the audit need not import the benchmark.
"""

from __future__ import annotations

import hashlib
import json


#: Config keys that say how wide the grid is, not what any one cell computes: a run widened to more seeds,
#: arms or tasks (or narrowed) keeps the cells it has finished.
GRID_KEYS = ("seeds", "arms", "tasks")


def cell_inputs(inputs: dict) -> dict:
    """The run's inputs less the grid's extent (:data:`GRID_KEYS`): what every cell's numbers depend on."""
    cfg = inputs.get("config")
    if not isinstance(cfg, dict):
        return inputs
    return inputs | {"config": {k: v for k, v in cfg.items() if k not in GRID_KEYS}}


def cell_key(inputs: dict, task: str, arm: str, seed: int) -> str:
    """What one cell's numbers depend on: the run's inputs (less the grid's extent) and the cell itself."""
    text = json.dumps({"inputs": cell_inputs(inputs), "cell": [task, arm, seed]}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def legacy_cell_key(inputs: dict, task: str, arm: str, seed: int) -> str:
    """The key cells carried before the grid's extent was left out of it (the whole inputs): a folder
    written then is re-keyed on its next run (``benchmark/run.py``), and read as it is by the audit."""
    text = json.dumps({"inputs": inputs, "cell": [task, arm, seed]}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def accepted_cell_keys(inputs: dict, task: str, arm: str, seed: int) -> tuple[str, str]:
    """The keys a finished cell of ``inputs`` may carry: today's, and the one written before the grid's
    extent left the key (what readers that must not rewrite a folder, the audit and ``--status``, accept)."""
    return cell_key(inputs, task, arm, seed), legacy_cell_key(inputs, task, arm, seed)


def shows_intervals(results: dict) -> bool:
    """Whether a benchmark result's intervals may be printed: not in the paper protocol, where the test
    set chose each model (early stopping and the learning-rate schedule watched it), so an interval over
    test patients would describe a selection, not an estimate. The one rule for the tables, the report
    and the dataset card."""
    return results.get("protocol") != "paper"


#: A rate whose 95% interval is wider than this (50 points) is "not measurable": the interval would admit
#: almost anything. One cut-off for the same-source controls, the external sets, the report and the card.
MAX_READABLE_CI_WIDTH = 0.5


def external_not_measurable(e: dict) -> str | None:
    """Why an arm's sensitivity on an external set (one entry of ``controls.external`` in ``results.json``)
    cannot be read, e.g. ``"not measurable (4 patients)"``: no interval, or one wider than
    :data:`MAX_READABLE_CI_WIDTH`; None when it can (or when there is no sensitivity at all)."""
    if ((e or {}).get("sensitivity") or {}).get("mean") is None:
        return None
    if "not_measurable_why" in e:  # judged before its interval was withheld (report.without_intervals)
        return e["not_measurable_why"] or None
    ci = e.get("sensitivity_patient_ci95") or e.get("sensitivity_wilson95")
    if ci and ci[1] - ci[0] <= MAX_READABLE_CI_WIDTH:
        return None
    pats = e.get("n_positive_patients")
    return f"not measurable ({pats} patients)" if pats is not None else "not measurable"

