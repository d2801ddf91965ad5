"""Where things are: the sample data, the JSON Schemas, and atomic writes.

Every file cxrsynth writes goes through :func:`atomic_write` (write a temporary sibling, then
``os.replace``), so that an interrupted run never leaves a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

from .errors import BadInputError, DataNotFoundError

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # cxrsynth/ (this file is cxrsynth/core/paths.py)
REPO_ROOT = PACKAGE_DIR.parent


def resource_dir(name: str) -> Path:
    """``manifests`` (JSON Schemas) or ``cards`` (card templates).

    A wheel or a non-editable install carries them in ``cxrsynth/_data/`` (``setup.py`` copies them there
    at build time); a source checkout or an editable install reads the repository's own folders.
    """
    packaged = PACKAGE_DIR / "_data" / name
    return packaged if packaged.is_dir() else REPO_ROOT / name


SCHEMA_DIR = resource_dir("manifests")

UPSTREAM_URLS = {
    "covid-chestxray-dataset": "https://github.com/ieee8023/covid-chestxray-dataset",
    "nih-chestxray14": "https://nihcc.app.box.com/v/ChestXray-NIHCC",
    "rsna-pneumonia-detection-challenge": "https://www.kaggle.com/c/rsna-pneumonia-detection-challenge/data",
}


def sample_data_dir() -> Path:
    """``$CXRSYNTH_SAMPLE_DATA``, else ``../shared/data`` beside the repository."""
    env = os.environ.get("CXRSYNTH_SAMPLE_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def require_sample_data() -> Path:
    root = sample_data_dir()
    if not root.is_dir() or not any(root.iterdir()):
        urls = ", ".join(f"{k}: {v}" for k, v in UPSTREAM_URLS.items())
        raise DataNotFoundError(
            "no chest X-ray data found", root,
            f"set CXRSYNTH_SAMPLE_DATA or fetch the upstream sources with scripts/fetch_upstream.sh ({urls})",
        )
    return root


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write (for writers that take a path: safetensors, a parquet
    writer); renamed onto ``path`` on success only, removed on failure. The name carries this process's
    pid, so ranks or processes writing the same file never write into each other's temporary."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_kwargs: Any) -> Iterator[Any]:
    """Open a temporary sibling of ``path`` for writing (``open_kwargs`` as for ``open``, e.g.
    ``newline=""`` for csv); rename it onto ``path`` on success only."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def write_json(path: str | Path, obj: Any) -> Path:
    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")
    return Path(path)


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        from .layout import missing_hint

        raise DataNotFoundError("file not found", path, missing_hint(path))
    with open(path) as fh:
        return json.load(fh)


def read_jsonl(path: str | Path) -> list[Any]:
    """One JSON value per non-blank line of ``path``. A line that does not parse raises
    :class:`~cxrsynth.core.errors.BadInputError` naming the file and the line number."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError("file not found", path)
    rows = []
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise BadInputError(f"line {n} is not JSON ({exc.msg})", path) from exc
    return rows


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def write_sha256sums(folder: str | Path, leave_out: tuple[str, ...] = ()) -> Path:
    """``folder/SHA256SUMS``: ``<sha256>  <relative path>`` for every file below ``folder`` but those in
    ``leave_out`` (relative paths), sorted."""
    folder = Path(folder)
    lines = [f"{sha256_file(p)}  {p.relative_to(folder).as_posix()}" for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != "SHA256SUMS" and p.relative_to(folder).as_posix() not in leave_out]
    with atomic_write(folder / "SHA256SUMS") as fh:
        fh.write("\n".join(lines) + "\n")
    return folder / "SHA256SUMS"


# "classifier:/home/me/model.safetensors": an option value that names a kind, then a path
_KIND_THEN_PATH = re.compile(r"([A-Za-z][A-Za-z0-9_.+-]*:)(/.+)")


def shareable(obj: Any, bases: tuple[str | Path, ...] = (), record: bool = False) -> Any:
    """``obj`` (JSON-ready) as an output a user may share: every string that is an absolute local path
    (whole, or after ``kind:``) becomes the path relative to the first of ``bases`` (the work or output
    folder) it lies below, else the file's or folder's name; a file also gets its sha256, so the name
    still says which file it was. Results, configs and audits are shared; the user names and home
    folders in absolute paths should not be. ``record=True`` (``--record-paths``) keeps ``obj`` as it is."""
    if record:
        return obj
    if isinstance(obj, dict):
        return {k: shareable(v, bases) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [shareable(v, bases) for v in obj]
    if not isinstance(obj, str) or "\n" in obj or len(obj) > 4096:
        return obj
    m = _KIND_THEN_PATH.fullmatch(obj)
    kind, text = (m.group(1), m.group(2)) if m else ("", obj)
    if not os.path.isabs(text):
        return obj
    path = Path(text)
    shown = path.name
    for base in bases:
        with contextlib.suppress(ValueError):
            shown = path.relative_to(Path(base).absolute()).as_posix() or "."
            break
    if path.is_file():
        with contextlib.suppress(OSError):
            shown += f" (sha256 {sha256_file(path)})"
    return kind + shown
