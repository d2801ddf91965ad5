"""``cxrsynth split``: records in, a split manifest out (``splits.json``).

Two methods:

- ``rigorous`` (default): patient-level. Whole patient groups (``Record.patient_group``, which ingest
  merges across sources for duplicate images) go to train / validation / test, greedily balancing every
  stratum (collection x label) towards the requested fractions, the groups taken in a seeded random
  order (``order``; largest-first, which reproduces splits made before, put every multi-image COVID-19
  patient in train). ``group_sizes`` in the manifest gives each split's patient-group sizes per label. :func:`check_leakage` then fails loudly
  if any patient sits in two splits.
- ``paper``: the original code's rule: per collection and class, the first ``int(0.8 * rows)`` label
  ROWS in file order are train and the rest test, then unique images. RSNA repeats rows per box, so this
  is not 80% of images. The rows counted are the source's label rows *before* deduplication and whether
  or not a file is present (the original cut its CSV, then copied files): :func:`source_label_rows`
  reads them again from the sources; without them the cut falls on the records' rows and a note says
  so. No validation split, no patient grouping: leakage is reported, not raised.

Patients: RSNA's ``patientId`` is an image id, so RSNA is split per image unless a patient mapping
(``cxrsynth.data.identity``: RSNA's mapping JSON, NIH's Data_Entry_2017.csv) joins its images to their NIH
patients; the manifest's ``patient_identity`` and notes say which.

Skew (negatives / positives) is reported for every split and task.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from .. import __version__
from ..core.config import at_least, between, to_dict
from ..core.errors import ConfigError, CxrsynthError, LeakageError
from ..data.identity import Identity, patient_groups
from ..core.layout import WorkLayout
from ..core.paths import read_json, sha256_file, write_json
from ..data.records import Record
from ..core.schemas import validate
from ..artifacts.splits import assignment_sha256, with_split_groups  # noqa: F401  (re-exported)
from ..core.vocab import TASK_LABELS

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitConfig:
    method: Literal["rigorous", "paper"] = "rigorous"
    seed: int = 0
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)  # train, validation, test (rigorous)
    paper_train_fraction: float = 0.8
    # The most of all records one patient group may hold (rigorous). A real patient holds a tiny share
    # (the largest NIH patient: 184 of 112,120 images); a patient map that joins thousands of images to
    # one patient is wrong, and would move them all into one split. Raise it to accept such a group.
    max_group_share: float = 0.05
    # The order the rigorous split takes patient groups in. "random" (seeded): each split gets groups of
    # every size. "largest-first" (splits made before 0.x; kept to reproduce them): the first groups all
    # go to train until it holds its share, so held-out COVID-19 was almost all single-image patients,
    # who in the collection come from other publications than the serial follow-ups of multi-image ones.
    order: Literal["random", "largest-first"] = "random"

    def __post_init__(self):
        fr = self.fractions  # NaN passed "non-negative" and the sum test alike, and put every record in train
        if len(fr) != 3 or not all(math.isfinite(f) and f >= 0 for f in fr) or abs(sum(fr) - 1) > 1e-6:
            raise ConfigError("fractions must be three finite, non-negative numbers summing to 1 "
                              "(train, validation, test)", fr)
        if not 0 < self.paper_train_fraction < 1:
            raise ConfigError("paper_train_fraction must be between 0 and 1", self.paper_train_fraction)
        at_least("seed", self.seed, 0)  # numpy refuses a negative seed with a traceback
        between("max_group_share", self.max_group_share, 0, 1)


def _key(r: Record, group_of: dict[str, str] | None) -> str:
    return group_of[r.record_id] if group_of else (r.patient_group or f"{r.source}:{r.patient_id}")


def rigorous_split(records: list[Record], fractions=(0.7, 0.1, 0.2), seed: int = 0,
                   group_of: dict[str, str] | None = None, order: str = "random") -> dict[str, str]:
    """Patient-level, stratified assignment ``record_id -> split``; deterministic for a seed.
    ``group_of``: record_id -> patient unit (default: the records' ``patient_group``); ``order``: see
    :class:`SplitConfig`."""
    groups: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        groups[_key(r, group_of)].append(r)
    strata_total: Counter = Counter(f"{r.collection}|{r.label}" for r in records)
    keys = sorted(groups)
    shuffled = np.random.default_rng(seed).permutation(len(keys))
    keys = [keys[i] for i in shuffled]
    if order == "largest-first":  # stable on the shuffled order
        keys = sorted(keys, key=lambda k: -len(groups[k]))
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


def empty_split_notes(assign: dict[str, str], fractions) -> list[str]:
    """The rigorous benchmark needs validation and test images: a split that came out empty although its
    fraction asked for images is refused (too few patient groups for that fraction), and one left empty
    because its fraction is 0 is said plainly, once, in the notes (``fractions=[1, 0, 0]`` was silent)."""
    counts = Counter(assign.values())
    asked_empty = []
    for name, frac in zip(SPLITS, fractions):
        if counts[name]:
            continue
        if frac > 0:
            raise ConfigError(f"the {name} split came out empty", f"fractions {list(fractions)}, {len(assign)} records",
                              f"raise the {name} fraction, or split more records")
        asked_empty.append(name)
    if not asked_empty:
        return []
    return [f"{' and '.join(asked_empty)} {'is' if len(asked_empty) == 1 else 'are'} empty, as fractions "
            f"{list(fractions)} asks: the rigorous benchmark cannot use this split (it needs validation and test "
            "images of both classes)"]


def source_label_rows(records: list[Record], ingest_config: dict | None = None) -> dict[tuple[str, str], list[int]]:
    """Every label row of each (collection, label), read again from the source folders with the ingest's
    reader settings: the rows the original cut, before deduplication dropped any image."""
    from ..core.config import build
    from .ingest import IngestConfig
    from ..data.sources import READERS

    icfg = build(IngestConfig, ingest_config or {})
    out: dict[tuple[str, str], list[int]] = defaultdict(list)
    for source, root, collection in sorted({(r.source, r.source_root, r.collection) for r in records}):
        scan = READERS[source].read(Path(root), getattr(icfg, source.replace("-", "_")), collection)
        for rec in scan.records:
            out[(collection, rec.label)] += rec.rows
    return {k: sorted(v) for k, v in out.items()}


def paper_split(records: list[Record], train_fraction: float = 0.8,
                label_rows: dict[tuple[str, str], list[int]] | None = None) -> tuple[dict[str, str], list[str]]:
    """The original rule; returns the assignment and notes (images whose rows straddle the cut).

    ``label_rows``: all label rows per (collection, label) from the sources (:func:`source_label_rows`);
    without them the cut is made on the records' own rows, which deduplication may have thinned."""
    by_class: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in records:
        by_class[(r.collection, r.label)].append(r)
    assign, notes = {}, []
    for (collection, label), recs in sorted(by_class.items()):
        own = sorted(row for r in recs for row in r.rows)
        rows = sorted(label_rows[(collection, label)]) if label_rows and (collection, label) in label_rows else own
        if len(rows) != len(own):
            notes.append(f"{collection}/{label}: the cut counts {len(rows)} source label rows; "
                         f"{len(rows) - len(own)} of them belong to images dropped at ingest (duplicates, bad files)")
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


def leaking_patients(records: list[Record], assign: dict[str, str],
                     group_of: dict[str, str] | None = None) -> dict[str, list[str]]:
    seen: dict[str, set[str]] = defaultdict(set)
    for r in records:
        if r.record_id in assign:
            seen[_key(r, group_of)].add(assign[r.record_id])
    return {p: sorted(s) for p, s in seen.items() if len(s) > 1}


def check_leakage(records: list[Record], assign: dict[str, str], group_of: dict[str, str] | None = None) -> None:
    """Raise :class:`LeakageError` if any patient group has images in two splits."""
    leaks = leaking_patients(records, assign, group_of)
    if leaks:
        first = sorted(leaks)[:3]
        raise LeakageError(f"{len(leaks)} patients appear in more than one split", ", ".join(first))


def skew(neg: int, pos: int) -> float | None:
    """Eq. 6 of the paper: negatives / positives (None when there are no positives)."""
    return round(neg / pos, 4) if pos else None


def summarise(records: list[Record], assign: dict[str, str], group_of: dict[str, str] | None = None) -> dict:
    counts = {s: Counter() for s in SPLITS}
    pix = {s: Counter() for s in SPLITS}
    patients = {s: set() for s in SPLITS}
    for r in records:
        s = assign[r.record_id]
        counts[s][r.label] += 1
        pix[s][r.label] += r.has_pixels
        patients[s].add(_key(r, group_of))
    return {
        "counts": {s: dict(counts[s]) for s in SPLITS},
        "with_pixels": {s: dict(pix[s]) for s in SPLITS},
        "patients": {s: len(patients[s]) for s in SPLITS},
        "skew": {s: {t: skew(counts[s][neg], counts[s][pos]) for t, (neg, pos) in TASK_LABELS.items()} for s in SPLITS},
    }


def group_sizes(records: list[Record], assign: dict[str, str], group_of: dict[str, str] | None = None) -> dict:
    """split -> label -> {images per patient group: number of groups}: whether held-out patients look
    like training patients (single-image vs serial follow-up)."""
    sizes: Counter = Counter()
    for r in records:
        sizes[(assign[r.record_id], r.label, _key(r, group_of))] += 1
    out: dict = {s: {} for s in SPLITS}
    for (split, label, _), n in sorted(sizes.items()):
        out[split].setdefault(label, Counter())[str(n)] += 1
    return {s: {lab: dict(sorted(c.items(), key=lambda kv: int(kv[0]))) for lab, c in v.items()} for s, v in out.items()}


def largest_group(records: list[Record], group_of: dict[str, str] | None) -> dict:
    """The biggest patient group: how many records it holds and their share of all records."""
    sizes = Counter(_key(r, group_of) for r in records)
    n = max(sizes.values())
    return {"records": n, "share": round(n / len(records), 4), "groups": len(sizes)}


def check_group_sizes(largest: dict, cfg: SplitConfig, total: int) -> list[str]:
    """A warning note when one patient group holds more than the default share of the records, and a
    refusal (rigorous) above ``cfg.max_group_share``: such a group comes from a wrong patient map (N34:
    one NIH image named for every RSNA id made one "patient" of 96% of the records, and the test split
    fell from 5,557 to 221 records)."""
    default = SplitConfig.__dataclass_fields__["max_group_share"].default
    if largest["share"] <= min(default, cfg.max_group_share):
        return []
    what = (f"one patient group holds {largest['share']:.1%} of the records ({largest['records']:,} of {total:,}), "
            "more than any real patient")
    if cfg.method == "rigorous" and largest["share"] > cfg.max_group_share:
        raise ConfigError(what, f"max_group_share {cfg.max_group_share}",
                          "check the --patient-map files (a wrong map joins many images to one patient); if the "
                          "group is right, raise it with --set max_group_share=1")
    effect = "all its records are in one split" if cfg.method == "rigorous" else "the leakage count takes it as one patient"
    return [f"WARNING: {what}; {effect} (check the --patient-map files)"]


RSNA_PER_IMAGE = ("RSNA is split per image: its patientId is an image id, and without a patient mapping "
                  "(RSNA's pneumonia-challenge-dataset-mappings_2018.json or NIH's Data_Entry_2017.csv, "
                  "`cxrsynth split --patient-map FILE`) images of one NIH patient can land in different splits")


def make_splits(records: list[Record], cfg: SplitConfig = SplitConfig(), records_path: Path | None = None,
                out_path: Path | None = None, identity: Identity | None = None,
                label_rows: dict[tuple[str, str], list[int]] | None = None) -> dict:
    """Assign every record to a split and build (and optionally write) the split manifest.

    ``identity``: RSNA <-> NIH patient mapping (``cxrsynth.data.identity.load_identity``). ``label_rows``
    (paper method): the sources' label rows; by default read again from the sources with the settings in
    ``ingest_config.json`` beside ``records_path``."""
    if not records:
        raise ConfigError("no records to split", records_path, "check the ingest report")
    group_of, identity_report = patient_groups(records, identity)
    id_notes = [RSNA_PER_IMAGE] if identity_report["rsna"] == "per image" else []
    largest = largest_group(records, group_of)
    id_notes += check_group_sizes(largest, cfg, len(records))
    if cfg.method == "rigorous":
        assign = rigorous_split(records, cfg.fractions, cfg.seed, group_of, cfg.order)
        check_leakage(records, assign, group_of)
        notes = id_notes + empty_split_notes(assign, cfg.fractions)
        leakage = {"checked": True, "patients_in_several_splits": 0}
    else:
        notes_pre: list[str] = []
        if label_rows is None and records_path is not None:
            icfg = WorkLayout(Path(records_path).parent).ingest_config  # ingest wrote it beside the records
            try:
                label_rows = source_label_rows(records, read_json(icfg) if icfg.is_file() else None)
            except CxrsynthError as exc:  # a source folder moved or changed since ingest
                notes_pre = [f"source label rows could not be read again ({exc.one_line()})"]
                label_rows = None
        assign, notes = paper_split(records, cfg.paper_train_fraction, label_rows)
        notes = notes_pre + notes
        if label_rows is None:
            notes.append("the 80% cut was made on the records' rows (no source rows given): images dropped at "
                         "ingest shift it")
        notes += id_notes
        leaks = leaking_patients(records, assign, group_of)
        leakage = {"checked": True, "patients_in_several_splits": len(leaks)}
        if leaks:
            notes.append(f"paper split is by rows, not patients: {len(leaks)} patients are in both train and test")
    manifest = {
        "kind": "cxrsynth.splits", "code_version": __version__, "config": to_dict(cfg),
        "records_file": Path(records_path).name if records_path else None,  # the work folder's own, by name
        "records_sha256": sha256_file(records_path) if records_path else None,
        "assignment_sha256": assignment_sha256(assign),
        **summarise(records, assign, group_of), "leakage": leakage, "patient_identity": identity_report,
        "largest_group": largest, "group_sizes": group_sizes(records, assign, group_of),
        "notes": notes, "assignments": assign,
        # the grouping the split used (with --patient-map: RSNA joined to NIH patients), kept so that the
        # bootstrap, the probes and the audit resample and exclude the same patients (with_split_groups)
        "patient_groups": {k: group_of[k] for k in sorted(assign)},
    }
    validate(manifest, "splits")
    if out_path is not None:
        write_json(out_path, manifest)
    return manifest
