"""Progress and logging: what a long run says while it works, in a terminal and outside one.

A translator trains for hours on a CPU, a release-scale audit for minutes, and they often run under SLURM,
``nohup``, CI or ``| tee``, where a tqdm bar is either invisible or a screenful of carriage returns. So:

- on a terminal (stderr is a TTY), :func:`bar` is tqdm, as before;
- anywhere else, it is :class:`PlainProgress`: one plain log line every minute or every tenth of the work,
  whichever comes first, with the rate and the estimated time left, and a last line with the total time;
- :func:`stage` logs one line when a stage starts and one when it ends, with its time.

Everything goes through the ``cxrsynth`` :mod:`logging` logger; :func:`configure` (called by the CLI's
``-v``/``-q``/``--log-file``) sends it to stderr, and to a file with timestamps. A library user who never
calls :func:`configure` gets Python's defaults (warnings and errors only), as with any library.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger("cxrsynth")

#: seconds between two plain progress lines (the environment can shorten it, e.g. for a test)
EVERY_S = float(os.environ.get("CXRSYNTH_PROGRESS_SECONDS", "60"))


class _CurrentStderr(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is at the time of the record (pytest and click swap it)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):  # looked up at each write and flush: a swapped-out stream may be closed by now
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure(verbosity: int = 0, log_file: str | Path | None = None) -> None:
    """The CLI's logging: ``verbosity`` -1 (``-q``: warnings and errors), 0 (stage and progress lines),
    1+ (``-v``: details too). ``log_file`` gets every record, with a UTC timestamp, whatever the verbosity."""
    for h in list(log.handlers):
        if getattr(h, "_cxrsynth", False):
            log.removeHandler(h)
            h.close()
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    console = _CurrentStderr()
    console.setLevel(level)
    console.setFormatter(logging.Formatter("%(message)s"))
    handlers: list[logging.Handler] = [console]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_file, encoding="utf-8")
        to_file.setLevel(logging.DEBUG)
        fmt = logging.Formatter("%(asctime)sZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
        fmt.converter = time.gmtime
        to_file.setFormatter(fmt)
        handlers.append(to_file)
    for h in handlers:
        h._cxrsynth = True  # type: ignore[attr-defined]
        log.addHandler(h)
    log.setLevel(logging.DEBUG if log_file else level)
    log.propagate = False


def quiet() -> bool:
    """Whether progress is turned off (``-q``): nothing below a warning reaches stderr."""
    handlers = [h for h in log.handlers if isinstance(h, _CurrentStderr)]
    return bool(handlers) and all(h.level > logging.INFO for h in handlers)


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class PlainProgress:
    """tqdm's small interface (``update``, ``set_postfix``, ``close``, iteration, ``with``) as log lines:
    ``<desc>: 120/600 it (20%), 2.31 it/s, about 3m28s left`` at most every :data:`EVERY_S` seconds or
    every tenth of ``total``, and ``<desc>: done, 600 it in 4m20s (2.31 it/s)`` at the end."""

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, initial: int = 0,
                 desc: str = "", unit: str = "it", every_s: float | None = None, **_ignored):
        self.iterable, self.desc, self.unit = iterable, desc, unit
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.n, self.start_n = total, initial, initial
        self.every_s = EVERY_S if every_s is None else every_s
        self.postfix = ""
        self.t0 = self.last_t = time.monotonic()
        self.last_tenth = self._tenth()
        self.closed = False

    def _tenth(self) -> int:
        return math.floor(10 * self.n / self.total) if self.total else 0

    def _rate(self) -> float:
        dt = time.monotonic() - self.t0
        return (self.n - self.start_n) / dt if dt > 0 else 0.0

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        finished = self.total is not None and self.n >= self.total  # close() says it
        if not finished and (now - self.last_t >= self.every_s or self._tenth() > self.last_tenth):
            self.last_t, self.last_tenth = now, self._tenth()
            log.info(self._line())

    def _line(self) -> str:
        rate = self._rate()
        done = f"{self.n}/{self.total} {self.unit} ({100 * self.n / self.total:.0f}%)" if self.total else f"{self.n} {self.unit}"
        text = f"{self.desc}: {done}, {rate:.3g} {self.unit}/s"
        if self.total and rate > 0:
            text += f", about {duration((self.total - self.n) / rate)} left"
        return text + (f" [{self.postfix}]" if self.postfix else "")

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:
        items = dict(ordered_dict or {}, **kwargs)
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        dt = time.monotonic() - self.t0
        log.info(f"{self.desc}: done, {self.n - self.start_n} {self.unit} in {duration(dt)}"
                 + (f" ({self._rate():.3g} {self.unit}/s)" if dt > 0 and self.n > self.start_n else ""))

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable or ():
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Silent(PlainProgress):
    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        self.closed = True


def bar(iterable: Iterable | None = None, *, enabled: bool = True, **kwargs):
    """A progress reporter for a loop: tqdm on a terminal, :class:`PlainProgress` lines elsewhere, nothing
    when ``enabled`` is false or the CLI was given ``-q``. ``kwargs`` are tqdm's (``total``, ``initial``,
    ``desc``, ``unit``, ``leave``)."""
    if not enabled or quiet():
        return _Silent(iterable, **kwargs)
    if sys.stderr.isatty() and not os.environ.get("TQDM_DISABLE"):
        from tqdm import tqdm

        return tqdm(iterable, **kwargs)
    return PlainProgress(iterable, **kwargs)


@contextlib.contextmanager
def stage(name: str, enabled: bool = True) -> Iterator[None]:
    """``stage <name> ...`` when it starts and ``stage <name>: done in 12s`` (or ``FAILED after``) when it ends."""
    if not enabled:
        yield
        return
    t0 = time.monotonic()
    log.info(f"stage {name} ...")
    try:
        yield
    except BaseException:
        log.info(f"stage {name}: FAILED after {duration(time.monotonic() - t0)}")
        raise
    log.info(f"stage {name}: done in {duration(time.monotonic() - t0)}")
