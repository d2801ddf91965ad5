"""What the benchmark reads of the real side, already read: the records, the split manifest, the plan.

The benchmark stage (:func:`cxrsynth.stages.benchmark.run.benchmark`) takes these as values, so it
opens no work folder: ``pipeline.benchmark_in`` (and the CLI through it) reads them with
:meth:`SplitData.read` and hands them over. Everything inside the benchmark (the arms' training sets,
the validation and test items, the controls, the release check, the analyses) reads them from here,
and the records are read once per benchmark instead of once per arm and split.

A work folder path is still accepted where a caller written before the stage took artefacts passes
one (:func:`as_split_data`: ``eval_items(wd, ...)``, ``check_release(wd, ...)``, ``cxrsynth.evaluate``);
it is read once there, by :meth:`SplitData.read`, the only reader of the work folder in the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ...core.errors import ConfigError
from ...core.layout import WorkLayout
from ...core.paths import read_json
from ...data.records import Record, read_records
from ..splits import with_split_groups


@dataclass(frozen=True, eq=False)
class SplitData:
    """``records``: the records as ingest wrote them; ``splits``: the split manifest (``splits.json``'s
    content); ``plan``: the release plan (the null arm's sources, the release check's plan checksum,
    ``--translator``'s generation; None when there is none); ``ingest_report``: for ``--translator``'s
    release card (None: not given)."""

    records: list[Record]
    splits: dict
    plan: dict | None = None
    ingest_report: dict | None = None

    @classmethod
    def read(cls, workdir: str | Path) -> SplitData:
        """A work folder's records, split and (when made) plan and ingest report."""
        layout = WorkLayout(workdir)
        return cls(read_records(layout.records), read_json(layout.splits),
                   read_json(layout.plan) if layout.plan.is_file() else None,
                   read_json(layout.ingest_report) if layout.ingest_report.is_file() else None)

    def write(self, folder: str | Path) -> Path:
        """These files into ``folder``, named as a work folder's (what :meth:`read` reads back): a
        launched benchmark's jobs read them from there once each."""
        from ...core.paths import write_json
        from ...data.records import write_records

        layout = WorkLayout(folder)
        layout.root.mkdir(parents=True, exist_ok=True)
        write_records(self.records, layout.records)
        write_json(layout.splits, self.splits)
        for path, value in ((layout.plan, self.plan), (layout.ingest_report, self.ingest_report)):
            if value is not None:
                write_json(path, value)
        return layout.root

    @cached_property
    def grouped(self) -> list[Record]:
        """The records with the split's patient grouping (a ``--patient-map`` included): the unit of
        every bootstrap, probe and control."""
        return with_split_groups(self.records, self.splits)

    @property
    def assign(self) -> dict[str, str]:
        """record id -> train / validation / test."""
        return self.splits["assignments"]

    @property
    def method(self) -> str:
        return self.splits["config"]["method"]

    @property
    def assignment_sha256(self) -> str | None:
        return self.splits.get("assignment_sha256")

    def need_plan(self, why: str) -> dict:
        """The plan, or a :class:`ConfigError` saying what needed it."""
        if self.plan is None:
            raise ConfigError(f"{why} needs the release plan", "plan=None",
                              "run `cxrsynth plan` (or `cxrsynth release`) in the work folder first")
        return self.plan

    def real_images(self):
        """The records with pixels and their split, as ``cxrsynth.load(real=...)`` takes them."""
        from ..load.real_images import from_split

        return from_split(self.records, self.splits)


def as_split_data(data: SplitData | str | Path) -> SplitData:
    """``data`` as it is, or a work folder's (read once, :meth:`SplitData.read`) for the callers that
    still pass a folder."""
    return data if isinstance(data, SplitData) else SplitData.read(data)
