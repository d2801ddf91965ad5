"""Translator speed at 256 px: training seconds per iteration and generation images per second.

    .venv/bin/python bench/bench_translate.py [--train-iters 3] [--gen-images 64] [--device cpu|cuda]
                                              [--out bench/out/translate.json]

Every variant runs in the same process as the plain eager reference it is compared with:

- training, batch 1 (the canonical setting): the reference is the CycleGAN step in fp32, contiguous
  tensors (what the canonical implementation computes); variants add channels_last and bf16 autocast;
- generation: the bare generator forward (inference_mode) at batch 1..16, fp32 and bf16 +
  channels_last; then ``cxrsynth.stages.generate`` end to end (decode, translate, encode, write) on real
  sample images, compared with the bare forward at the best batch size.

Needs the sample data (for the end-to-end part); prints one JSON line per measurement and writes all.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from _common import replicated_nih

from cxrsynth.stages.translate.networks import ResnetGenerator, generator_macs
from cxrsynth.stages.translate.train import CycleGAN, Runtime, TrainConfig, build_models


def _emit(rows: list, row: dict) -> None:
    rows.append(row)
    print(json.dumps(row), flush=True)


def bench_train(device: torch.device, iters: int, rows: list) -> None:
    variants = [("eager fp32 (reference)", None, False), ("channels_last fp32", None, True),
                ("bf16 autocast", torch.bfloat16, False), ("bf16 autocast + channels_last", torch.bfloat16, True)]
    for name, amp, cl in variants:
        cfg = TrainConfig(size=256)
        nets = build_models(cfg)
        fmt = torch.channels_last if cl else torch.contiguous_format
        for n in nets.values():
            n.to(device, memory_format=fmt)
        model = CycleGAN(nets, cfg, Runtime(device, amp_dtype=amp, channels_last=cl))
        a = torch.rand(1, 1, 256, 256, device=device).mul(2).sub(1).contiguous(memory_format=fmt)
        b = torch.rand(1, 1, 256, 256, device=device).mul(2).sub(1).contiguous(memory_format=fmt)
        times = []
        for i in range(iters + 1):  # the first is warm-up
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            model.step(a, b, i)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        med = statistics.median(times[1:])
        _emit(rows, {"bench": "train", "variant": name, "device": str(device), "batch": 1,
                     "seconds_per_iter": round(med, 4), "iters_per_s": round(1 / med, 3)})


def bare_forward(device: torch.device, batches: list[int], repeats: int, rows: list) -> dict:
    best: dict = {}
    net = ResnetGenerator(1, 1, 64, 9).to(device).eval()
    for name, amp, cl in (("fp32", None, False), ("bf16", torch.bfloat16, False),
                          ("bf16 + channels_last", torch.bfloat16, True)):
        m = net.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
        for bs in batches:
            x = torch.rand(bs, 1, 256, 256, device=device)
            if cl:
                x = x.contiguous(memory_format=torch.channels_last)
            times = []
            for _ in range(repeats + 1):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                with torch.inference_mode(), torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                    m(x)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t)
            per_img = statistics.median(times[1:]) / bs
            _emit(rows, {"bench": "forward", "variant": name, "device": str(device), "batch": bs,
                         "seconds_per_image": round(per_img, 5), "images_per_s": round(1 / per_img, 2)})
            if name not in best or per_img < best[name]["seconds_per_image"]:
                best[name] = {"batch": bs, "seconds_per_image": per_img}
    return best


def generation_workdir(wd: Path, replicate: int = 1, size: int = 256) -> Path:
    """A work folder whose plan translates every NIH sample image (``replicate`` copies of each), with a
    freshly initialised canonical generator at ``size`` px as its normal-covid translator."""
    from cxrsynth.core.config import resolve
    from cxrsynth.stages.ingest import IngestConfig, ingest
    from cxrsynth.core.paths import read_json, sample_data_dir
    from cxrsynth.stages.plan import PlanConfig, make_plan
    from cxrsynth.data.records import read_records
    from cxrsynth.stages.splits import SplitConfig, make_splits
    from cxrsynth.stages.translate.checkpoint import export_generator
    from cxrsynth.stages.translate.networks import default_blocks

    src = replicated_nih(wd / "nih", replicate) if replicate > 1 else sample_data_dir() / "nih-chestxray14-sample"
    ingest([src], resolve(IngestConfig, overrides=["nih.min_age=null", "dedupe=false", "workers=4"]), wd)
    recs = read_records(wd / "records.parquet")
    make_splits(recs, SplitConfig(fractions=(1.0, 0.0, 0.0)), wd / "records.parquet", wd / "splits.json")
    make_plan(recs, read_json(wd / "splits.json"), PlanConfig(per_domain=1), wd / "plan.json")
    blocks = default_blocks(size)
    arch = {"name": "resnet_generator", "in_channels": 1, "out_channels": 1, "base": 64, "blocks": blocks, "size": size}
    export_generator(ResnetGenerator(1, 1, 64, blocks), wd / "translators" / "normal-covid" / "generator.safetensors", arch)
    return wd


def end_to_end(device: torch.device, n_images: int, best: dict, rows: list, replicate: int = 1,
               workers_list: tuple[int, ...] = (0, 1), encoders: int = 2) -> None:
    """cxrsynth.stages.generate on real NIH images with a freshly initialised 256 px generator."""
    from cxrsynth.stages.generate import GenerateConfig, generate

    wd = Path(tempfile.mkdtemp(prefix="bench-gen-"))
    try:
        generation_workdir(wd, replicate)
        for name, prec, cl in (("fp32", "fp32", False), ("bf16", "bf16", False), ("bf16 + channels_last", "bf16", True)):
            bs = best[name]["batch"]
            for workers in workers_list:
                shutil.rmtree(wd / "generated", ignore_errors=True)
                cfg = GenerateConfig(configs=("g_nc",), limit=n_images, batch_size=bs, workers=workers,
                                     encoders=encoders, shard_size=n_images, device=str(device), precision=prec, channels_last=cl,
                                     compile="off")
                t = time.perf_counter()
                rep = generate(wd, cfg)["configs"]["g_nc"]
                wall = time.perf_counter() - t  # includes loading the generator and the record table
                per_img = rep["seconds"] / rep["generated"]
                _emit(rows, {"bench": "generate_end_to_end", "variant": name, "device": str(device), "batch": bs,
                             "workers": workers, "encoders": encoders, "replicate": replicate, "images": rep["generated"], "images_per_s": round(1 / per_img, 2),
                             "wall_s_incl_startup": round(wall, 2),
                             "ratio_to_bare_forward": round(per_img / best[name]["seconds_per_image"], 3)})
    finally:
        shutil.rmtree(wd, ignore_errors=True)



def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--train-iters", type=int, default=3)
    ap.add_argument("--gen-images", type=int, default=64)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--replicate", type=int, default=1, help="repeat the sample images K times (stated in the output)")
    ap.add_argument("--gen-workers", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--encoders", type=int, default=2)
    ap.add_argument("--out", default="bench/out/translate.json")
    args = ap.parse_args()
    device = torch.device(args.device)
    rows: list = []
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
            "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
            "generator_gmacs_per_image": round(generator_macs(256) / 1e9, 2)}
    print(json.dumps(meta), flush=True)
    if not args.skip_train:
        bench_train(device, args.train_iters, rows)
    best = bare_forward(device, args.batches, args.repeats, rows)
    end_to_end(device, args.gen_images, best, rows, args.replicate, tuple(args.gen_workers), args.encoders)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
