"""What every source reader returns, and the few helpers they share.

A reader turns one upstream folder into labelled :class:`~cxrsynth.data.records.Record` objects *from its
metadata alone*; decoding pixels, hashing and deduplication happen once, for all sources, in
``cxrsynth.stages.ingest``. Rows a reader does not use are counted by reason in ``excluded``; rows it cannot
use because they are broken are listed in ``problems``. Nothing is dropped without one or the other.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ...core.errors import BadInputError
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


class CsvRows(list):
    """The data rows of a CSV in file order, as dicts. A row with the wrong number of fields is ``None`` in
    its place (so that every other row keeps its row number, which the paper split uses) and is described
    in ``problems``, which the reader passes on to its scan: it is reported, never read shifted."""

    def __init__(self):
        super().__init__()
        self.problems: list[Problem] = []


def _fits(line: list[str], header: list[str]) -> bool:
    """Whether a row has the header's fields: exactly, or plus one trailing empty field when the header
    has no trailing comma but the rows do. (A header with a trailing comma needs rows with one: a row
    one field short is as likely to have lost a comma in the middle.)"""
    n = len(header)
    return len(line) == n or (header[-1] != "" and len(line) == n + 1 and line[-1].strip() == "")


def read_csv_rows(path: Path, collection: str = "") -> tuple[list[str], CsvRows]:
    """All rows of a CSV as strings (ids stay strings: '00012' is not 12), header stripped of blanks.

    Upstream files end rows with a trailing comma (an empty last column); that column is dropped. Blank
    lines are skipped. A file that is not UTF-8 or not CSV raises :class:`BadInputError` naming the file
    and line; a row with the wrong number of fields (an unquoted comma would shift every later column) is
    left out and reported (see :class:`CsvRows`).
    """
    if not path.is_file():
        raise BadInputError("metadata file not found", path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise BadInputError("metadata file is not valid UTF-8", f"{path} line {line}",
                            f"byte {raw[exc.start]:#04x} at offset {exc.start}; save the file as UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)  # a broken quote must not swallow rows
    rows = CsvRows()
    try:
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise BadInputError("metadata file is empty", path) from None
        for line in reader:
            if not line:
                continue
            if not _fits(line, header):
                rows.problems.append(Problem(collection, str(path), (
                    f"line {reader.line_num}: {len(line)} fields where the header has {len(header)} (an unquoted "
                    "comma or a broken quote?); row left out"), len(rows)))
                rows.append(None)
                continue
            rows.append({h: (line[i].strip() if i < len(line) else "") for i, h in enumerate(header) if h})
    except csv.Error as exc:
        raise BadInputError(f"metadata file is not valid CSV ({exc})", f"{path} line {reader.line_num}") from None
    return [h for h in header if h], rows


def path_problem(root: str | Path, rel: str, resolve: bool = True, folders: dict[str, str] | None = None) -> str | None:
    """Why the metadata path ``rel`` must not be read under ``root``, or None when it is safe.

    Metadata is input like any other: a row naming ``../x``, ``/etc/hostname`` or a link that resolves
    outside the source folder would make ingest read (and list in its report) files that are not the
    data. ``resolve=False`` skips the link check (for paths only named, never opened). ``folders``: a
    cache of resolved folders for a loop over many rows (:func:`_real_folder`).
    """
    if not rel or "\0" in rel:
        return "is empty or holds a NUL byte"
    if os.path.isabs(rel):
        return "is absolute"
    if ".." in rel.replace("\\", "/").split("/"):
        return "climbs out of the source folder with '..'"
    if resolve:
        folders = {} if folders is None else folders
        base = _real_folder(str(root), folders)
        parent, name = os.path.split(os.path.join(base, rel))
        real = os.path.join(_real_folder(parent, folders), name)
        if os.path.islink(real):  # the file itself is a link: follow it
            real = os.path.realpath(real)
        if os.path.commonpath([base, real]) != base:
            return "is a symbolic link that resolves outside the source folder"
    return None


def _real_folder(path: str, folders: dict[str, str]) -> str:
    """``os.path.realpath`` of a folder, once per ``folders`` cache: ingest checks every row of RSNA's
    metadata (53,000 paths in a handful of folders), and a realpath a row cost a third of that ingest's
    time."""
    if path not in folders:
        folders[path] = os.path.realpath(path)
    return folders[path]


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


def scan_metadata(root: Path, meta: Path, collection: str, needed: set[str]) -> tuple[SourceScan, CsvRows]:
    """The start of every reader driven by one metadata CSV (covid-collection, NIH, RSNA, Hannover):
    ``meta``'s rows (:func:`read_csv_rows`), refused unless they have the ``needed`` columns
    (:func:`require_columns`), and a new :class:`SourceScan` of ``root`` that counts them as read and carries their
    problems (rows of the wrong width), so that no reader can forget either."""
    header, rows = read_csv_rows(meta, collection)
    require_columns(meta, header, needed)
    return SourceScan(rows_read=len(rows), root=str(root), problems=list(rows.problems)), rows
