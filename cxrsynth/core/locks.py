"""Exclusive locks on the folders that several cxrsynth processes could write at once.

Two ``generate`` runs on one work folder, or two ``release --out D`` at once, would otherwise delete
each other's temporary folders and swap half-made results into place. Each such stage holds an
``fcntl.flock`` on a small lock file inside the folder it writes (``<folder>/.<name>.lock``) for as
long as it runs. The kernel drops the lock when the process exits, however it exits (kill -9
included), so a stale lock file never blocks anyone: only a live holder does. The holder writes its
pid into the file, so that a second process fails at once with one line naming it.

A command that fails removes the lock files it made (:func:`remove_free_locks`, called by the CLI):
each is locked, then unlinked while locked, and :func:`hold` checks after its flock that the path is
still the file it locked, so removal never lets two processes hold one lock.

The lock is taken without waiting: a second run is a mistake to report, not a job to queue. Within one
process the same lock may be taken again (``release`` runs ``generate``); only the outermost release
frees it. Locks are advisory and work on local file systems (flock on NFS is emulated, with byte-range
locks, by Linux >= 2.6.12).

:func:`check_writable` is the cheap probe that every command runs on its destination before long work:
a read-only place, a missing permission or a full disk fails in the first second, naming the folder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import socket
from pathlib import Path
from typing import Iterator

from .errors import DestinationError, LockedError

# lock file path -> [fd, depth, shared]; locks this process already holds (re-entry is free)
_HELD: dict[str, list] = {}


def _describe(exc: OSError) -> str:
    return exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))


def check_writable(folder: str | Path, what: str = "output folder") -> Path:
    """Create ``folder`` if needed and write, sync and delete a small probe file in it.

    Raises :class:`DestinationError` naming the folder and the system's reason (read-only file system,
    permission denied, no space left) instead of failing after the long work is done.
    """
    folder = Path(folder)
    probe = folder / f".cxrsynth-write-probe-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, b"x" * 4096)  # a whole page: a full disk (or tmpfs) refuses it
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise DestinationError(f"cannot write to the {what}: {_describe(exc)}", folder,
                               "choose a writable place with free space") from exc
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return folder


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return text or "unknown pid"


@contextlib.contextmanager
def hold(folder: str | Path, name: str, what: str, shared: bool = False) -> Iterator[Path]:
    """Hold ``<folder>/.<name>.lock`` while the block runs.

    ``what`` says in the error what is locked ("the work folder's generated images"). ``shared=True``
    takes a shared lock: any number of shared holders, but no exclusive one (used by the ranks of one
    ``generate --world N`` run, which write disjoint shards). Raises :class:`LockedError` naming the
    holder's pid when another process holds it, and :class:`DestinationError` when the lock file
    cannot be made (the folder is read-only or the disk is full).
    """
    folder = Path(folder)
    path = folder / f".{name}.lock"
    key = str(path.absolute())
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield path
        finally:
            _HELD[key][1] -= 1
        return
    fd, made = _open_locked(folder, path, what, shared)
    if made:
        MADE.append(path)
    try:
        # Who holds it, for the error of the next one (with shared holders: the latest). A full disk
        # fails here, before any work.
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
            os.fsync(fd)
        except OSError as exc:
            raise DestinationError(f"cannot write the lock file for {what}: {_describe(exc)}", path,
                                   "choose a writable place with free space") from exc
        _HELD[key] = [fd, 1, shared]
        try:
            yield path
        finally:
            del _HELD[key]
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _open_locked(folder: Path, path: Path, what: str, shared: bool) -> tuple[int, bool]:
    """Open (or make) ``path`` and flock it without waiting; returns the descriptor and whether this call
    made the file. A lock file may be removed (:func:`remove_free_locks`) between our open and our flock:
    the lock is then on a file no one else will open, so the path is checked to be still that file, and
    opened anew when it is not."""
    while True:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            made = not path.exists()
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DestinationError(f"cannot create a lock file for {what}: {_describe(exc)}", path,
                                   "choose a writable place with free space") from exc
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError(f"{what} is in use by another cxrsynth process, {_holder(path)}", path,
                              "wait for it to finish, or stop it; the lock goes when that process ends") from None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd, made
        except FileNotFoundError:
            pass
        os.close(fd)


# Lock files this process made; a command that fails takes away the ones no one holds (remove_free_locks).
MADE: list[Path] = []


def remove_free_locks(paths: list[Path]) -> None:
    """Delete each lock file of ``paths`` that no one holds. It is locked exclusively first and unlinked
    while locked, so a process that opened it meanwhile finds, once it gets the lock, that the path is
    no longer its file and opens it anew (:func:`_open_locked`): no two holders, ever."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                os.unlink(path)
        except OSError:  # held (BlockingIOError), or gone already
            pass
        finally:
            os.close(fd)


def holder_of(folder: str | Path, name: str) -> str | None:
    """Who holds ``<folder>/.<name>.lock`` now ("pid N on HOST"), or ``None`` when nobody does.

    A probe for status reports: it takes and at once drops a shared lock, so it never waits and never
    keeps a holder out for longer than that instant.
    """
    path = Path(folder) / f".{name}.lock"
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(path)
    finally:
        os.close(fd)  # releases the probe's lock, if it got one
    return None


def remove_if_unused(folder: str | Path) -> bool:
    """Remove ``folder`` when it holds nothing but empty folders and lock files that no one holds: what a
    command that failed early leaves in a folder it had just made (the CLI calls this for those only).
    Anything else in it (a file, a link, a held lock) keeps it. Returns whether it was removed."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return False
    for p in folder.rglob("*"):
        if p.is_symlink() or not (p.is_dir() or p.is_file()):
            return False
        if p.is_file() and not (p.name.startswith(".") and p.name.endswith(".lock") and p.stat().st_size < 4096
                                and holder_of(p.parent, p.name[1:-len(".lock")]) is None):
            return False
    shutil.rmtree(folder, ignore_errors=True)
    return not folder.exists()
