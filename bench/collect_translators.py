"""Copy the small artefacts of finished translator runs into ``bench/results/`` (committable).

    .venv/bin/python bench/collect_translators.py WORKDIR OUT

For each ``WORKDIR/translators/<task>/``: ``config.json``, ``train_report.json``, ``losses.csv``, the model
card, every sample grid, a loss-curve figure, and, for a run that finished its schedule, the published
generator (G_A) as an fp16 safetensors file with its description (architecture, sha256 of the fp16 file and
of the fp32 original), and ``split.json``: the assignment sha256 of the work folder's split. A run stopped early (``--max-steps``) is reported but its generator is not a release
artefact, so it is not copied. Never checkpoints, optimizer state or the private reverse generator.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

from cxrsynth.core.paths import sha256_file


def fp16_generator(src: Path, dst: Path) -> dict:
    """The generator's weights in fp16 (a few MB), metadata kept and written in a fixed key order."""
    from safetensors import safe_open

    with safe_open(str(src), framework="pt") as fh:
        meta = dict(sorted((fh.metadata() or {}).items()))
    tensors = {k: v.half().contiguous() for k, v in sorted(load_file(str(src)).items())}
    tmp = dst.with_name(f".{dst.name}.tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(dst)
    return {"file": dst.name, "sha256": sha256_file(dst), "fp32_sha256": sha256_file(src),
            "arch": json.loads(meta.get("arch", "{}")), "dtype": "float16"}


def loss_figure(losses_csv: Path, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(losses_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    steps = [int(r["step"]) for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, keys in zip(axes, (("G_A", "G_B"), ("cycle_A", "cycle_B", "idt_A", "idt_B"), ("D_A", "D_B"))):
        for k in keys:
            ax.plot(steps, [float(r[k]) for r in rows], label=k, lw=0.8)
        ax.set_xlabel("update")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def copy_small_artefacts(run: Path, dst: Path, title: str) -> None:
    """Config, train report, losses (and their figure), model card and sample grids of one run folder."""
    (dst / "samples").mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "train_report.json", "losses.csv", "README.md"):
        if (run / name).is_file():
            shutil.copy2(run / name, dst / name)
    for grid in sorted((run / "samples").glob("*.png")):
        shutil.copy2(grid, dst / "samples" / grid.name)
    if (run / "losses.csv").is_file():
        loss_figure(run / "losses.csv", dst / "losses.png", title)


def collect(workdir: Path, out: Path) -> None:
    # the split they were trained on, so that bench/install_translators.py can check a work folder against
    # it without a release made with these very generators
    if (workdir / "splits.json").is_file():
        out.mkdir(parents=True, exist_ok=True)
        sha = json.loads((workdir / "splits.json").read_text())["assignment_sha256"]
        (out / "split.json").write_text(json.dumps({"split_assignment_sha256": sha}, indent=2) + "\n")
    for run in sorted((workdir / "translators").iterdir()):
        if not (run / "generator.safetensors").is_file():
            continue
        dst = out / run.name
        copy_small_artefacts(run, dst, f"{run.name}: losses per update")
        report = json.loads((run / "train_report.json").read_text()) if (run / "train_report.json").is_file() else {}
        if not report.get("finished"):
            print(f"{run.name}: {dst} (stopped at step {report.get('steps', '?')} of "
                  f"{report.get('total_steps', '?')}; generator not copied)")
            continue
        desc = fp16_generator(run / "generator.safetensors", dst / "generator-fp16.safetensors")
        (dst / "generator-fp16.json").write_text(json.dumps(desc, indent=2) + "\n")
        print(f"{run.name}: {dst} (generator-fp16 sha256 {desc['sha256']})")


if __name__ == "__main__":
    collect(Path(sys.argv[1]), Path(sys.argv[2]))
