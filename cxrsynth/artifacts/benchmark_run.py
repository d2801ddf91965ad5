"""A benchmark run folder's identity, readable without the benchmark: what a cell's key is made of.

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
