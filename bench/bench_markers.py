"""Burnt-in markers on the sample COVID-19 images: how many carry them, how much is filled, how fast.

    PYTHONPATH=. /work/main/.venv/bin/python bench/bench_markers.py [--out bench/results/markers] [--size 128]

Reads every COVID-19 record with pixels that ``ingest`` makes of the sample collection (what a plan draws
its translator training images from) and cleans each as ``train ... mask_markers=true`` does
(``translate.markers.load_clean``: found and filled at 512 px, then resized to ``--size``), once per fill
method; and, as a reference, the first ``--nih`` 'No Finding' images of the NIH sample (detection only).
Writes ``OUT/markers.json`` (totals, seconds per image, one row per image) and
``OUT/before_after.png``: six images drawn with a fixed seed, as loaded (top), the filled mask in red
(middle) and cleaned (bottom).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from cxrsynth.data.images import load_canonical
from cxrsynth.stages.ingest import ingest
from cxrsynth.core.paths import sample_data_dir, write_json
from cxrsynth.data.records import read_records
from cxrsynth.stages.translate.markers import MarkerParams, clean, load_clean, summary

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_paper_preset import processor_name  # noqa: E402


def _grid(records, tile: int) -> Image.Image:
    rows = []
    for rec in records:
        work = load_canonical(rec.path, 512)
        out, mask, _ = clean(work)
        small = lambda a: np.asarray(Image.fromarray(a).resize((tile, tile), Image.Resampling.BILINEAR))  # noqa: E731
        over = np.stack([work] * 3, -1)
        over[mask] = (255, 0, 0)
        rows.append((np.stack([small(work)] * 3, -1), small(over), np.stack([small(out)] * 3, -1)))
    return Image.fromarray(np.concatenate([np.concatenate([r[i] for r in rows], 1) for i in range(3)], 0))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("bench/results/markers"))
    ap.add_argument("--size", type=int, default=128, help="the training size the cleaned arrays are resized to")
    ap.add_argument("--tile", type=int, default=200)
    ap.add_argument("--nih", type=int, default=100, help="NIH normals read as the reference")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ingest([sample_data_dir() / "covid-chestxray-dataset"], out_dir=tmp)
        recs = [r for r in read_records(Path(tmp) / "records.parquet") if r.label == "covid" and r.has_pixels]
    result = {"cpu": processor_name(), "images": len(recs), "size": args.size, "fills": {}}
    for fill in ("biharmonic", "median"):
        params = MarkerParams(fill=fill)
        found, times = [], []
        for rec in recs:
            t = time.perf_counter()
            _, row = load_clean(rec.path, args.size, rec.record_id, params)
            times.append(time.perf_counter() - t)
            found.append(row)
        t = time.perf_counter()
        for rec in recs:
            load_canonical(rec.path, args.size)
        plain = (time.perf_counter() - t) / len(recs)
        frac = [r.mask_fraction for r in found if r.components]
        result["fills"][fill] = dict(
            summary(found, params), seconds_per_image=round(statistics.mean(times), 4),
            plain_load_seconds_per_image=round(plain, 4),
            median_mask_fraction_with_markers=round(statistics.median(frac), 6) if frac else 0.0,
            max_mask_fraction=round(max(r.mask_fraction for r in found), 6),
            over_half_percent=int(sum(r.mask_fraction > 0.005 for r in found)),
            per_image=[asdict(r) for r in found])
        print(fill, {k: v for k, v in result["fills"][fill].items() if k not in ("per_image", "params")}, flush=True)
    # the reference: NIH 'No Finding' images (not publication figures, though some carry scanner labels)
    nih = sample_data_dir() / "nih-chestxray14-sample"
    with open(nih / "Data_Entry_2017.csv") as fh:
        names = [r["Image Index"] for r in csv.DictReader(fh) if r["Finding Labels"] == "No Finding"][:args.nih]
    ref = [clean(load_canonical(nih / "images" / n, 512))[1:] for n in names]
    result["nih_normals"] = {"images": len(ref), "with_markers": int(sum(k > 0 for _, k in ref)),
                             "over_half_percent": int(sum(m.mean() > 0.005 for m, _ in ref)),
                             "mean_mask_fraction": round(float(np.mean([m.mean() for m, _ in ref])), 6)}
    print("nih", result["nih_normals"], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "markers.json", result)
    pick = np.random.default_rng(0).choice(len(recs), 6, replace=False)
    # 63 greys and one red keep the figure under 400 KB (a median-cut palette drops the rare red)
    pal = Image.new("P", (1, 1))
    pal.putpalette([v for g in np.linspace(0, 255, 63).round().astype(int) for v in (g, g, g)] + [255, 0, 0])
    grid = _grid([recs[i] for i in sorted(pick)], args.tile)
    grid.quantize(palette=pal, dither=Image.Dither.NONE).save(args.out / "before_after.png", optimize=True)
    print(json.dumps({k: v for k, v in result.items() if k != "fills"}))


if __name__ == "__main__":
    main()
