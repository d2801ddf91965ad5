"""Fidelity of the committed `paper` translators (bench/results/paper-translators/*/generator-fp16.safetensors)
on the sample data, without training anything: translate, then score with bench/score_fidelity.py.

Two sets per config, each a folder of PNGs + sources.json (the ablation's held-out format):
- ``release/<config>``: every planned train-split source image with pixels (the sample release's images);
- ``heldout/<config>``: the validation and test source images of patients absent from training;
and ``all`` (both configs together) for each. Generators run in fp32 on one thread at their size
(128 px), output clamped, as ``cxrsynth generate`` does by default (the committed release may have used
bf16 autocast: numbers can differ slightly).

    cxrsynth -w runs/paper ingest --workers 2 && cxrsynth -w runs/paper split && \\
        cxrsynth -w runs/paper plan --per-domain 180      # as scripts/train_translators.sh paper does
    python bench/paper_fidelity.py runs/paper runs/paper-fid
    python bench/score_fidelity.py --workdir runs/paper --out runs/paper-fid/release.jsonl runs/paper-fid/release/*
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cxrsynth.stages.generate import translate_batch
from cxrsynth.data.images import load_canonical
from cxrsynth.core.layout import WorkLayout
from cxrsynth.core.paths import read_json
from cxrsynth.data.records import read_records
from cxrsynth.stages.translate.checkpoint import load_generator

GENERATORS = Path(__file__).resolve().parent / "results" / "paper-translators"


def write_folder(folder: Path, images: np.ndarray, ids: list[str], prefix: str = "") -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    names = {}
    for k, (i, im) in enumerate(zip(ids, images)):
        Image.fromarray(im).save(folder / f"{prefix}{k:05d}.png")
        names[f"{prefix}{k:05d}.png"] = i
    return names


def main(wd: Path, out: Path) -> None:
    torch.set_num_threads(1)
    layout = WorkLayout(wd)
    recs = {r.record_id: r for r in read_records(layout.records) if r.has_pixels}
    assign = read_json(layout.splits)["assignments"]
    patient = lambda r: r.patient_group or f"{r.source}:{r.patient_id}"
    train_pat = {patient(r) for i, r in recs.items() if assign.get(i) == "train"}
    merged = {"release": {}, "heldout": {}}
    for task, t in read_json(layout.plan)["tasks"].items():
        net, info = load_generator(GENERATORS / task / "generator-fp16.safetensors")
        net = net.float().eval()
        size = int(info["arch"].get("size", 128))
        held = sorted(i for i, r in recs.items() if r.label == t["source_label"] and assign.get(i) not in (None, "train")
                      and patient(r) not in train_pat)
        for kind, ids in (("release", [i for i in t["translate"]["record_ids"] if i in recs]), ("heldout", held)):
            x = np.stack([load_canonical(recs[i].path, size) for i in ids])
            y = np.concatenate([translate_batch(net, torch.from_numpy(x[k:k + 16]).unsqueeze(1), torch.device("cpu"), None, False)
                                for k in range(0, len(x), 16)])
            names = write_folder(out / kind / t["config"], y, ids)
            (out / kind / t["config"] / "sources.json").write_text(json.dumps(names))
            merged[kind].update(write_folder(out / kind / "all", y, ids, prefix=f"{t['config']}-"))
            print(f"{task} {kind}: {len(ids)} images", flush=True)
    for kind, names in merged.items():
        (out / kind / "all" / "sources.json").write_text(json.dumps(names))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
