"""One figure that puts two translators side by side on the same held-out sources (issue 19, part 4).

    python bench/compare_grid.py --workdir runs/recipe-rse --out bench/results/recipe-rse/paper_vs_refined.png \\
        normal-covid paper=runs/recipe-rse/heldout/paper-committed-700 \\
                     refined=runs/recipe-rse/snapshots/normal-covid/step-00000700/heldout \\
        pneumonia-covid paper=runs/recipe-rse/heldout/paper-committed-700-pneumonia \\
                        refined=runs/recipe-rse/snapshots/pneumonia-covid/step-00000700/heldout

Each task gets a block of rows: its first ``-n`` held-out sources, then each named translator's
translation of those same sources (the folders ``bench/score_checkpoints.py`` wrote, with their
``heldout.json``), then ``-n`` real held-out COVID-19 images of the work folder for reference. The
rows are labelled on the left. Nothing here is measured; the numbers are in the fidelity tables.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LABEL_W = 150


def _row(label: str, images: list[np.ndarray]) -> np.ndarray:
    strip = np.concatenate(images, 1)
    pad = Image.new("L", (LABEL_W, strip.shape[0]), 255)
    ImageDraw.Draw(pad).multiline_text((6, strip.shape[0] // 2 - 14), label.replace(" | ", "\n"), fill=0)
    return np.concatenate([np.asarray(pad), strip], 1)


def task_block(workdir: Path, task: str, folders: dict[str, Path], n: int) -> np.ndarray:
    """Sources, each translator's translations of them, and real held-out COVID-19 images."""
    from cxrsynth.artifacts import SplitData
    from cxrsynth.data.images import load_canonical
    from cxrsynth.stages.audit.fidelity import real_sets

    lists = {name: json.loads((f / "heldout.json").read_text())["images"] for name, f in folders.items()}
    first = next(iter(lists.values()))[:n]
    ids = [r["record_id"] for r in first]
    for name, rows in lists.items():  # the same sources in the same order, or the figure would lie
        if [r["record_id"] for r in rows[:n]] != ids:
            raise SystemExit(f"{folders[name]}: its first {n} held-out sources differ from the others'")
    data = SplitData.read(workdir)
    size = np.asarray(Image.open(next(iter(folders.values())) / first[0]["file"])).shape[0]
    records, _, _, held, _ = real_sets(data, size)
    rows = [_row(f"{task} | source", [load_canonical(records[i].path, size) for i in ids])]
    for name, f in folders.items():
        rows.append(_row(f"{task} | {name}", [np.asarray(Image.open(f / r["file"]).convert("L"))
                                              for r in lists[name][:n]]))
    rows.append(_row("real COVID-19 | held out", list(held[:n])))
    return np.concatenate(rows, 0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("-n", type=int, default=6)
    ap.add_argument("spec", nargs="+", help="TASK NAME=FOLDER [NAME=FOLDER ...] [TASK ...]")
    a = ap.parse_args(argv)
    blocks, task, folders = [], None, {}
    for item in a.spec + [""]:
        if "=" in item:
            name, folder = item.split("=", 1)
            folders[name] = Path(folder)
            continue
        if task is not None:
            blocks.append(task_block(a.workdir, task, folders, a.n))
        task, folders = item, {}
    gap = np.full((8, blocks[0].shape[1]), 255, np.uint8)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([x for b in blocks for x in (b, gap)][:-1], 0)).save(a.out)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
