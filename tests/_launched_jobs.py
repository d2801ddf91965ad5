"""Functions that tests launch as jobs (submitit pickles them by reference, so a job imports this module).

Why a module of its own: a job that unpickles a function from a test module imports that module, and a
test module imports torch and the stages (seconds per job start, twice for a requeued job). This one
imports only the standard library.
"""

from __future__ import annotations

import time
from pathlib import Path


def starts_then_waits(folder: str) -> int:
    """A launched job for the preemption test: counts its starts in ``folder/starts``, waits for
    ``folder/go``, and returns how many times it started."""
    starts = Path(folder) / "starts"
    n = int(starts.read_text()) + 1 if starts.exists() else 1
    starts.write_text(str(n))
    while not (Path(folder) / "go").exists():
        time.sleep(0.05)
    return n
