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
from .audit_result import AuditResult
from .benchmark_result import BenchmarkResult


def audit_stamp(audit: dict) -> str | None:
    return AuditResult(audit).data_sha256


def benchmark_stamp(results: dict) -> str | None:
    return BenchmarkResult(results).data_sha256


def stamped_audit(audit: AuditResult | dict | str | Path, data_sha256: str) -> dict:
    """The audit (an :class:`AuditResult`, ``audit.json``'s content, or its path) when it was made on the
    release ``data_sha256``; else :class:`StampError`."""
    if not isinstance(audit, AuditResult):
        audit = AuditResult(audit) if isinstance(audit, dict) else AuditResult.read(audit)
    where = audit.path or "audit result"
    stamp, audit = audit.data_sha256, audit.data
    if stamp != data_sha256:
        raise StampError("the audit was made on other images than this release's", where,
                         f"its stamp is {stamp}, the release's data_sha256 is {data_sha256}; audit this release")
    return audit


def stamped_benchmark(results: BenchmarkResult | str | Path, data_sha256: str) -> dict:
    """The benchmark results (a :class:`BenchmarkResult`, or the path of a ``results.json``) when they
    were measured on the release ``data_sha256``; else :class:`StampError` (unstamped results, e.g.
    ``--arm real`` alone, judged no release)."""
    if not isinstance(results, BenchmarkResult):
        results = BenchmarkResult(read_json(results), Path(results).parent)
    where, stamp = results.path or "benchmark result", results.data_sha256
    if stamp is None:
        raise StampError("the benchmark results are not stamped with a release", where,
                         "benchmark this release (cxrsynth benchmark --release DIR) to put its numbers in the card")
    if stamp != data_sha256:
        raise StampError("the benchmark was run on other images than this release's", where,
                         f"its stamp is {stamp}, the release's data_sha256 is {data_sha256}; benchmark this release")
    return results.data
