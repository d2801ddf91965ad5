"""The release folder: the one place that knows its file names and where its private files live.

A release is a folder ``<name>/`` that is published (parquet shards under ``data/``, ``manifest.json``,
``provenance.jsonl``, the card, Croissant, ``SHA256SUMS``, a sample grid) and, beside it and never
published, ``<name>.private/`` (``mapping.jsonl``: synthetic id -> source record; ``identifiers.json``:
every source identifier used, for the leak check). Before this class, ``manifest.json`` was joined by
hand in eight modules and the ``.private`` sibling rule was written out five times; now every stage
asks a :class:`ReleaseFolder` (``tests/test_layout.py`` keeps it so).

The class names and reads; it never writes anything but the manifest, and making one is free.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.errors import DataNotFoundError
from ..core.paths import read_json, read_jsonl, write_json

PRIVATE_SUFFIX = ".private"
MANIFEST = "manifest.json"  # also its name on the Hub, where the folder is a dataset repo
#: The files every release folder holds, relative to its root (``verify`` checks each).
REQUIRED = ("README.md", MANIFEST, "provenance.jsonl", "croissant.json", "SHA256SUMS", "sample_grid.png")
#: Left out of ``SHA256SUMS``: the card, whose YAML the Hub lets anyone with write access edit on the website;
#: ``verify`` checks its protected sections against the manifest instead.
NOT_IN_SUMS = ("README.md",)


@dataclass(frozen=True)
class ReleaseFolder:
    """A release folder and its private sibling.

    ``private`` defaults to ``<root>.private`` beside the root; a staging release passes its own
    (``.<name>.private.staging-<pid>``), and ``--private DIR`` on the command line overrides it.
    """

    root: Path
    private_root: Path | None = None

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))
        if self.private_root is not None:
            object.__setattr__(self, "private_root", Path(self.private_root))

    # --- names -------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.root.name

    @property
    def private(self) -> Path:
        """The private folder: as given, else ``<root>.private`` beside the release."""
        return self.private_root if self.private_root is not None else private_sibling(self.root)

    manifest_path = property(lambda self: self.root / MANIFEST)
    provenance_path = property(lambda self: self.root / "provenance.jsonl")
    card = property(lambda self: self.root / "README.md")
    croissant = property(lambda self: self.root / "croissant.json")
    checksums = property(lambda self: self.root / "SHA256SUMS")
    sample_grid = property(lambda self: self.root / "sample_grid.png")
    data = property(lambda self: self.root / "data", doc="The parquet shards' folder.")
    mapping_path = property(lambda self: mapping_in(self.private),
                            doc="Private: synthetic id -> source record id, one JSON object a line.")
    identifiers_path = property(lambda self: identifiers_in(self.private),
                                doc="Private: every source identifier the release derives from (verify's leak scan).")

    # --- reading -----------------------------------------------------------------------------------
    def is_release(self) -> bool:
        return self.manifest_path.is_file()

    def manifest(self) -> dict:
        """The manifest as written; raises :class:`DataNotFoundError` naming the folder when there is none."""
        if not self.manifest_path.is_file():
            raise DataNotFoundError("not a release folder (no manifest.json)", self.root,
                                    "give a folder made by `cxrsynth release`")
        return read_json(self.manifest_path)

    def write_manifest(self, manifest: dict) -> Path:
        return write_json(self.manifest_path, manifest)

    @property
    def data_sha256(self) -> str:
        """What the release's images are (the manifest's fingerprint of its shard list)."""
        return self.manifest()["data_sha256"]

    def shards(self) -> list[Path]:
        """The parquet shards, in name order (config, then shard number)."""
        return sorted(self.data.glob("*.parquet"))

    def provenance(self) -> list[dict]:
        return read_jsonl(self.provenance_path)

    def has_mapping(self) -> bool:
        return self.mapping_path.is_file()

    def mapping(self) -> list[dict]:
        """The private mapping rows; raises :class:`DataNotFoundError` naming the file when it is absent."""
        if not self.mapping_path.is_file():
            raise DataNotFoundError("the private id mapping is not beside the release", self.mapping_path,
                                    "pass --private DIR (the folder holding mapping.jsonl)")
        return read_jsonl(self.mapping_path)


def mapping_in(private: str | Path) -> Path:
    """``mapping.jsonl`` of a private folder (``--private DIR``)."""
    return Path(private) / "mapping.jsonl"


def identifiers_in(private: str | Path) -> Path:
    """``identifiers.json`` of a private folder (``--private DIR``)."""
    return Path(private) / "identifiers.json"


def private_sibling(root: str | Path) -> Path:
    """``<root>.private`` beside a release folder ``root``: the one statement of the sibling rule."""
    root = Path(root)
    return root.with_name(f"{root.name}{PRIVATE_SUFFIX}")


def staging_pair(out_dir: str | Path, name: str, pid: int) -> ReleaseFolder:
    """This process's staging release for ``out_dir/<name>``: ``.<name>.staging-<pid>`` and its private
    ``.<name>.private.staging-<pid>`` (both hidden, so a half-made release is never taken for one)."""
    out_dir = Path(out_dir)
    return ReleaseFolder(out_dir / f".{name}.staging-{pid}", out_dir / f".{name}{PRIVATE_SUFFIX}.staging-{pid}")


def stale_staging(out_dir: str | Path, name: str) -> list[Path]:
    """Staging folders of ``name`` in ``out_dir`` left by a killed release."""
    out_dir = Path(out_dir)
    return [*out_dir.glob(f".{name}.staging*"), *out_dir.glob(f".{name}{PRIVATE_SUFFIX}.staging*")]


def final_pair(out_dir: str | Path, name: str) -> ReleaseFolder:
    """The release ``out_dir/<name>`` with its private sibling."""
    return ReleaseFolder(Path(out_dir) / name)


def as_release(folder: "str | Path | ReleaseFolder", private: str | Path | None = None) -> ReleaseFolder:
    """``folder`` as a :class:`ReleaseFolder` (with ``private`` when given: ``--private DIR``)."""
    if isinstance(folder, ReleaseFolder):
        return folder if private is None else ReleaseFolder(folder.root, private)
    return ReleaseFolder(folder, private)
