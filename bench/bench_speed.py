"""Translator and classifier speed side by side, in one run on the machine at hand (issues 10 and 14).

    .venv/bin/python bench/bench_speed.py [--parts peak canonical paper generate classifier] [--reps 3]
                                          [--quick] [--device cpu|cuda] [--out-dir bench/results]

Writes ``<out-dir>/speed-<processor-slug>.json`` (every row) and ``speed-<processor-slug>.md`` (the
table for the README), naming the processor and, on a CPU, whether it has AMX / AVX-512 BF16.

- ``peak``: the machine's bf16 and fp32 matmul peaks (TFLOP/s, best of a large ``torch.mm`` loop);
- ``canonical``: the canonical preset's training step, batch 1: fp32 eager (the canonical computation,
  which measured the same as junyanz's implementation: 11.6 vs 11.5 s on the AMD EPYC CI machine), our
  default (bf16 autocast where native) eager, and the same compiled (``compile=on``);
- ``paper``: the update of each of ``--presets`` (default ``paper``; ``refined`` is the new recipe) at
  batch 16, at 128 and 256 px, eager and compiled (``--modes``);
- ``generate``: ``cxrsynth generate`` end to end (decode, translate, encode, write) on the NIH sample
  images, eager and compiled: images/s in a run that pays the compile, and in a second run in the same
  process (steady state);
- ``classifier``: benchmark classifier training (``benchmark/fit.py``) images/s: the previous loop (a
  DataLoader over float images, fp32) beside the current one (uint8 cache) in fp32 and at the default
  precision.

Each time is given in seconds, as a ratio to the canonical fp32 step where that is the reference, and as
a fraction of the bf16 peak, from FLOPs counted with torch's FlopCounterMode on the eager computation.
Times are medians of ``--reps`` after a warm-up (the compile, for compiled rows); CPU seconds (this
process's CPU time) are recorded too: on a shared machine they are less inflated than wall time.
``--quick`` is a smoke run: small images, 1 repetition, a few generated images; its numbers only show
that every part runs.

Each time is also a fraction of the peak of the precision it ran in (``fraction_of_own_peak``): on a CPU
without native bf16, ``auto`` trains in fp32, and the bf16 "peak" there is an emulation hundreds of times
slower than fp32, so only the fp32 fraction means anything.

Comparisons in one run: ``--label before`` names the rows of one invocation, and ``--append`` adds them
to the file an earlier invocation wrote; run the old code (``PYTHONPATH=<export of the old commit>``) and
the new one alternately, so that both see the same load. Without ``--append``, the rows already in the
file are kept under ``earlier_runs`` (with their own machine description) and shown as such.
``--threads N`` sets torch's thread count (1 is the most robust on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench_paper_preset import _sync, matmul_peak, processor_name, time_update
from bench_translate import generation_workdir

from cxrsynth.core.allocator import keep_freed_memory
from cxrsynth.core.device import autocast_dtype

try:
    from cxrsynth.stages.translate.compile_choice import Workload
except ImportError:  # an export of the code before it (a "before" row): nothing to record
    Workload = None

PARTS = ("peak", "canonical", "paper", "generate", "classifier")


def cpu_flags() -> dict:
    """The CPU's bf16 matmul hardware as /proc/cpuinfo names it (AMX tiles, AVX-512 BF16)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    flags = set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split()) if "flags" in text else set()
    return {"amx_bf16": "amx_bf16" in flags, "amx_tile": "amx_tile" in flags, "avx512_bf16": "avx512_bf16" in flags}


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown"


