"""Typed artefacts: the file sets that cross a stage boundary, each with one reader and one namer.

- :class:`GeneratedSet`: ``WORKDIR/generated`` (shards, provenance, the private mapping, completeness);
- :class:`ReleaseFolder`: a release folder, its manifest and shards, and its ``.private`` sibling;
- :class:`AuditResult`: an audit's result, stamped with the ``data_sha256`` of the release it measured
  (``stamps.py`` refuses a result, audit or benchmark, of other images);
- :class:`BenchmarkResult`: a benchmark's ``results.json`` (stamped the same way) and its tables.

A stage takes artefacts in and hands one out; only ``pipeline.py`` and ``cli.py`` decide where they live.
"""

from .audit_result import AuditResult
from .benchmark_result import BenchmarkResult
from .generated_set import GeneratedSet, shard_name
from .release_folder import ReleaseFolder, as_release, final_pair, private_sibling, stale_staging, staging_pair

__all__ = ["AuditResult", "BenchmarkResult", "GeneratedSet", "ReleaseFolder", "as_release", "final_pair", "private_sibling", "shard_name", "stale_staging",
           "staging_pair"]
