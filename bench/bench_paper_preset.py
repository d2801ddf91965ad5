"""Translator update speed beside the machine's matmul peak, measured in one run.

    .venv/bin/python bench/bench_paper_preset.py [--iters 3] [--sizes 128 256] [--device cpu|cuda]
                                                 [--out bench/results/paper_preset_<device>.json]

- peak: the best of several large square matmuls in bf16 and fp32 (TFLOP/s), the ceiling the update is
  compared with;
- ``paper`` preset: one full Keras-GAN update (D real, D fake, G) at batch 16, at each size, in fp32,
  bf16 autocast, and bf16 autocast + channels_last; FLOPs of the update counted by torch's
  FlopCounterMode (forward and backward), so each time is also a fraction of the bf16 peak;
- ``canonical`` preset: one training step at batch 1, 256 px, fp32 (the canonical computation) and bf16.

Prints one JSON line per measurement and writes them all, with the CPU or GPU named.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from cxrsynth.stages.translate.train import CycleGAN, Runtime, build_models, resolve_train_config


def processor_name() -> str:
    if torch.cuda.is_available() and torch.cuda.device_count():
        return torch.cuda.get_device_name(0)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e12


def time_update(preset: str, size: int, batch: int, amp, channels_last: bool, device: torch.device, iters: int,
                compiled: bool = False, settle: int = 2) -> dict:
    """One update of ``preset`` timed: median wall and CPU seconds of ``iters`` updates after a warm-up
    and ``settle`` untimed updates, the warm-up's seconds (eager: the FLOP-counting update; with
    ``compiled``: the compile) and the FLOPs of one update.

    FLOPs are counted on the eager update (compiled kernels bypass the counter; the maths is the same).
    CPU seconds are this process's CPU time: on a shared machine they are less inflated than wall time.
    """
    from cxrsynth.stages.translate.compile import maybe_compile

    cfg = resolve_train_config(overrides=[f"preset={preset}", f"size={size}", f"batch_size={batch}"])
    nets = build_models(cfg)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for n in nets.values():
        n.to(device, memory_format=fmt)
    model = CycleGAN(nets, cfg, Runtime(device, amp_dtype=amp, channels_last=channels_last))
    a = (torch.rand(batch, 1, size, size, device=device) * 2 - 1).contiguous(memory_format=fmt)
    b = (torch.rand(batch, 1, size, size, device=device) * 2 - 1).contiguous(memory_format=fmt)
    t = time.perf_counter()
    with FlopCounterMode(display=False) as fc:
        model.step(a, b, 0)
    _sync(device)
    first = time.perf_counter() - t  # eager: this counted step is the warm-up
    if compiled:  # the warm-up is the compile
        for n in nets.values():
            maybe_compile(n, "on", device, "train")
        t = time.perf_counter()
        model.step(a, b, 1)
        _sync(device)
        first = time.perf_counter() - t
    for i in range(settle):  # untimed: the heap settles over a few updates (core/allocator.py)
        model.step(a, b, i + 2)
    times, cpu = [], []
    for i in range(iters):
        _sync(device)
        t, c = time.perf_counter(), time.process_time()
        model.step(a, b, i + 2 + settle)
        _sync(device)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"seconds": statistics.median(times), "cpu_seconds": statistics.median(cpu), "first_s": first,
            "flops": fc.get_total_flops()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--skip-canonical", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    device = torch.device(args.device)
    rows: list[dict] = []

    def emit(row: dict) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)

    meta = {"processor": processor_name(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "device": str(device)}
    print(json.dumps(meta), flush=True)
    peaks = {"bf16": matmul_peak(device, torch.bfloat16), "fp32": matmul_peak(device, torch.float32)}
    emit({"bench": "matmul_peak", "tflops_bf16": round(peaks["bf16"], 3), "tflops_fp32": round(peaks["fp32"], 3)})
    variants = [("fp32", None, False), ("bf16", torch.bfloat16, False), ("bf16 + channels_last", torch.bfloat16, True)]
    for size in args.sizes:
        for name, amp, cl in variants:
            r = time_update("paper", size, 16, amp, cl, device, args.iters)
            sec, flops = r["seconds"], r["flops"]
            peak = peaks["fp32" if amp is None else "bf16"]
            emit({"bench": "paper_update", "size": size, "batch": 16, "variant": name, "seconds": round(sec, 3),
                  "tflop_per_update": round(flops / 1e12, 3), "tflops": round(flops / sec / 1e12, 3),
                  "fraction_of_own_peak": round(flops / sec / 1e12 / peak, 3),
                  "fraction_of_bf16_peak": round(flops / sec / 1e12 / peaks["bf16"], 3),
                  "full_run_hours_1000_updates": round(sec * 1000 / 3600, 2)})
    if not args.skip_canonical:
        for name, amp, cl in variants[:2]:
            r = time_update("canonical", 256, 1, amp, cl, device, args.iters)
            sec, flops = r["seconds"], r["flops"]
            emit({"bench": "canonical_step", "size": 256, "batch": 1, "variant": name, "seconds": round(sec, 3),
                  "tflop_per_step": round(flops / 1e12, 3), "tflops": round(flops / sec / 1e12, 3),
                  "fraction_of_bf16_peak": round(flops / sec / 1e12 / peaks["bf16"], 3)})
    out = Path(args.out or f"bench/results/paper_preset_{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
