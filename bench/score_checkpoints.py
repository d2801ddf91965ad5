"""Fidelity of a translator run along its training: the generator of each given checkpoint (its EMA
average when the run keeps one, as the exported file would be) translates the task's held-out sources,
and ``score_fidelity.py`` scores them against the run's own work folder. One JSON row per checkpoint,
named ``<name>@<step>``, appended to ``--out``. An exported generator file (``generator.safetensors``,
``generator-fp16.safetensors``) is accepted in place of a checkpoint folder, e.g. to score a finished run
of another recipe on this run's held-out sources.

Why: the ablation (``ablate_translators.py``) scores every recipe at one budget, 30% of the paper's
schedule. Whether a recipe keeps improving with length is a question about one run at several steps,
on one split. A training run keeps only its two newest checkpoints, so copy the ones to score aside
while it runs (``cp -r RUN/checkpoints/step-N SNAPSHOTS/``).

    python bench/score_checkpoints.py --workdir runs/recipe-rse --task normal-covid --name recipe-rse \\
        --out bench/results/recipe-rse/fidelity.jsonl --section bench/results/recipe-rse/sections \\
        runs/recipe-rse/snapshots/normal-covid/step-*

With ``--section``, also ``NAME@STEP-heldout.png``: the first 8 held-out sources over their translations.
Held-out translations go to ``<checkpoint>/heldout/`` (a generator file's to ``WORKDIR/heldout/NAME/``),
skipped when already there for these weights.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))


def checkpoint_generator(run: Path, ckpt: Path):
    """The forward generator (G_A) of checkpoint folder ``ckpt`` of translator folder ``run``, built
    from the run's ``config.json``; its EMA weights when the checkpoint has them. Returns (net,
    tensors sha256 of the weights used, which weights, the size it was trained at)."""
    from safetensors.torch import load_file

    from cxrsynth.stages.translate.checkpoint import tensors_sha256
    from cxrsynth.stages.translate.networks import build_generator
    from cxrsynth.stages.translate.train import TrainConfig
    from cxrsynth.core.config import resolve

    cfg = resolve(TrainConfig, run / "config.json")
    tensors = load_file(str(ckpt / "tensors.safetensors"))
    which = "EMA_G_A" if any(k.startswith("net.EMA_G_A.") for k in tensors) else "G_A"
    sd = {k.removeprefix(f"net.{which}."): v for k, v in tensors.items() if k.startswith(f"net.{which}.")}
    net = build_generator(cfg.arch())
    net.load_state_dict(sd)
    return net.eval(), tensors_sha256(sd), which, cfg.size


def heldout_grid(workdir: Path, folder: Path, path: Path, n: int = 8) -> None:
    """The first ``n`` held-out sources (top row) over their translations (bottom row), as one PNG."""
    import numpy as np
    from PIL import Image

    from cxrsynth.data.images import load_canonical
    from cxrsynth.data.records import read_records

    rows = json.loads((folder / "heldout.json").read_text())["images"][:n]
    by_id = {r.record_id: r for r in read_records(workdir / "records.parquet")}
    syn = [np.array(Image.open(folder / r["file"]).convert("L")) for r in rows]
    src = [load_canonical(by_id[r["record_id"]].path, syn[0].shape[0]) for r in rows]
    Image.fromarray(np.concatenate([np.concatenate(src, 1), np.concatenate(syn, 1)], 0)).save(path)


def main(argv: list[str] | None = None) -> int:
    import score_fidelity
    from ablate_translators import translate_into

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint folders (step-NNNNNNNN) or generator files")
    ap.add_argument("--workdir", required=True, type=Path, help="the work folder the run was trained in")
    ap.add_argument("--task", required=True, choices=["normal-covid", "pneumonia-covid"])
    ap.add_argument("--run", type=Path, help="the translator folder (default WORKDIR/translators/TASK)")
    ap.add_argument("--name", required=True, help="rows are named NAME@STEP")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--section", type=Path)
    ap.add_argument("--external", action="append", default=[], metavar="NAME=DIR",
                    help="passed to score_fidelity.py: real COVID-19 of another collection")
    a = ap.parse_args(argv)
    run = a.run or a.workdir / "translators" / a.task
    rc = 0
    for ckpt in sorted(a.checkpoints):
        if ckpt.is_file():  # an exported generator: its arch travels in the file, its step in its
            from cxrsynth.stages.translate.checkpoint import load_generator  # description, when that says

            net, info = load_generator(ckpt)
            step, sha, which = info.get("step"), info["tensors_sha256"], "exported"
            size = info["arch"].get("size") or 128  # generators written before the arch named it: 128 px"
            out = a.workdir / "heldout" / a.name  # never beside a committed file
        else:
            step = json.loads((ckpt / "state.json").read_text())["step"]
            net, sha, which, size = checkpoint_generator(run, ckpt)
            out = ckpt / "heldout"
        out = translate_into(a.workdir, out, a.task, net, sha, {"checkpoint": str(ckpt), "step": step, "weights": which}, size)
        name = a.name if step is None else f"{a.name}@{step}"
        print(f"{name}: {which} weights, held-out translations in {out}", flush=True)
        args = [str(out), "--workdir", str(a.workdir), "--out", str(a.out), "--name", name]
        args += [x for e in a.external for x in ("--external", e)]
        rc |= score_fidelity.main(args + (["--section", str(a.section)] if a.section else []))
        if a.section:
            heldout_grid(a.workdir, out, a.section / f"{name}-heldout.png")
    return rc


if __name__ == "__main__":
    sys.exit(main())
