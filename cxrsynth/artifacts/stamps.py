"""Results stamped with the release they judged: an audit or a benchmark of other images is refused.

``audit.json`` carries ``audited_release.data_sha256``; ``results.json`` carries ``release_data_sha256``
(both the manifest's fingerprint of the release's shards). The card and the report take a result only
through these functions, so a table from an earlier release, or from no release at all, never appears
under a new one.
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import StampError
from ..core.paths import read_json


def audit_stamp(audit: dict) -> str | None:
    return (audit.get("audited_release") or {}).get("data_sha256")


def benchmark_stamp(results: dict) -> str | None:
    return results.get("release_data_sha256")


def stamped_audit(audit: dict | str | Path, data_sha256: str) -> dict:
    """The audit (``audit.json``'s content, or its path) when it was made on the release ``data_sha256``;
    else :class:`StampError`."""
    where = audit if not isinstance(audit, dict) else "audit result"
    audit = read_json(audit) if not isinstance(audit, dict) else audit
    stamp = audit_stamp(audit)
    if stamp != data_sha256:
        raise StampError("the audit was made on other images than this release's", where,
                         f"its stamp is {stamp}, the release's data_sha256 is {data_sha256}; audit this release")
    return audit


def stamped_benchmark(results_json: str | Path, data_sha256: str) -> dict:
    """The benchmark results in ``results_json`` when they were measured on the release ``data_sha256``;
    else :class:`StampError` (unstamped results, e.g. ``--arm real`` alone, judged no release)."""
    results = read_json(results_json)
    stamp = benchmark_stamp(results)
    if stamp is None:
        raise StampError("the benchmark results are not stamped with a release", results_json,
                         "benchmark this release (cxrsynth benchmark --release DIR) to put its numbers in the card")
    if stamp != data_sha256:
        raise StampError("the benchmark was run on other images than this release's", results_json,
                         f"its stamp is {stamp}, the release's data_sha256 is {data_sha256}; benchmark this release")
    return results
