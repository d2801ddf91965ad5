"""Folders of real X-rays from elsewhere (``--external NAME=DIR``), read once for whoever compares with them.

The benchmark scores every model on them (``benchmark/external.py``); the audit measures their real
COVID-19 as the "another hospital" fidelity baseline (``audit/fidelity.py``). Both need the same two
guarantees, so they live here, below both: a set is named safely (its NAME becomes a JSON key and a table
column), and it is really external. Images that duplicate *any* image of the work folder's split (train,
validation or test) are dropped and counted per split: a copy of an internal test image scored as
"external" would only re-score the test set. Every other image left out is counted by reason.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np

from ..core.errors import BadInputError, ConfigError
from ..data.images import decode, thumbnail
from ..data.records import Record
from .splits import SPLITS

EXTERNAL_NAME = re.compile(r"[A-Za-z0-9._-]+")


def patient_key(name: str, r: Record) -> str:
    """The patient of external record ``r`` of set ``name``, as bootstraps and grouped folds resample it."""
    return f"{name}:{r.patient_group or r.patient_id}"


def parse_externals(specs) -> dict[str, str]:
    """``["NAME=DIR", ...]`` -> {NAME: DIR}; a clear error for a malformed or repeated name."""
    out: dict[str, str] = {}
    for spec in specs or ():
        name, sep, folder = str(spec).partition("=")
        if not sep or not name or not folder:
            raise ConfigError("an external set is NAME=DIR", spec, "e.g. --external site-b=/data/site-b")
        if not EXTERNAL_NAME.fullmatch(name):  # it becomes a column of tables.md / tables.csv and a JSON key
            raise ConfigError("an external set's NAME may hold only letters, digits, '.', '_' and '-'", name,
                              "e.g. --external site-b=/data/site-b")
        if name in out:
            raise ConfigError("external set named twice", name)
        if not Path(folder).is_dir():
            raise BadInputError("external set folder not found", folder)
        out[name] = folder
    return out


def internal_duplicates(ext: list[Record], internal: list[Record], max_hamming: int, max_zmad: float) -> dict[str, str]:
    """External record id -> the internal record it duplicates (same pixels, or dhash close and
    thumbnails alike: the ingest's rule)."""
    internal = [r for r in internal if r.has_pixels and r.dhash is not None]
    if not internal:
        return {}
    by_sha = {r.pixel_sha256: r for r in internal}
    th = np.array([r.dhash for r in internal], dtype=np.uint64)
    out, thumbs = {}, {}

    def thumb(r: Record):
        if r.record_id not in thumbs:
            thumbs[r.record_id] = thumbnail(decode(r.path, 256).pixels).astype(np.float32)
        return thumbs[r.record_id]

    for e in ext:
        if e.pixel_sha256 in by_sha:
            out[e.record_id] = by_sha[e.pixel_sha256].record_id
            continue
        near = np.nonzero(np.bitwise_count(th ^ np.uint64(e.dhash)) <= max_hamming)[0]
        for j in near:
            if float(np.abs(thumb(e) - thumb(internal[j])).mean()) <= max_zmad:
                out[e.record_id] = internal[j].record_id
                break
    return out


def read_external(folder: str, data) -> tuple[list[Record], dict]:
    """Ingest ``folder`` (any format ``cxrsynth ingest`` reads, the Hannover layout included) and drop
    images duplicating an image of the split, counted per split; every other loss is counted by reason.
    ``data``: the records and split (:class:`~cxrsynth.artifacts.SplitData`). Returns the kept records
    (with pixels) and the counts."""
    from .ingest import IngestConfig, ingest

    icfg = IngestConfig()
    res = ingest([folder], icfg, external=True)
    assign = data.assign
    internal = [r for r in data.records if assign.get(r.record_id) in SPLITS]
    split_of = {r.record_id: assign[r.record_id] for r in internal}
    recs = [r for r in res.records if r.has_pixels]
    dups = internal_duplicates(recs, internal, icfg.dedupe_max_hamming, icfg.dedupe_max_zmad)
    dup_splits = Counter(split_of[v] for v in dups.values())
    kept = [r for r in recs if r.record_id not in dups]
    tot = res.report["totals"]
    formats = sorted({c["format"] for c in res.report["collections"].values()})
    report = {"folder": str(folder), "format": formats[0] if len(formats) == 1 else formats,
              "listed": len(res.records) + tot["bad_files"] + tot["outside_source"] + tot["duplicates_dropped"],
              "images": len(res.records), "with_pixels": len(recs), "label_only": len(res.records) - len(recs),
              "kept": len(kept), "patients": len({r.patient_group or r.patient_id for r in kept}),
              "duplicates_of_training_dropped": dup_splits["train"],
              "duplicates_of_validation_dropped": dup_splits["validation"],
              "duplicates_of_test_dropped": dup_splits["test"],
              "within_set_duplicates_dropped": tot["duplicates_dropped"],
              "bad_files": tot["bad_files"], "outside_source": tot["outside_source"],
              "missing_files": tot["missing_files"], "problems": tot["problems"],
              "problem_examples": [f"{p['path']}: {p['reason']}" for p in res.report["problems"][:5]]
              + [f"{b['path']}: {b['reason']}" for b in res.report["bad_files"][:5]],
              "by_label": dict(Counter(r.label for r in kept)),
              "by_view": dict(Counter(r.view or "unknown" for r in kept))}
    return kept, report
