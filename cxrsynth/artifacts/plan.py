"""The release plan (``plan.json``) as a value: what a release will make, and its checksum.

The release records :func:`plan_sha256`; the benchmark compares it with the plan it is given; the audit
reads which real COVID-19 images the translators learnt from (:meth:`Plan.translator_train`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..core.paths import read_json, write_json


def plan_sha256(plan: dict) -> str:
    """A checksum of what the plan decides (canonical JSON, ``code_version`` left out so that a new
    version of the code with the same plan gives the same checksum). A release records it, and the
    benchmark compares it with the work folder's plan to notice a release made from another plan."""
    body = {k: v for k, v in plan.items() if k != "code_version"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True, eq=False)
class Plan:
    """``data``: the plan's content (``manifests/plan.schema.json``)."""

    data: dict

    @classmethod
    def read(cls, path: str | Path) -> Plan:
        return cls(read_json(path))

    def write(self, path: str | Path) -> Path:
        return write_json(path, self.data)

    @property
    def sha256(self) -> str:
        """The stamp (:func:`plan_sha256`)."""
        return plan_sha256(self.data)

    def translator_train(self, label: str = "covid") -> set[str]:
        """Every record id a translator of the plan trained on as ``label`` (``covid``: the real
        COVID-19 images the translators saw, which the audit's copy test searches)."""
        return {i for t in self.data["tasks"].values() for i in t["translator_train"].get(label, [])}
