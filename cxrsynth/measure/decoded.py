"""Real images decoded once per process, at each size asked for.

An audit reads the same real X-rays several times at one size: its real sets (pool, held-out, COVID-19),
then the fidelity section's real COVID-19 images and the untranslated sources, and, in the same process,
the next audit of the same work folder (a release made after the audit, audited again). Decoding (PNG and
JPEG files of up to 1024 px, then resampling) was about a quarter of an audit's time on the sample data
(issue 23, cProfile), so decoded arrays are kept, least recently used first out, up to
:data:`MAX_BYTES`.

An entry is keyed by the file's path, size in bytes and modification time as well as the size asked
for, so a file replaced on disk is decoded again. The arrays are read-only: callers copy (``np.stack``,
``astype``) before changing anything.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..data.images import load_canonical

MAX_BYTES = 512 * 2**20  # 8,000 images at 256 px

_cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
_held = [0]


def canonical(path: str | Path, size: int) -> np.ndarray:
    """:func:`cxrsynth.data.images.load_canonical` of ``path`` at ``size`` (read-only), decoded once while
    the file is unchanged. A file that cannot be read gets load_canonical's own error, naming it."""
    try:
        st = os.stat(path)
    except OSError:
        return load_canonical(path, size)  # raises the clear error for a missing file
    key = (str(path), size, st.st_size, st.st_mtime_ns)
    hit = _cache.get(key)
    if hit is not None:
        _cache.move_to_end(key)
        return hit
    px = load_canonical(path, size)
    px.setflags(write=False)
    _cache[key] = px
    _held[0] += px.nbytes
    while _held[0] > MAX_BYTES and _cache:
        _, old = _cache.popitem(last=False)
        _held[0] -= old.nbytes
    return px


def clear() -> None:
    """Forget every decoded image (frees the memory)."""
    _cache.clear()
    _held[0] = 0
