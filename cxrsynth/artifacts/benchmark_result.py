"""What a benchmark hands on: its ``results.json``, stamped with the release whose images it trained
on, and the tables beside it.

``release_data_sha256`` is the stamp (the ``data_sha256`` of the release's shards; absent when no
release was judged, e.g. ``--arm real`` alone). The card takes a benchmark's tables only through
:func:`cxrsynth.artifacts.stamps.stamped_benchmark`, which refuses an unstamped or foreign result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..core.layout import BenchmarkFolder
from ..core.paths import read_json


@dataclass(frozen=True)
class BenchmarkResult:
    """``data``: ``results.json``'s content; ``folder``: the benchmark run folder it was read from or
    written to (None when made in memory); ``local``: the same results as the benchmark that wrote them
    holds them, with the caller's absolute local paths (results.json names them relative to the folders
    unless ``--record-paths``), or None when read from the file."""

    data: dict
    folder: Path | None = None
    local: dict | None = field(default=None, repr=False, compare=False)

    @classmethod
    def read(cls, folder: str | Path) -> BenchmarkResult:
        """The results of the run folder ``folder`` (``WORKDIR/benchmark`` or ``--out``)."""
        return cls(read_json(BenchmarkFolder(folder).results), Path(folder))

    @property
    def summary(self) -> dict:
        """The results as a dict: the caller's copy when this result was just made (``local``), else the
        file's. What ``run_benchmark`` returns."""
        return self.local if self.local is not None else self.data

    @property
    def path(self) -> Path | None:
        return BenchmarkFolder(self.folder).results if self.folder is not None else None

    @property
    def data_sha256(self) -> str | None:
        """The stamp: the ``data_sha256`` of the release benchmarked (None: no release was)."""
        return self.data.get("release_data_sha256")

    def tables(self) -> str:
        """The markdown tables written beside the results (``tables.md``)."""
        if self.folder is None:
            raise ValueError("a benchmark result made in memory has no tables file")
        return BenchmarkFolder(self.folder).tables.read_text().strip()
