"""The training time a run's report keeps when ``train --resume`` had nothing left to train.

``train --resume`` on a finished run re-exports the generator without a step, and used to rewrite
``train_report.json`` with that no-op's time (``seconds: 0.01`` for a 26-step run) and no losses, losing
the real ones.
"""

from __future__ import annotations

from pathlib import Path

from ...core.paths import read_json

KEPT = ("seconds", "seconds_per_step", "last_losses")


def keep_timing(report: dict, previous: Path, steps_run: int) -> dict:
    """``report`` with the timing and last losses of the ``previous`` report when this call ran no step and
    that report is of the same run length (its steps); otherwise ``report`` as it is."""
    if steps_run > 0 or not Path(previous).is_file():
        return report
    try:
        old = read_json(previous)
    except (OSError, ValueError):
        return report  # an unreadable old report: nothing to keep
    if not isinstance(old, dict) or old.get("steps") != report.get("steps"):
        return report
    return report | {k: old[k] for k in KEPT if k in old}
