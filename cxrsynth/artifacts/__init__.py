"""Typed artefacts: the file sets that cross a stage boundary, each with one reader and one namer.

- :class:`Records`, :class:`Splits`, :class:`Plan`: the record table, the split manifest (its
  ``assignment_sha256``, the patient grouping) and the plan (``plan_sha256``), and :class:`SplitData`,
  the three already read, which the benchmark and the audit take;
- :class:`TranslatorRun`: a translator run folder (the generator, its sha256, the private reverse
  generator, finished or not);
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
from .plan import Plan
from .records import Records
from .release_folder import ReleaseFolder, as_release, final_pair, private_sibling, stale_staging, staging_pair
from .split_data import SplitData
from .splits import Splits
from .translator_run import TranslatorRun

__all__ = ["AuditResult", "BenchmarkResult", "GeneratedSet", "Plan", "Records", "ReleaseFolder", "SplitData", "Splits",
           "TranslatorRun", "as_release", "final_pair", "private_sibling", "shard_name", "stale_staging", "staging_pair"]
