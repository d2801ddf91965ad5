"""Ingest speed on the 1,000 NIH sample images: images per second, one process and with workers.

    .venv/bin/python bench/bench_ingest.py [--repeats 3] [--workers 0 2]

Decoding (PNG -> grayscale 256x256, sha256 of file and pixels, dhash, thumbnail) dominates; the
numbers printed are decode throughput and the whole ingest wall time (best of the repeats).
"""

from __future__ import annotations

import argparse
import json
import os
import time

from cxrsynth.core.config import resolve
from cxrsynth.stages.ingest import IngestConfig, ingest
from cxrsynth.core.paths import sample_data_dir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = ap.parse_args()
    nih = sample_data_dir() / "nih-chestxray14-sample"
    results = []
    for w in args.workers:
        # min_age=None: all 1,000 images, children included
        cfg = resolve(IngestConfig, overrides=[f"workers={w}", "nih.min_age=null"])
        best = None
        for _ in range(args.repeats):
            t = time.perf_counter()
            res = ingest([nih], cfg)
            wall = time.perf_counter() - t
            tim = res.report["timing"]
            row = {"workers": w, "images": tim["decoded"], "decode_images_per_s": tim["images_per_second"],
                   "ingest_wall_s": round(wall, 2), "ingest_images_per_s": round(tim["decoded"] / wall, 1)}
            if best is None or wall < best["ingest_wall_s"]:
                best = row
        results.append(best)
        print(json.dumps(best))
    print(json.dumps({"cpu_count": os.cpu_count(), "results": results}))


if __name__ == "__main__":
    main()
