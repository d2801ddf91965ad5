"""``cxrsynth split``: records in, a split manifest out (``splits.json``).

Two methods:

- ``rigorous`` (default): patient-level. Whole patient groups (``Record.patient_group``, which ingest
  merges across sources for duplicate images) go to train / validation / test, greedily balancing every
  stratum (collection x label) towards the requested fractions. :func:`check_leakage` then fails loudly
  if any patient sits in two splits.
- ``paper``: the original code's rule: per collection and class, the first ``int(0.8 * rows)`` label
  ROWS in file order are train and the rest test, then unique images. RSNA repeats rows per box, so this
  is not 80% of images. No validation split, no patient grouping: leakage is reported, not raised.

Skew (negatives / positives) is reported for every split and task.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from . import __version__
from .config import at_least, to_dict
from .errors import ConfigError, LeakageError
from .paths import sha256_file, write_json
from .records import Record
from .schemas import validate

SPLITS = ("train", "validation", "test")
TASKS = {"normal-covid": ("normal", "covid"), "pneumonia-covid": ("pneumonia", "covid")}


@dataclass(frozen=True)
class SplitConfig:
    method: Literal["rigorous", "paper"] = "rigorous"
    seed: int = 0
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)  # train, validation, test (rigorous)
    paper_train_fraction: float = 0.8

    def __post_init__(self):
        if len(self.fractions) != 3 or any(f < 0 for f in self.fractions) or abs(sum(self.fractions) - 1) > 1e-6:
            raise ConfigError("fractions must be three non-negative numbers summing to 1", self.fractions)
        if not 0 < self.paper_train_fraction < 1:
            raise ConfigError("paper_train_fraction must be between 0 and 1", self.paper_train_fraction)
        at_least("seed", self.seed, 0)  # numpy refuses a negative seed with a traceback


def rigorous_split(records: list[Record], fractions=(0.7, 0.1, 0.2), seed: int = 0) -> dict[str, str]:
    """Patient-level, stratified assignment ``record_id -> split``; deterministic for a seed."""
    groups: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        groups[r.patient_group or f"{r.source}:{r.patient_id}"].append(r)
    strata_total: Counter = Counter(f"{r.collection}|{r.label}" for r in records)
    keys = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    # Large groups first (stable on the shuffled order) so they cannot spoil the balance at the end.
    keys = sorted((keys[i] for i in order), key=lambda k: -len(groups[k]))
    current = [Counter() for _ in SPLITS]
    assign: dict[str, str] = {}
    for key in keys:
        counts = Counter(f"{r.collection}|{r.label}" for r in groups[key])
        best, best_score = 0, None
        for s, frac in enumerate(fractions):
            if frac == 0:
                continue
            score = sum(n * (frac * strata_total[st] - current[s][st]) / strata_total[st] for st, n in counts.items())
            if best_score is None or score > best_score + 1e-12:
                best, best_score = s, score
        current[best].update(counts)
        for r in groups[key]:
            assign[r.record_id] = SPLITS[best]
    return assign


def paper_split(records: list[Record], train_fraction: float = 0.8) -> tuple[dict[str, str], list[str]]:
    """The original rule; returns the assignment and notes (images whose rows straddle the cut)."""
    by_class: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in records:
        by_class[(r.collection, r.label)].append(r)
    assign, notes = {}, []
    for (collection, label), recs in sorted(by_class.items()):
        rows = sorted(row for r in recs for row in r.rows)
        cut = int(train_fraction * len(rows))
        cut_row = rows[cut] if cut < len(rows) else float("inf")
        straddle = 0
        for r in recs:
            first, last = min(r.rows), max(r.rows)
            assign[r.record_id] = "train" if first < cut_row else "test"
            straddle += first < cut_row <= last
        notes.append(f"{collection}/{label}: {len(rows)} rows, first {cut} rows are train")
        if straddle:
            notes.append(f"{collection}/{label}: {straddle} images have rows on both sides of the cut; kept in train")
    return assign, notes


def leaking_patients(records: list[Record], assign: dict[str, str]) -> dict[str, list[str]]:
    seen: dict[str, set[str]] = defaultdict(set)
    for r in records:
        if r.record_id in assign:
            seen[r.patient_group or f"{r.source}:{r.patient_id}"].add(assign[r.record_id])
    return {p: sorted(s) for p, s in seen.items() if len(s) > 1}


def check_leakage(records: list[Record], assign: dict[str, str]) -> None:
    """Raise :class:`LeakageError` if any patient group has images in two splits."""
    leaks = leaking_patients(records, assign)
    if leaks:
        first = sorted(leaks)[:3]
        raise LeakageError(f"{len(leaks)} patients appear in more than one split", ", ".join(first))


def skew(neg: int, pos: int) -> float | None:
    """Eq. 6 of the paper: negatives / positives (None when there are no positives)."""
    return round(neg / pos, 4) if pos else None


def summarise(records: list[Record], assign: dict[str, str]) -> dict:
    counts = {s: Counter() for s in SPLITS}
    pix = {s: Counter() for s in SPLITS}
    patients = {s: set() for s in SPLITS}
    for r in records:
        s = assign[r.record_id]
        counts[s][r.label] += 1
        pix[s][r.label] += r.has_pixels
        patients[s].add(r.patient_group)
    return {
        "counts": {s: dict(counts[s]) for s in SPLITS},
        "with_pixels": {s: dict(pix[s]) for s in SPLITS},
        "patients": {s: len(patients[s]) for s in SPLITS},
        "skew": {s: {t: skew(counts[s][neg], counts[s][pos]) for t, (neg, pos) in TASKS.items()} for s in SPLITS},
    }


def make_splits(records: list[Record], cfg: SplitConfig = SplitConfig(), records_path: Path | None = None,
                out_path: Path | None = None) -> dict:
    """Assign every record to a split and build (and optionally write) the split manifest."""
    if not records:
        raise ConfigError("no records to split", records_path, "check the ingest report")
    if cfg.method == "rigorous":
        assign = rigorous_split(records, cfg.fractions, cfg.seed)
        check_leakage(records, assign)
        notes, leakage = [], {"checked": True, "patients_in_several_splits": 0}
    else:
        assign, notes = paper_split(records, cfg.paper_train_fraction)
        leaks = leaking_patients(records, assign)
        leakage = {"checked": True, "patients_in_several_splits": len(leaks)}
        if leaks:
            notes.append(f"paper split is by rows, not patients: {len(leaks)} patients are in both train and test")
    manifest = {
        "kind": "cxrsynth.splits", "code_version": __version__, "config": to_dict(cfg),
        "records_file": str(records_path) if records_path else None,
        "records_sha256": sha256_file(records_path) if records_path else None,
        "assignment_sha256": hashlib.sha256("\n".join(f"{k}\t{assign[k]}" for k in sorted(assign)).encode()).hexdigest(),
        **summarise(records, assign), "leakage": leakage, "notes": notes, "assignments": assign,
    }
    validate(manifest, "splits")
    if out_path is not None:
        write_json(out_path, manifest)
    return manifest
