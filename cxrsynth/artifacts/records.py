"""The record table (``records.parquet``) as a value: what ingest wrote, read once, with a stamp.

A stage that needs the real images' records takes a :class:`Records` (or its ``items``) instead of a
work folder, so that a test can hand it a few records made in ``tmp_path``. The reader and writer are
``cxrsynth.data.records``' own; this class adds the stamp.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..data.records import Record, read_records, write_records


@dataclass(frozen=True, eq=False)
class Records:
    """``items``: the records in table order; ``path``: the file they were read from (None: made in memory)."""

    items: list[Record]
    path: Path | None = None

    @classmethod
    def read(cls, path: str | Path) -> Records:
        return cls(read_records(path), Path(path))

    def write(self, path: str | Path) -> Records:
        """Write the table (atomically); returns the records as read back from ``path``'s name."""
        return Records(self.items, write_records(self.items, path))

    @property
    def sha256(self) -> str:
        """The stamp: a sha256 of the records' content in order (not of the parquet bytes, which depend
        on the pyarrow version), so the same records give the same stamp wherever they were written."""
        text = json.dumps([dataclasses.asdict(r) for r in self.items], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def by_id(self) -> dict[str, Record]:
        return {r.record_id: r for r in self.items}
