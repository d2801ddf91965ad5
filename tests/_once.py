"""Session fixtures built once per test run, however many pytest-xdist workers run it.

Each xdist worker is its own pytest session, so a plain session fixture (the whole pipeline in
``built``, 28 classifier fits in ``rigorous``) would be built again in every worker. :func:`once_per_run`
follows the pytest-xdist documentation ("Making session-scoped fixtures execute only once"): the first
worker that needs the fixture builds it in the run's temporary folder, which all workers share
(``tmp_path_factory.getbasetemp().parent``), under a ``filelock.FileLock``; the others wait on the lock
and read the value it pickled (paths into that folder, dicts). Without xdist it just builds.

Tests share these folders, with each other and, under xdist, with tests running at the same moment in
another process. So they must only read them: a test that writes copies first (``conftest.copy_workdir``).
The fixture checks that at its teardown: a file added, removed or rewritten since the build fails it,
naming the files.
"""

from __future__ import annotations

import os
import pickle
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from filelock import FileLock

T = TypeVar("T")


def worker() -> str | None:
    """This process's xdist worker name ("gw0", ...), or None when xdist does not distribute the run."""
    return os.environ.get("PYTEST_XDIST_WORKER")


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time (folders: -1, 0)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            st = path.lstat()
            rel = str(path.relative_to(folder))
            out[rel] = (-1, 0) if name in dirs else (st.st_size, st.st_mtime_ns)
    return out


def changes(before: dict, after: dict) -> list[str]:
    """What differs between two snapshots: "+ path" added, "- path" removed, "~ path" rewritten."""
    return sorted([f"+ {p}" for p in after.keys() - before.keys()] + [f"- {p}" for p in before.keys() - after.keys()]
                  + [f"~ {p}" for p in before.keys() & after.keys() if before[p] != after[p]])


def _build(folder: Path, build: Callable[[Path], T]) -> tuple[T, dict]:
    folder.mkdir(parents=True)
    value = build(folder)
    return value, snapshot(folder)


def _shared(name: str, tmp_path_factory, build: Callable[[Path], T]) -> tuple[T, Path, dict]:
    if worker() is None:
        folder = tmp_path_factory.mktemp(name)
        return build(folder), folder, snapshot(folder)
    root = tmp_path_factory.getbasetemp().parent  # the run's folder; each worker's basetemp is inside it
    folder, done, failed = root / name, root / f"{name}.pickle", root / f"{name}.failed"
    with FileLock(str(root / f"{name}.lock")):
        if done.is_file():
            value, before = pickle.loads(done.read_bytes())
            return value, folder, before
        if failed.is_file():  # do not spend the build's minutes again to fail the same way
            raise RuntimeError(f"the shared fixture {name} failed to build in another worker: {failed.read_text()}")
        shutil.rmtree(folder, ignore_errors=True)
        try:
            value, before = _build(folder, build)
        except BaseException as exc:
            failed.write_text(f"{type(exc).__name__}: {exc}"[:2000])
            raise
        tmp = done.with_suffix(f".tmp-{worker()}")
        tmp.write_bytes(pickle.dumps((value, before)))
        tmp.rename(done)
        return value, folder, before


@contextmanager
def once_per_run(name: str, tmp_path_factory, build: Callable[[Path], T]) -> Iterator[T]:
    """``build(folder)`` once per run into an empty ``folder``; yields its value, then checks that the
    tests left ``folder`` as it was built."""
    value, folder, before = _shared(name, tmp_path_factory, build)
    yield value
    changed = changes(before, snapshot(folder))
    assert not changed, (f"tests changed the shared fixture folder {folder} ({len(changed)}; copy it first, "
                         f"conftest.copy_workdir): {changed[:20]}")
