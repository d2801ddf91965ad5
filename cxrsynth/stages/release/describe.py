"""The describe step: what a release says about its data, rendered from its manifest.

``manifest.json``, ``croissant.json``, the dataset card (``README.md``) and, last, ``SHA256SUMS``. The
release pipeline writes them once, after the audit, from explicit inputs: the manifest that packaging
made and, when they were measured on these very images, an audit and a benchmark, each stamped with
the manifest's ``data_sha256`` (``artifacts/stamps.py``). Nothing is picked up from a work folder here:
the caller says which results to attach, and a result of other images is refused.
"""

from __future__ import annotations

from pathlib import Path

from ...artifacts import AuditResult, BenchmarkResult, ReleaseFolder
from ...artifacts.release_folder import NOT_IN_SUMS, as_release
from ...artifacts.stamps import stamped_audit, stamped_benchmark
from ...core.paths import write_json, write_sha256sums
from ...core.schemas import validate
from .benchmark_sections import BENCHMARK_TITLE, EXTERNAL_TITLE, external_section
from .card import render_dataset_card
from .croissant import make_croissant


def write_manifest(release: ReleaseFolder | str | Path, manifest: dict) -> None:
    """``manifest.json`` alone, checked against its schema (what the audit reads of a staged release)."""
    validate(manifest, "release_manifest")
    as_release(release).write_manifest(manifest)


def describe(release: ReleaseFolder | str | Path, manifest: dict, benchmark: str | Path | None = None, *,
             audit: AuditResult | dict | str | Path | None = None) -> dict:
    """Write manifest.json, croissant.json, the card and SHA256SUMS into ``release``; returns the manifest
    written. The one renderer of a release's description: both results it may attach are checked here.

    ``audit``: an audit (its result, ``audit.json`` or its content) stamped with this release's
    ``data_sha256``; its summary goes into the manifest and the card's audit section (:func:`with_audit`).
    Without it, the manifest's own ``audit`` entry is kept. ``benchmark``: a benchmark folder whose
    ``results.json`` is stamped with this release's ``data_sha256``; its tables become the card's
    Benchmark section and its external sets the External test set section. Without it, the sections
    already in the card are kept. A result of other images, or an unstamped one, raises
    :class:`~cxrsynth.core.errors.StampError` before anything is written.
    """
    release = as_release(release)
    if audit is not None:
        manifest = with_audit(manifest, audit)
    made = benchmark_sections(benchmark, manifest["data_sha256"]) if benchmark is not None else None
    write_manifest(release, manifest)
    write_json(release.croissant, make_croissant(manifest))
    render_dataset_card(release.card, manifest, made)
    write_sha256sums(release.root, NOT_IN_SUMS)
    return manifest


def benchmark_sections(benchmark: str | Path, data_sha256: str) -> dict[str, str]:
    """The card's sections made from a benchmark run on the release ``data_sha256`` (stamp checked):
    its markdown tables, and each arm's sensitivity on the external sets beside the internal one."""
    result = BenchmarkResult.read(benchmark)
    results = stamped_benchmark(result, data_sha256)
    return {BENCHMARK_TITLE: result.tables(), EXTERNAL_TITLE: external_section(results)}


def stamped_benchmark_or_none(benchmark: str | Path, data_sha256: str) -> Path | None:
    """``benchmark`` when it holds results stamped with ``data_sha256``, else ``None`` (the release
    pipeline attaches a work folder's benchmark only when it judged these very images)."""
    from ...core.errors import CxrsynthError
    from ...core.layout import BenchmarkFolder

    folder = BenchmarkFolder(benchmark)
    if not folder.results.is_file() or not folder.tables.is_file():
        return None
    try:
        stamped_benchmark(folder.results, data_sha256)
    except CxrsynthError:
        return None
    return folder.root


def with_audit(manifest: dict, audit_json: AuditResult | dict | str | Path) -> dict:
    """``manifest`` carrying the summary of the audit (its result, ``audit.json`` or its content), stamped with this
    release's ``data_sha256``: an audit of other images (an earlier release, another --limit) is
    refused, so a card never shows results that were not measured on its own images."""
    return dict(manifest, audit=stamped_audit(audit_json, manifest["data_sha256"]).get("summary"))


def attach_audit(release: ReleaseFolder | str | Path, audit_json: str | Path, benchmark: str | Path | None = None) -> dict:
    """Put an audit's summary into a built release's manifest and card (the data stays). Returns the new
    manifest."""
    release = as_release(release)
    return describe(release, release.manifest(), benchmark, audit=audit_json)
