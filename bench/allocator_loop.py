"""A plain loop of translator updates, with the page faults and peak resident size after each (issue 19).

    .venv/bin/python bench/allocator_loop.py refined 256 --steps 12
    CXRSYNTH_MALLOC=system .venv/bin/python bench/allocator_loop.py refined 256 --steps 5

bf16 autocast, channels_last, batch 16, on the CPU. It resolves a Runtime the way training does, so the
process keeps its freed memory (``cxrsynth/core/allocator.py``) unless ``CXRSYNTH_MALLOC=system``. Prints
one line per update (seconds, peak RSS, cumulative minor faults), then the median: this is how
``bench/README.md``'s "Page faults: the CPU allocator" counted about 4 million faults per ``refined``
update at 256 px with glibc's defaults, and 0 to 1 kept.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from cxrsynth.core.runtime import Runtime
from cxrsynth.stages.translate.train import CycleGAN, build_models, resolve_train_config


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("preset")
    ap.add_argument("size", type=int)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    rt = Runtime.resolve("cpu", "bf16", True)
    cfg = resolve_train_config(overrides=[f"preset={args.preset}", f"size={args.size}", f"batch_size={args.batch}"])
    nets = build_models(cfg)
    for n in nets.values():
        n.to(rt.device, memory_format=torch.channels_last)
    model = CycleGAN(nets, cfg, rt)
    a, b = ((torch.rand(args.batch, 1, args.size, args.size) * 2 - 1).contiguous(memory_format=torch.channels_last)
            for _ in range(2))
    model.step(a, b, 0)  # warm-up
    times = []
    for i in range(args.steps):
        t = time.perf_counter()
        model.step(a, b, i + 1)
        times.append(time.perf_counter() - t)
        use = resource.getrusage(resource.RUSAGE_SELF)
        print(f"update {i + 1}: {times[-1]:.2f} s, peak RSS {use.ru_maxrss // 1024} MB, minor faults so far "
              f"{use.ru_minflt}", flush=True)
    print(f"{args.preset} {args.size} px: median {statistics.median(times):.3f} s over {args.steps} updates")


if __name__ == "__main__":
    main()
