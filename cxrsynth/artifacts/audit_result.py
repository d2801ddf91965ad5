"""What an audit hands on: its result, stamped with the release whose images it measured.

``audit.run.audit`` returns an :class:`AuditResult` (the content of the ``audit.json`` it wrote), and
the release pipeline passes that value on to the card: it no longer reads ``audit.json`` back from
the audit folder, where another audit could have written since. ``audited_release.data_sha256`` is
the stamp; :func:`cxrsynth.artifacts.stamps.stamped_audit` refuses a result of other images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.paths import read_json


@dataclass(frozen=True)
class AuditResult:
    """``data``: the audit's result (``manifests/audit.schema.json``); ``path``: the ``audit.json`` it
    was written to or read from (None when it was made in memory)."""

    data: dict
    path: Path | None = None

    @classmethod
    def read(cls, path: str | Path) -> AuditResult:
        return cls(read_json(path), Path(path))

    @property
    def data_sha256(self) -> str | None:
        """The stamp: the ``data_sha256`` of the release audited (None: an unstamped result)."""
        return (self.data.get("audited_release") or {}).get("data_sha256")

    @property
    def summary(self) -> dict:
        """The sentence, the verdicts and the caveats the card shows."""
        return self.data["summary"]
