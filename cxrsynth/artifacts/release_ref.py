"""Which release, exactly: a release folder, or a Hub dataset at a revision (``ORG/NAME@REV``).

A Hub id alone means "whatever ``main`` holds today", so a benchmark run on it could not say which
images it trained on, and a rerun next month could silently use others (issue 21, G6). A reference is
therefore *pinned* before use (:func:`pin`): the revision asked for (a tag such as ``v1.0.1``, a branch,
a commit, or ``main`` when none is given) is resolved to the commit it names, and every later read
(manifest, shards) uses that commit. :func:`describe` is what results record: the release's name,
version and ``data_sha256`` from its manifest, and for the Hub the revision asked for and the commit
it resolved to; a folder records its path and no commit.

The commit comes from the Hub cache's layout (``.../snapshots/<commit>/manifest.json``, the path
``hf_hub_download`` returns), so a pinned run also works offline from a cached revision.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ConfigError, DataNotFoundError
from ..core.paths import read_json
from .release_folder import MANIFEST, ReleaseFolder


@dataclass(frozen=True)
class ReleaseRef:
    """``id``: a release folder's path or a Hub dataset id (``ORG/NAME``); ``revision``: for the Hub,
    the tag, branch or commit (None: ``main``)."""

    id: str
    revision: str | None = None

    @property
    def local(self) -> bool:
        return Path(self.id).is_dir()

    def __str__(self) -> str:
        return f"{self.id}@{self.revision}" if self.revision else self.id


def parse(release: str | Path, revision: str | None = None) -> ReleaseRef:
    """``DIR``, ``ORG/NAME``, or ``ORG/NAME@REV``; ``revision`` (``--revision``) is the same as ``@REV``.
    A folder is taken whole (a path may hold an ``@``), and has no revisions."""
    text = str(release)
    if Path(text).is_dir():
        if revision:
            raise ConfigError("--revision is for a Hub release; a release folder is one version", text)
        return ReleaseRef(text)
    repo, at, rev = text.partition("@")
    if at and not rev:
        raise ConfigError("empty revision after @", text, "write ORG/NAME@v1.0.0 (a tag, branch or commit)")
    if rev and revision and rev != revision:
        raise ConfigError("two different revisions", f"{text}, --revision {revision}", "give one")
    return ReleaseRef(repo, rev or revision)


def _hub_manifest(ref: ReleaseRef) -> tuple[dict, str]:
    """The manifest of a Hub release at ``ref.revision``, and the commit it was read from."""
    from huggingface_hub import hf_hub_download

    try:
        local = Path(hf_hub_download(ref.id, MANIFEST, repo_type="dataset", revision=ref.revision))
    except Exception as exc:  # the hub raises many types (offline, missing repo, revision or file)
        raise DataNotFoundError("cannot read the release's manifest.json", str(ref),
                                f"{type(exc).__name__}; give a release folder or a reachable Hub dataset "
                                "(ORG/NAME or ORG/NAME@REVISION)") from exc
    return read_json(local), local.parent.name  # .../snapshots/<commit>/manifest.json


def read_manifest(ref: ReleaseRef) -> dict:
    """``manifest.json`` of the release ``ref`` names."""
    return ReleaseFolder(ref.id).manifest() if ref.local else _hub_manifest(ref)[0]


def pin(ref: ReleaseRef) -> ReleaseRef:
    """``ref`` with a Hub revision resolved to its commit (a folder is returned as it is)."""
    if ref.local:
        return ref
    return ReleaseRef(ref.id, _hub_manifest(ref)[1])


def describe(ref: ReleaseRef, asked: ReleaseRef | None = None) -> dict:
    """What results record of a (pinned) release: id, name, version, data_sha256, the revision
    ``asked`` for and the resolved commit (None for a folder)."""
    manifest = read_manifest(ref)
    return {"id": ref.id, "name": manifest.get("name") or Path(ref.id).name, "version": manifest.get("version"),
            "data_sha256": manifest.get("data_sha256"), "source": "folder" if ref.local else "hub",
            "revision": None if ref.local else ((asked or ref).revision or "main"),
            "commit": None if ref.local else ref.revision}
