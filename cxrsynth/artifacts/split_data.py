"""The real side of a release, already read: records, split manifest, plan (and the ingest report).

The benchmark and the audit take one :class:`SplitData` instead of a work folder: ``pipeline.py``
(``benchmark_in``, ``audit_in``) reads it with :meth:`SplitData.read`, and a test builds one from a
few records made in ``tmp_path``. It is made of the three typed artefacts :class:`Records`,
:class:`Splits` and :class:`Plan` (:meth:`SplitData.of`), and keeps their content as plain values
(``records``, ``splits``, ``plan``), which is how the stages use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..core.errors import ConfigError
from ..core.layout import WorkLayout
from ..core.paths import read_json, write_json
from ..data.records import Record
from .plan import Plan
from .records import Records
from .splits import Splits


@dataclass(frozen=True, eq=False)
class SplitData:
    """``records``: the records as ingest wrote them; ``splits``: the split manifest (``splits.json``'s
    content); ``plan``: the release plan (the null arm's sources, the release check's plan checksum,
    ``--translator``'s generation, the audit's translator-training images; None when there is none);
    ``ingest_report``: for ``--translator``'s release card (None: not given)."""

    records: list[Record]
    splits: dict
    plan: dict | None = None
    ingest_report: dict | None = None

    @classmethod
    def of(cls, records: Records, splits: Splits, plan: Plan | None = None,
           ingest_report: dict | None = None) -> SplitData:
        return cls(records.items, splits.data, plan.data if plan is not None else None, ingest_report)

    @classmethod
    def read(cls, workdir: str | Path) -> SplitData:
        """A work folder's records, split and (when made) plan and ingest report."""
        layout = WorkLayout(workdir)
        return cls.of(Records.read(layout.records), Splits.read(layout.splits),
                      Plan.read(layout.plan) if layout.plan.is_file() else None,
                      read_json(layout.ingest_report) if layout.ingest_report.is_file() else None)

    def write(self, folder: str | Path) -> Path:
        """These files into ``folder``, named as a work folder's (what :meth:`read` reads back): a
        launched benchmark's jobs read them from there once each."""
        layout = WorkLayout(folder)
        layout.root.mkdir(parents=True, exist_ok=True)
        Records(self.records).write(layout.records)
        Splits(self.splits).write(layout.splits)
        for path, value in ((layout.plan, self.plan), (layout.ingest_report, self.ingest_report)):
            if value is not None:
                write_json(path, value)
        return layout.root

    # --- the typed views -----------------------------------------------------------------------------
    @property
    def split(self) -> Splits:
        return Splits(self.splits)

    @property
    def release_plan(self) -> Plan | None:
        return Plan(self.plan) if self.plan is not None else None

    @cached_property
    def grouped(self) -> list[Record]:
        """The records with the split's patient grouping (a ``--patient-map`` included): the unit of
        every bootstrap, probe and control."""
        return self.split.grouped(self.records)

    @property
    def assign(self) -> dict[str, str]:
        """record id -> train / validation / test (:attr:`Splits.assignments`)."""
        return self.split.assignments

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
