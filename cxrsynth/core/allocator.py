"""Keep freed memory inside the process on a Linux CPU, so that training steps stop paying page faults.

PyTorch's CPU allocator caches nothing: each tensor is ``malloc``'d and freed. glibc serves a request of
32 MiB or more with fresh pages from the kernel (``mmap``) and gives them back at ``free``; it also gives
back the top of its heap once enough of it is free. Fresh pages are zero-filled by the kernel at first
touch, one page fault per 4 KiB. A translator update allocates and frees gigabytes of activations and
gradients, so it paid those faults at every step: on the 2-core AMD EPYC Zen 5 (bf16, channels_last,
batch 16) the ``refined`` update took 10.8 s at 256 px with glibc's defaults and 5.5 s with the two
settings below, ``paper`` 5.9 s against 4.6 s; the benchmark classifier's step 130 ms against 124 ms
(``bench/README.md``, "Page faults: the CPU allocator").

The two settings (``mallopt``): no ``mmap`` for large blocks, and no trimming of the heap. Freed memory
then stays with the process and the next step reuses it; the price is that the process's resident size
stays at its peak instead of shrinking between steps. jemalloc or tcmalloc (``LD_PRELOAD``) do the same
and more, but must be installed and set before the process starts; this needs neither.

:func:`keep_freed_memory` is called by :meth:`cxrsynth.core.runtime.Runtime.resolve` for the CPU. It
changes nothing off glibc, and ``CXRSYNTH_MALLOC=system`` leaves glibc's defaults alone.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

from .errors import ConfigError

#: glibc's ``mallopt`` parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4

ENV = "CXRSYNTH_MALLOC"

_applied: bool | None = None  # the first call's answer: the settings are process-wide and set once


def keep_freed_memory() -> bool:
    """Set glibc to keep freed memory (see the module's docstring); True when this process now does.

    False, and nothing changed, off Linux's glibc or with ``CXRSYNTH_MALLOC=system``. Idempotent."""
    global _applied
    if _applied is not None:
        return _applied
    choice = os.environ.get(ENV, "keep").strip().lower()
    if choice not in ("keep", "system"):
        raise ConfigError(f"{ENV} must be 'keep' (the default) or 'system', not {choice!r}")
    if choice == "system" or not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        _applied = False
        return False
    libc = ctypes.CDLL(None)  # the C library this interpreter is linked with
    # mallopt answers 1 on success; trimming off first, so that a failure leaves mmap as it was
    _applied = bool(libc.mallopt(M_TRIM_THRESHOLD, -1) == 1 and libc.mallopt(M_MMAP_MAX, 0) == 1)
    return _applied
