"""What every source reader returns, and the few helpers they share.

A reader turns one upstream folder into labelled :class:`~cxrsynth.records.Record` objects *from its
metadata alone*; decoding pixels, hashing and deduplication happen once, for all sources, in
``cxrsynth.ingest``. Rows a reader does not use are counted by reason in ``excluded``; rows it cannot
use because they are broken are listed in ``problems``. Nothing is dropped without one or the other.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInputError
from ..records import Record


@dataclass
class Problem:
    """A file or row that could not be used, and why."""

    collection: str
    path: str
    reason: str
    row: int | None = None


@dataclass
class SourceScan:
    records: list[Record] = field(default_factory=list)
    excluded: Counter = field(default_factory=Counter)  # reason -> rows left out on purpose
    problems: list[Problem] = field(default_factory=list)
    rows_read: int = 0
    notes: list[str] = field(default_factory=list)
    root: str | None = None  # the folder read
    listed: set[str] = field(default_factory=set)  # every file path the metadata names, used or not


def read_csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """All rows of a CSV as strings (ids stay strings: '00012' is not 12), header stripped of blanks.

    Upstream files end rows with a trailing comma (an empty last column); that column is dropped.
    """
    if not path.is_file():
        raise BadInputError("metadata file not found", path)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise BadInputError("metadata file is empty", path) from None
        header = [h.strip() for h in header]
        rows = []
        for line in reader:
            row = {h: (line[i].strip() if i < len(line) else "") for i, h in enumerate(header) if h}
            rows.append(row)
    return [h for h in header if h], rows


def parse_age(raw: str | None) -> float | None:
    """'58', '058Y', '6M', '' -> years (None when absent or implausible, over 120)."""
    if raw is None:
        return None
    text = str(raw).strip().upper()
    if not text:
        return None
    unit = 1.0
    if text[-1] in "YMWD":
        unit = {"Y": 1.0, "M": 1 / 12, "W": 1 / 52, "D": 1 / 365}[text[-1]]
        text = text[:-1]
    try:
        age = float(text) * unit
    except ValueError:
        return None
    return age if 0 <= age <= 120 else None


def norm_sex(raw: str | None) -> str | None:
    text = (raw or "").strip().upper()[:1]
    return text if text in ("M", "F") else None


def require_columns(path: Path, header: list[str], needed: set[str]) -> None:
    missing = needed - set(header)
    if missing:
        raise BadInputError("metadata file lacks columns", path, ", ".join(sorted(missing)))
