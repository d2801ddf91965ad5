"""Where and how this process runs: one :class:`Runtime`, resolved once and handed to the stages.

Device, autocast dtype, memory format, and the process's place among several (``torchrun`` sets
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; ``generate --rank/--world`` may say it instead). Before,
training, generation and the CLI each read the environment and chose the device their own way. The
choices themselves (what ``auto`` means on which hardware) stay in ``device.py``; this module only
gathers them. A Runtime is never written into a config: the same config runs anywhere.
"""

from __future__ import annotations

import atexit
import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from .allocator import keep_freed_memory
from .device import autocast_dtype, pick_device, use_channels_last


PRECISION_NAMES = {None: "fp32", torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass(frozen=True)
class Ranks:
    """This process's place: ``rank`` of ``world`` processes, ``local`` on its machine."""

    rank: int = 0
    world: int = 1
    local: int = 0

    @classmethod
    def from_env(cls) -> Ranks:
        """``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` as torchrun sets them (0, 1, 0 without it)."""
        env = os.environ
        return cls(int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1")), int(env.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes what is written once (reports, exports, results)."""
        return self.rank == 0


@dataclass(frozen=True)
class Runtime:
    """The device and numerics one process runs with, and its rank among ``world`` processes."""

    device: torch.device
    rank: int = 0
    world: int = 1
    amp_dtype: torch.dtype | None = None  # autocast dtype; None: fp32
    channels_last: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def precision(self) -> str:
        """``"bf16"``, ``"fp16"`` or ``"fp32"``, as reports state it (never a torch dtype's repr)."""
        return PRECISION_NAMES[self.amp_dtype]

    @classmethod
    def resolve(cls, device: str = "auto", precision: str = "auto", channels_last: bool | None = None,
                ranks: Ranks | None = None) -> Runtime:
        """Choose the device (``auto`` | cpu | cuda | cuda:N | mps; under torchrun ``cuda`` is the
        local rank's GPU), the autocast dtype and the memory format (``device.py``). On the CPU, the
        process keeps its freed memory from here on (``allocator.py``: page faults halved the 256 px
        translator update)."""
        ranks = ranks or Ranks.from_env()
        dev = pick_device(device, ranks.local)
        if dev.type == "cpu":
            keep_freed_memory()
        return cls(dev, ranks.rank, ranks.world, autocast_dtype(precision, dev), use_channels_last(channels_last, dev))

    def with_numerics(self, precision: str = "auto", channels_last: bool | None = None) -> Runtime:
        """This Runtime (same device and ranks) with another stage's autocast dtype and memory format:
        the release runs train, generate and the audit on one device, each with its own precision
        setting, without choosing the device again."""
        return Runtime(self.device, self.rank, self.world, autocast_dtype(precision, self.device),
                       use_channels_last(channels_last, self.device))

    def start_distributed(self) -> Runtime:
        """Bind this process to its GPU and, with several processes, join their process group (NCCL on
        CUDA, gloo on the CPU). Training needs it; generation shares shards through files instead."""
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            atexit.register(_leave_process_group)
        return self


def _leave_process_group() -> None:
    """At exit, before the interpreter's teardown: collect what no one holds any more (the DDP-wrapped nets of
    a finished training, which reference cycles may keep), then destroy the process group, as torch asks of
    every program (pytorch/pytorch#190489). Left to the teardown, a DDP reducer's gloo work aborted a process
    now and then ("terminate called without an active exception", SIGABRT): 7 of 50 two-process runs of
    bench/ddp_exit.py with the model alive, 2 of 35 with only the group destroyed, 0 of 165 with the model
    collected first. tests/test_train.py checks both at exit."""
    gc.collect()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


@contextmanager
def torch_threads(n: int | None = None) -> Iterator[None]:
    """Run the block with torch on ``n`` threads (None: as it is), and give torch its thread count back
    after it, whatever the block did to it.

    Why: torch's thread count is the process's OpenMP setting, which other libraries share. numba's OpenMP
    threading layer (UMAP, in the benchmark's figures) sets it back to numba's own count, every core, when
    it finishes: after one UMAP a process asked to use one thread ran torch on two. On the 2-core machine,
    beside a second busy process, that made tiny trainings 20-100 times slower (the OpenMP threads wait for
    each other), and it overrides what a user set with ``OMP_NUM_THREADS``."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)

