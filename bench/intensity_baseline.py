"""An intensity-only "translator" as a diagnostic baseline for the fidelity measures (issue 19).

    python bench/intensity_baseline.py --workdir runs/recipe-rse --task normal-covid \\
        --out bench/results/recipe-rse/fidelity.jsonl --section bench/results/recipe-rse/sections

Each held-out source image is histogram-matched to the pooled pixel histogram of the work folder's real
COVID-19 training images (a per-image rank -> reference-quantile map; geometry untouched), written as a
folder of held-out "translations" like ``bench/score_checkpoints.py``'s, and scored by
``bench/score_fidelity.py`` as run ``histmatch`` (``histmatch-pneumonia`` for pneumonia-covid).

Why: a CycleGAN translator keeps its source's geometry (the cycle loss asks for it). If a probe still tells
histogram-matched sources from real COVID-19 about as well as it tells the untranslated ones, what it sees
is geometry and framing (collimation, crops, markers of the publication figures), which no
geometry-preserving translator can change; if it drops, intensities were the signal.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


class HistogramMatch(torch.nn.Module):
    """Maps each image's pixel ranks onto the quantiles of a reference histogram (inputs in [-1, 1])."""

    def __init__(self, reference: np.ndarray, levels: int = 1024):
        super().__init__()
        q = np.quantile(reference.astype(np.float64) / 127.5 - 1, np.linspace(0, 1, levels))
        self.register_buffer("quantiles", torch.tensor(q, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        ranks = flat.argsort(1).argsort(1).float() / max(flat.shape[1] - 1, 1)  # 0..1 per image
        pos = ranks * (len(self.quantiles) - 1)
        lo = pos.floor().long().clamp(max=len(self.quantiles) - 1)
        hi = (lo + 1).clamp(max=len(self.quantiles) - 1)
        w = pos - lo.float()
        return ((1 - w) * self.quantiles[lo] + w * self.quantiles[hi]).view_as(x)


def main(argv: list[str] | None = None) -> int:
    sys.path[:0] = [str(REPO / "bench"), str(REPO)]  # run as a script: its bench neighbours and the package
    import score_fidelity
    from ablate_translators import SIZE, translate_into

    from cxrsynth.artifacts import SplitData
    from cxrsynth.stages.audit.fidelity import real_sets

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", required=True, type=Path)
    ap.add_argument("--task", required=True, choices=["normal-covid", "pneumonia-covid"])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--section", type=Path)
    a = ap.parse_args(argv)
    _, train_covid, _, _, _ = real_sets(SplitData.read(a.workdir), SIZE)
    net = HistogramMatch(train_covid).eval()
    name = "histmatch" if a.task == "normal-covid" else "histmatch-pneumonia"
    out = translate_into(a.workdir, a.workdir / "heldout" / name, a.task, net, f"histmatch-{len(train_covid)}",
                         {"weights": "histogram matching to the real COVID-19 training images"})
    args = [str(out), "--workdir", str(a.workdir), "--out", str(a.out), "--name", name]
    return score_fidelity.main(args + (["--section", str(a.section)] if a.section else []))


if __name__ == "__main__":
    sys.exit(main())
