"""The split manifest (``splits.json``) as a value: the assignment, its sha256, the patient grouping.

``cxrsynth split`` writes it; the plan, the release, the benchmark and the audit judge "the same split"
by its ``assignment_sha256`` and resample "the same patients" by its ``patient_groups`` (a
``--patient-map`` joins RSNA to NIH patients). Both rules are written here once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

from ..core.paths import read_json, write_json
from ..data.records import Record


def assignment_sha256(assign: dict[str, str]) -> str:
    """The stamp of an assignment (record id -> split): sorted ``id<TAB>split`` lines, hashed."""
    return hashlib.sha256("\n".join(f"{k}\t{assign[k]}" for k in sorted(assign)).encode()).hexdigest()


def with_split_groups(records: list[Record], manifest: dict) -> list[Record]:
    """``records`` with ``patient_group`` set to the grouping stored in the split manifest, so every
    consumer of "patient" (bootstrap clusters, probes, the audit's held-out filter) uses the split's
    unit, a ``--patient-map`` included. A manifest written before groups were stored leaves ingest's."""
    groups = manifest.get("patient_groups") or {}
    return [replace(r, patient_group=groups[r.record_id]) if r.record_id in groups else r for r in records]


@dataclass(frozen=True, eq=False)
class Splits:
    """``data``: the split manifest's content (``manifests/splits.schema.json``)."""

    data: dict

    @classmethod
    def read(cls, path: str | Path) -> Splits:
        return cls(read_json(path))

    def write(self, path: str | Path) -> Path:
        return write_json(path, self.data)

    @property
    def assignments(self) -> dict[str, str]:
        """record id -> train / validation / test."""
        return self.data["assignments"]

    @property
    def method(self) -> str | None:
        return (self.data.get("config") or {}).get("method")

    @property
    def assignment_sha256(self) -> str:
        """The stamp: as the manifest records it, else computed from the assignment."""
        return self.data.get("assignment_sha256") or assignment_sha256(self.assignments)

    def grouped(self, records: list[Record]) -> list[Record]:
        """``records`` with this split's patient grouping (:func:`with_split_groups`)."""
        return with_split_groups(records, self.data)
