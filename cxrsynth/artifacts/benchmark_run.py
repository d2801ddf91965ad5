"""A benchmark run folder's identity, readable without the benchmark: what a cell's key is made of, and
which of its numbers may carry intervals.

``benchmark/run.py`` writes ``inputs.json`` (what the run's numbers depend on) and one ``result.json``
per cell carrying ``cell_key``; the audit checks a classifier it picks up by itself against them
(``audit/own_classifier.py``). Both use this one definition, so the audit need not import the benchmark.
"""

from __future__ import annotations

import hashlib
import json


def cell_key(inputs: dict, task: str, arm: str, seed: int) -> str:
    """What one cell's numbers depend on: the run's inputs and the cell itself."""
    text = json.dumps({"inputs": inputs, "cell": [task, arm, seed]}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def shows_intervals(results: dict) -> bool:
    """Whether a benchmark result's intervals may be printed: not in the paper protocol, where the test
    set chose each model (early stopping and the learning-rate schedule watched it), so an interval over
    test patients would describe a selection, not an estimate. The one rule for the tables, the report
    and the dataset card."""
    return results.get("protocol") != "paper"
