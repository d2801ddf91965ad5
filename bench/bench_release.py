"""A release of the real size (21,295 images) built from the sample data, timed phase by phase.

    .venv/bin/python bench/bench_release.py [--total 21295] [--keep DIR]

Stand-in, stated in the output: the 1,000 NIH sample images repeated 26 times (hard links) play the
real images (a patient-level split keeps 90% of patients for training, the planned sources, and holds
out 10%, the new real images the audit calibrates against), and an identity "translator" stands in for
the CycleGAN, so every other part of the real pipeline runs as it would (ingest, split, plan, the
generate data path with decoding, PNG encoding, sharding and provenance; then package, verify,
load_dataset and a full pass; then the audit with its default sample sizes, and randomly initialised
reverse generators of the real architecture so that inverse recovery costs what it would). Translating
21,295 images with the real 256 px generator takes about an hour on this CPU (bench_translate.py)
and 25 s on an H100. Each phase runs in its own process so its peak memory (max RSS) is its own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
COPIES = 26  # 26,000 records: 90% of patients for training still plan more than 21,295 sources


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def phase(name: str, wd: Path, total: int) -> dict:
    t = time.perf_counter()
    extra: dict = {}
    if name == "prepare":
        from _common import replicated_nih

        from cxrsynth.core.config import resolve
        from cxrsynth.stages.ingest import IngestConfig, ingest
        from cxrsynth.core.paths import read_json
        from cxrsynth.stages.plan import PlanConfig, make_plan
        from cxrsynth.data.records import read_records
        from cxrsynth.stages.splits import SplitConfig, make_splits

        src = replicated_nih(wd / "nih", COPIES)
        res = ingest([src], resolve(IngestConfig, overrides=["dedupe=false", "nih.min_age=null", "workers=2"]), wd)
        recs = read_records(wd / "records.parquet")
        # 10% of patients held out (patient-level split): the new real images the audit calibrates against
        make_splits(recs, SplitConfig(fractions=(0.9, 0.0, 0.1)), wd / "records.parquet", wd / "splits.json")
        plan = make_plan(recs, read_json(wd / "splits.json"), PlanConfig(per_domain=1), wd / "plan.json")
        extra = {"records": len(recs), "ingest_images_per_s": res.report["timing"]["images_per_second"],
                 "planned": plan["totals"]["by_config"]}
    elif name == "generate":
        import torch

        import cxrsynth.stages.generate as g

        sha = hashlib.sha256(b"identity stand-in").hexdigest()

        def identity(path, device="cpu"):
            return torch.nn.Identity(), {"sha256": sha, "arch": {"size": 256}}

        g.load_generator = identity  # the stand-in translator (see the module docstring)
        n_nc = min(total, 11000)
        from cxrsynth.pipeline import generate_in

        r1 = generate_in(wd, g.GenerateConfig(configs=("g_nc",), limit=n_nc, workers=1, encoders=2, batch_size=16))
        r2 = generate_in(wd, g.GenerateConfig(configs=("g_pc",), limit=total - n_nc, workers=1, encoders=2, batch_size=16))
        n = r1["configs"]["g_nc"]["generated"] + r2["configs"]["g_pc"]["generated"]
        extra = {"images": n}
    elif name == "package":
        from cxrsynth.artifacts import ReleaseFolder
        from cxrsynth.pipeline import package_in
        from cxrsynth.stages.release.package import ReleaseConfig

        m = package_in(wd, ReleaseFolder(wd / "release" / "covid-cxr-synth"), ReleaseConfig()).manifest()
        extra = {"counts": m["counts"], "shards": len(m["files"]),
                 "bytes": sum(f["num_bytes"] for f in m["files"])}
    elif name == "verify":
        from cxrsynth.stages.release.verify import verify

        problems = verify(wd / "release" / "covid-cxr-synth")
        extra = {"problems": len(problems)}
    elif name == "load":
        from datasets import load_dataset

        ds = load_dataset(str(wd / "release" / "covid-cxr-synth"), "all", split="train")
        extra = {"rows": ds.num_rows}
        t_pass = time.perf_counter()
        pixels = 0
        for row in ds:
            pixels += row["image"].size[0] * row["image"].size[1]
        extra["full_pass_s"] = round(time.perf_counter() - t_pass, 2)
        extra["full_pass_rows_per_s"] = round(ds.num_rows / (time.perf_counter() - t_pass), 1)
    elif name == "audit":
        from cxrsynth.pipeline import audit_in
        from cxrsynth.stages.audit.run import AuditConfig

        planted = plant_reverse_generators(wd)
        rel = wd / "release" / "covid-cxr-synth"
        res = audit_in(wd, rel, AuditConfig(), private=wd / "release" / "covid-cxr-synth.private", out_dir=wd / "audit").data
        extra = {"sampled": res["sampled"], "pools": res["pools"], "embeddings": res["embeddings"],
                 "quality_extractor": res["quality"]["extractor"], "reverse_generator": planted,
                 "flagged": len(res["summary"]["flagged"]), "step_seconds": res["timing"]}
    elif name == "stream":
        from datasets import load_dataset

        ds = load_dataset(str(wd / "release" / "covid-cxr-synth"), "all", split="train", streaming=True)
        n = sum(1 for row in ds if row["image"].size[0] > 0)
        extra = {"rows": n}
    return {"phase": name, "seconds": round(time.perf_counter() - t, 2), "peak_rss_mb": _peak_mb(), **extra}


def plant_reverse_generators(wd: Path) -> str:
    """The stand-in translators have no reverse generator: put a randomly initialised one of the real
    architecture (ResNet, 9 blocks, base 64, 256 px) where the audit looks, so that inverse recovery costs
    what it costs with a trained one."""
    import torch

    from cxrsynth.stages.translate.checkpoint import export_generator
    from cxrsynth.stages.translate.networks import ResnetGenerator

    torch.manual_seed(0)
    arch = {"name": "resnet_generator", "in_channels": 1, "out_channels": 1, "base": 64, "blocks": 9, "size": 256}
    for task in ("normal-covid", "pneumonia-covid"):
        export_generator(ResnetGenerator(base=64, blocks=9), wd / "translators" / task / "private" / "reverse_generator.safetensors", arch)
    return "random-init ResnetGenerator (9 blocks, base 64, 256 px) per task"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--total", type=int, default=21295)
    ap.add_argument("--keep", default=None, help="work folder to use and keep (default: a temporary one)")
    ap.add_argument("--no-audit", action="store_true", help="leave out the audit phase")
    ap.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--wd", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default="bench/out/release.json")
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, Path(args.wd), args.total)))
        return
    wd = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-release-"))
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TQDM_DISABLE="1",
               HF_HOME=str(wd / "hf-cache"), PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent)]))  # this checkout's cxrsynth
    rows = []
    try:
        names = ("prepare", "generate", "package", "verify", "load", "stream") + (() if args.no_audit else ("audit",))
        for name in names:
            res = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--phase", name, "--wd", str(wd),
                                  "--total", str(args.total)], capture_output=True, text=True, env=env)
            if res.returncode != 0:
                sys.exit(f"phase {name} failed:\n{res.stderr[-3000:]}")
            row = json.loads(res.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(json.dumps(row), flush=True)
        summary = {"stand_in": f"1,000 NIH sample images x {COPIES} (hard links), 90% of patients as sources and 10% "
                               "held out; identity translator; random-init reverse generators for the audit",
                   "total": args.total, "phases": rows}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(wd, ignore_errors=True)


if __name__ == "__main__":
    main()