class Table:
    """Rows as they are measured (printed as JSON lines), with the references they are compared with."""

    def __init__(self, stem: Path, meta: dict, append: bool = False, label: str = ""):
        self.rows: list[dict] = []
        self.stem, self.meta, self.label = stem, meta, label
        self.peaks: dict = {}
        self.canonical_s: float | None = None
        self.earlier: list[dict] = []
        old = stem.with_suffix(".json")
        if old.is_file():
            prev = json.loads(old.read_text())
            self.earlier = prev.get("earlier_runs", [])
            if append:  # the same run, another invocation: its rows, its meta and peaks go on
                self.rows, self.meta = prev["rows"], dict(prev["meta"], **{"appended": prev["meta"].get("appended", []) + [meta]})
                self.peaks = prev.get("peaks", {})
            else:
                self.earlier = [{"meta": prev["meta"], "rows": prev["rows"]}] + self.earlier

    def write(self) -> None:
        """Both files, rewritten after every row: a run cut short keeps what it measured."""
        self.stem.parent.mkdir(parents=True, exist_ok=True)
        data = {"meta": self.meta, "peaks": self.peaks, "rows": self.rows, "earlier_runs": self.earlier}
        tmp = self.stem.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.stem.with_suffix(".json"))
        self.stem.with_suffix(".md").write_text(markdown(self.meta, self.rows, self.earlier))

    def add(self, part: str, what: str, seconds: float | None = None, flops: float | None = None,
            precision: str | None = None, **extra) -> dict:
        row = {"part": part, "what": f"{self.label}: {what}" if self.label else what, **extra,
               "threads": torch.get_num_threads(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        if self.label:
            row["label"] = self.label
        pk = self.peaks.get(str(torch.get_num_threads()), {})  # the peaks measured at this thread count
        if seconds is not None:
            row["seconds"] = round(seconds, 4)
            if self.canonical_s and part in ("canonical",):
                row["speedup_vs_canonical_fp32"] = round(self.canonical_s / seconds, 2)
            if flops:
                row["tflops"] = round(flops / seconds / 1e12, 4)
                if pk.get("bf16") and pk.get("bf16_native", True):  # an emulated bf16 is no ceiling
                    row["fraction_of_bf16_peak"] = round(flops / seconds / 1e12 / pk["bf16"], 3)
                if precision and pk.get(precision):
                    row["precision"] = precision
                    row["fraction_of_own_peak"] = round(flops / seconds / 1e12 / pk[precision], 3)
                    if "cpu_seconds" in row and pk.get(f"{precision}_cpu"):
                        # CPU seconds per thread against the CPU-time peak: both less inflated by load
                        per_thread = row["cpu_seconds"] / torch.get_num_threads()
                        row["fraction_of_own_peak_cpu"] = round(flops / per_thread / 1e12 / pk[f"{precision}_cpu"], 3)
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        self.write()
        return row


def matmul_peak_cpu_time(dtype: torch.dtype, n: int, reps: int) -> float:
    """The matmul peak from this process's CPU time per thread (best of ``reps``): on a loaded machine the
    wall-clock peak is deflated by every slice another process takes, the CPU-time one much less."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        c = time.process_time()
        a @ b
        best = min(best, (time.process_time() - c) / torch.get_num_threads())
    return 2 * n ** 3 / best / 1e12


def part_peak(t: Table, device: torch.device, quick: bool, n: int = 4096) -> None:
    """Both peaks; without native bf16 (an emulation hundreds of times slower) the bf16 one is taken on a
    small matmul, once, so that it is on record without costing minutes."""
    from cxrsynth.core.device import cpu_has_native_bf16

    n, reps = (1024, 3) if quick else (n, 10)
    native = device.type != "cpu" or cpu_has_native_bf16()
    c = time.process_time()
    w = time.perf_counter()
    pk = {"bf16": matmul_peak(device, torch.bfloat16, n if native else 512, reps if native else 1),
          "fp32": matmul_peak(device, torch.float32, n, reps)}
    if device.type == "cpu":
        pk["fp32_cpu"] = matmul_peak_cpu_time(torch.float32, n, reps)
        pk["bf16_cpu"] = matmul_peak_cpu_time(torch.bfloat16, n, reps) if native else None
    pk["bf16_native"] = native
    t.peaks[str(torch.get_num_threads())] = pk
    t.add("peak", f"matmul {n}x{n}, best of {reps}" + ("" if native else " (bf16: 512x512 once, not native)"),
          tflops_bf16=round(pk["bf16"], 4), tflops_fp32=round(pk["fp32"], 4), bf16_native=native,
          tflops_fp32_cpu_time=round(pk["fp32_cpu"], 4) if pk.get("fp32_cpu") else None,
          cpu_over_wall=round((time.process_time() - c) / (time.perf_counter() - w), 2))


def _step_row(t: Table, part: str, what: str, r: dict, precision: str | None = None, **extra) -> dict:
    return t.add(part, what, r["seconds"], r["flops"], precision, cpu_seconds=round(r["cpu_seconds"], 4),
                 warmup_s=round(r["first_s"], 2), tflop=round(r["flops"] / 1e12, 4), **extra)


def part_canonical(t: Table, device: torch.device, size: int, reps: int, amp) -> None:
    """fp32 eager first: it is the reference of every other step."""
    r = time_update("canonical", size, 1, None, False, device, reps)
    t.canonical_s = r["seconds"]
    _step_row(t, "canonical", "canonical step, batch 1, fp32 eager (the canonical computation)", r, "fp32", size=size)
    seconds = {}
    for compiled in (False, True):
        r = time_update("canonical", size, 1, amp, False, device, reps, compiled=compiled)
        _step_row(t, "canonical", f"canonical step, batch 1, default {_name(amp)} {'compiled' if compiled else 'eager'}",
                  r, _name(amp), size=size)
        seconds["compiled" if compiled else "eager"] = r["cpu_seconds" if device.type == "cpu" else "seconds"]
    _record_choice(t, device, Workload and Workload("canonical", size, 1, _name(amp), False), seconds)


def part_paper(t: Table, device: torch.device, sizes: list[int], batch: int, reps: int, amp, presets=("paper",),
               modes=("eager", "compiled"), channels_last: bool = False) -> None:
    fmt = ", channels_last" if channels_last else ""
    for preset in presets:
        for size in sizes:
            seconds = {}
            for mode in modes:
                r = time_update(preset, size, batch, amp, channels_last, device, reps, compiled=mode == "compiled")
                _step_row(t, "paper", f"{preset} update, batch {batch}, {size} px, {_name(amp)}{fmt} {mode}", r,
                          _name(amp), preset=preset, size=size, batch=batch, channels_last=channels_last,
                          full_run_hours_1000_updates=round(r["seconds"] * 1000 / 3600, 2))
                seconds[mode] = r["cpu_seconds" if device.type == "cpu" else "seconds"]
            _record_choice(t, device, Workload and Workload(preset, size, batch, _name(amp), channels_last), seconds)


def _record_choice(t: Table, device: torch.device, work, seconds: dict) -> None:
    """Both modes measured: what ``compile: auto`` will pick for this workload here (compile_choice.py).
    On a CPU shared with other work, CPU seconds decide (wall time is what the load inflates)."""
    if {"eager", "compiled"} <= seconds.keys() and not t.label and work is not None:  # a labelled (old-code) row is no choice
        from cxrsynth.stages.translate.compile_choice import record

        path = record(device, work, seconds["eager"], seconds["compiled"])
        print(f"compile auto for {work.key()}: {'compiled' if seconds['compiled'] < seconds['eager'] else 'eager'} "
              f"(recorded in {path})", flush=True)


def _name(amp) -> str:
    return "bf16" if amp is torch.bfloat16 else "fp32"


def part_generate(t: Table, device: torch.device, size: int, images: int, batch: int, amp) -> None:
    """Two runs per mode in this process: the first pays the compile, the second is the steady state."""
    import shutil

    from cxrsynth.stages.generate import GenerateConfig
    from cxrsynth.pipeline import generate_in
    from cxrsynth.stages.translate.checkpoint import load_generator

    wd = Path(tempfile.mkdtemp(prefix="bench-speed-gen-"))
    try:
        generation_workdir(wd, replicate=max(1, -(-images // 275)), size=size)
        net, _ = load_generator(wd / "translators" / "normal-covid" / "generator.safetensors", device)
        x = torch.zeros(1, 1, size, size, device=device)
        with FlopCounterMode(display=False) as fc, torch.inference_mode():
            net(x)
        flops = fc.get_total_flops()
        for mode in ("off", "on"):
            for run in ("first run (pays the compile)" if mode == "on" else "first run", "second run"):
                shutil.rmtree(wd / "generated", ignore_errors=True)
                cfg = GenerateConfig(configs=("g_nc",), limit=images, shard_size=images, batch_size=batch, workers=1,
                                     device=str(device), precision="fp32" if amp is None else "bf16", compile=mode)
                c = time.process_time()
                rep = generate_in(wd, cfg)["configs"]["g_nc"]
                cpu = time.process_time() - c
                per = rep["seconds"] / rep["generated"]
                t.add("generate", f"generate end to end, {size} px, batch {batch}, {_name(amp)}, "
                      f"{'compiled' if mode == 'on' else 'eager'}, {run}", per, flops, images=rep["generated"],
                      images_per_s=round(1 / per, 3), cpu_seconds_per_image=round(cpu / rep["generated"], 4),
                      gflop_per_image=round(flops / 1e9, 2))
    finally:
        shutil.rmtree(wd, ignore_errors=True)


def part_classifier(t: Table, device: torch.device, model: str, size: int, n: int, reps: int) -> None:
    """One epoch of ``fit`` on ``n`` random k/255 images: before (a DataLoader over float tensors, fp32,
    as fit.py trained until issue 14) and now (uint8 cache), in fp32 and at the default precision."""
    from cxrsynth.measure.classifiers import build
    from cxrsynth.stages.benchmark.fit import FitConfig, bce_softmax, fit, optimizer
    from cxrsynth.core.runtime import Runtime

    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=g)
    ds = torch.utils.data.TensorDataset(u8.float() / 255, torch.randint(0, 2, (n,), generator=g))
    monitor = torch.utils.data.TensorDataset(u8[:2].float() / 255, torch.tensor([0, 1]))
    with FlopCounterMode(display=False) as fc:
        m = build(model, "random")
        bce_softmax(m(ds[:2][0]), ds[:2][1]).backward()
    flops_per_image = fc.get_total_flops() / 2

    def before() -> None:  # the training loop of fit.py before issue 14 (the monitor pass left out)
        m = build(model, "random").to(device)
        opt, _ = optimizer(m, FitConfig())
        loader = torch.utils.data.DataLoader(ds, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            opt.zero_grad(set_to_none=True)
            bce_softmax(m(x), y).backward()
            opt.step()

    variants = [("before: DataLoader over float images, fp32", before)]
    for prec in ("fp32", "auto"):
        cfg = FitConfig(max_epochs=1, batch_size=16, precision=prec)
        label = "bf16" if prec == "auto" and autocast_dtype("auto", device) else "fp32"
        variants.append((f"now: uint8 cache, {prec} ({label})",
                         lambda cfg=cfg: fit(build(model, "random"), ds, monitor, cfg, 0,
                                             Runtime.resolve(str(device), cfg.precision))))
    for what, fn in variants:
        times, cpu = [], []
        for _ in range(reps + 1):  # the first is a warm-up
            _sync(device)
            w, c = time.perf_counter(), time.process_time()
            fn()
            _sync(device)
            times.append(time.perf_counter() - w)
            cpu.append(time.process_time() - c)
        sec, cs = statistics.median(times[1:]), statistics.median(cpu[1:])
        t.add("classifier", f"classifier training, {model}, {size} px, batch 16: {what}", sec / n, flops_per_image,
              images_per_s=round(n / sec, 2), cpu_images_per_s=round(n / cs, 2), images=n)


def markdown(meta: dict, rows: list[dict], earlier: list[dict] = ()) -> str:
    head = (f"Processor: **{meta['processor']}** ({', '.join(k for k, v in meta.get('cpu_flags', {}).items() if v) or 'no AMX / AVX-512 BF16'}); "
            f"torch {meta['torch']}; {meta['when']}.\n\n")
    for peak in (r for r in rows if r["part"] == "peak"):
        head += (f"Matmul peak ({peak.get('threads', meta['threads'])} thread(s)): bf16 {peak['tflops_bf16']} TFLOP/s"
                 f"{'' if peak.get('bf16_native', True) else ' (not native: emulated)'}, fp32 {peak['tflops_fp32']} TFLOP/s"
                 + (f" (from CPU time: fp32 {peak['tflops_fp32_cpu_time']})" if peak.get("tflops_fp32_cpu_time") else "")
                 + ".\n\n")
    lines = ["| what | threads | seconds | CPU seconds | x canonical fp32 step | images/s | fraction of bf16 peak "
             "| fraction of own precision's peak (wall / CPU) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["part"] == "peak":
            continue
        own = f"{r['fraction_of_own_peak']} / {r.get('fraction_of_own_peak_cpu', '')}" if "fraction_of_own_peak" in r else ""
        lines.append(f"| {r['what']} | {r.get('threads', meta['threads'])} | {r.get('seconds', '')} | {r.get('cpu_seconds', '')} | "
                     f"{r.get('speedup_vs_canonical_fp32', '')} | {r.get('images_per_s', '')} | "
                     f"{r.get('fraction_of_bf16_peak', '')} | {own} |")
    out = head + "\n".join(lines) + "\n" + (f"\n{meta['note']}\n" if meta.get("note") else "")
    for run in earlier:  # earlier runs, on the machine each names (kept as they were measured)
        out += "\n## Earlier run (before the changes of later runs; its own machine)\n\n" + markdown(run["meta"], run["rows"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per row (after a warm-up)")
    ap.add_argument("--quick", action="store_true", help="smoke run: small sizes, 1 repetition")
    ap.add_argument("--canonical-size", type=int, default=256)
    ap.add_argument("--paper-sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--paper-batch", type=int, default=16)
    ap.add_argument("--peak-n", type=int, default=4096, help="matmul side of the peak measurement")
    ap.add_argument("--presets", nargs="+", default=["paper"], help="presets of the paper part (paper, refined, refined-thumbnail)")
    ap.add_argument("--modes", nargs="+", choices=("eager", "compiled"), default=["eager", "compiled"])
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"), help="of the paper part")
    ap.add_argument("--channels-last", action="store_true", help="the paper part in channels_last")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--label", default="", help="names this invocation's rows, e.g. before / after")
    ap.add_argument("--append", action="store_true", help="add to the file an earlier invocation of this run wrote")
    ap.add_argument("--gen-images", type=int, default=200)
    ap.add_argument("--gen-batch", type=int, default=2)
    ap.add_argument("--classifier-model", default="resnet50")
    ap.add_argument("--classifier-size", type=int, default=224)
    ap.add_argument("--classifier-images", type=int, default=64)
    ap.add_argument("--out-dir", default="bench/results")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.canonical_size, args.paper_sizes, args.paper_batch = 1, 64, [64], 2
        args.gen_images, args.classifier_model, args.classifier_size, args.classifier_images = 8, "resnet18", 64, 32
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    # as Runtime.resolve does for the CPU (CXRSYNTH_MALLOC=system measures glibc's defaults)
    kept = keep_freed_memory() if device.type == "cpu" else None
    amp = autocast_dtype("auto", device)  # our default precision
    paper_amp = autocast_dtype(args.precision, device)
    name = processor_name()
    meta = {"processor": name, "cpu_flags": cpu_flags() if device.type == "cpu" else {}, "device": str(device),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "kept_freed_memory": kept, "quick": args.quick, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None, "args": vars(args)}
    print(json.dumps(meta), flush=True)
    t = Table(Path(args.out_dir) / f"speed-{slug(name)}{'-quick' if args.quick else ''}", meta, args.append, args.label)
    if "peak" in args.parts:
        part_peak(t, device, args.quick, args.peak_n)
    if "canonical" in args.parts:
        part_canonical(t, device, args.canonical_size, args.reps, amp)
    if "paper" in args.parts:
        part_paper(t, device, args.paper_sizes, args.paper_batch, args.reps, paper_amp, args.presets, args.modes,
                   args.channels_last)
    if "generate" in args.parts:
        part_generate(t, device, args.canonical_size, args.gen_images, args.gen_batch, amp)
    if "classifier" in args.parts:
        part_classifier(t, device, args.classifier_model, args.classifier_size, args.classifier_images, args.reps)
    t.meta["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    t.write()
    print(f"wrote {t.stem}.json and .md", flush=True)


if __name__ == "__main__":
    main()
