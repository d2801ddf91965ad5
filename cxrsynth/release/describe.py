"""The describe step: what a release says about its data, rendered from its manifest.

``manifest.json``, ``croissant.json``, the dataset card (``README.md``) and, last, ``SHA256SUMS``. The
release pipeline writes them once, after the audit, from explicit inputs: the manifest that packaging
made and (when one was run) an audit stamped with that manifest's ``data_sha256``. ``attach_audit``
does the same for a release built on its own (``package.build``) and audited afterwards.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..layout import WorkLayout
from ..paths import read_json, write_json, write_sha256sums
from ..schemas import validate
from .card import render_dataset_card
from .croissant import make_croissant


def write_manifest(folder: Path, manifest: dict) -> None:
    """``manifest.json`` alone, checked against its schema (what the audit reads of a staged release)."""
    validate(manifest, "release_manifest")
    write_json(Path(folder) / "manifest.json", manifest)


def describe(folder: str | Path, manifest: dict, workdir: str | Path | None = None) -> dict:
    """Write manifest.json, croissant.json, the card and SHA256SUMS into ``folder``; returns ``manifest``.

    The card's benchmark section comes from ``workdir``'s benchmark tables when there are any.
    """
    folder = Path(folder)
    write_manifest(folder, manifest)
    write_json(folder / "croissant.json", make_croissant(manifest))
    render_dataset_card(folder / "README.md", manifest, Path(workdir) if workdir is not None else None)
    write_sha256sums(folder)
    return manifest


def with_audit(manifest: dict, audit_json: str | Path) -> dict:
    """``manifest`` carrying the summary of the audit in ``audit_json``, which must be stamped with this
    release's ``data_sha256``: an audit of other images (an earlier release, another --limit) is
    refused, so a card never shows results that were not measured on its own images."""
    audit = read_json(audit_json)
    stamp = (audit.get("audited_release") or {}).get("data_sha256")
    if stamp != manifest["data_sha256"]:
        raise ConfigError("the audit was made on other images than this release's", audit_json,
                          f"its stamp is {stamp}, the release's data_sha256 is {manifest['data_sha256']}; audit this release")
    return dict(manifest, audit=audit.get("summary"))


def attach_audit(workdir: str | Path, folder: str | Path, audit_json: str | Path | None = None) -> dict:
    """Put an audit's summary into a built release's manifest and card (the data stays); ``audit_json``
    defaults to ``WORKDIR/audit/audit.json``. Returns the new manifest."""
    folder = Path(folder)
    path = Path(audit_json) if audit_json else WorkLayout(workdir).audit_files.json
    return describe(folder, with_audit(read_json(folder / "manifest.json"), path), workdir)
