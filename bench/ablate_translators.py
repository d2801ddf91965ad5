"""The translator-recipe ablation of issue 19: the ``paper`` recipe, then each option alone, then all.

    PYTHONPATH=. OMP_NUM_THREADS=1 /work/main/.venv/bin/python bench/ablate_translators.py            # all runs
    ... bench/ablate_translators.py --root /tmp/abl --results /tmp/abl-res --max-steps 2 --only paper  # a check

Why: nothing yet says whether the poor fidelity of the ``paper`` translators comes from the recipe, the
size or the training length; each option of the ``refined`` preset has to earn its place on held-out
fidelity, at equal cost. So every run here has the same work folder (ingest, patient-level split, plan of
180 images per domain, as ``scripts/train_translators.sh``), size (128 px), seed and update budget
(``--budget`` updates: the schedule's epochs are set so that its learning-rate schedule ends there).

Resumable: a second call skips finished runs (``train_report.json`` says finished and the held-out
translations exist) and resumes the others from their last checkpoint. ``--jobs`` runs train side by side,
each with ``--threads`` threads.

For each finished run: the held-out sources of its task (validation and test split records of the source
label, with pixels) translated by its final generator into ``ROOT/<variant>/heldout/`` (PNGs and
``heldout.json`` listing each file's record id and split), for the fidelity measures of issue 19 part 1;
and its small artefacts (config, train report, losses and their figure, sample grids, the card,
``heldout.json``) copied to ``RESULTS/<variant>/``; ``RESULTS/runs.csv`` gets one row per run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

SIZE = 128
BATCH = 16  # the paper preset's; the budget is counted in its updates
ALL_AUG = "color,translation,cutout"

#: name -> (task, preset, extra --set values, what it tests). ``{half}`` / ``{rest}`` / ``{epochs}`` are
#: filled from the budget. Order is run order: the baseline and the full recipe first.
VARIANTS: dict[str, tuple[str, str, list[str], str]] = {
    "paper": ("normal-covid", "paper", ["epochs_constant={epochs}", "epochs_decay=0"],
              "the paper recipe at the ablation's budget (constant learning rate)"),
    # "all": the first guess at `refined` (every option below, with decay); spelled out, since `refined` now
    # names the chosen combination (resize_sn_ema), so that this row keeps meaning what it measured
    "all": ("normal-covid", "paper", ["epochs_constant={half}", "epochs_decay={rest}", f"diff_augment={ALL_AUG}",
                                      "upsample=bilinear", "reflect_pad=true", "spectral_norm=true", "ema_decay=0.999"],
            "every option below together (the first guess at the refined preset)"),
    "diffaug": ("normal-covid", "paper", ["epochs_constant={epochs}", "epochs_decay=0", f"diff_augment={ALL_AUG}"],
                "+ DiffAugment (color, translation, cutout) on every discriminator input"),
    "resize": ("normal-covid", "paper", ["epochs_constant={epochs}", "epochs_decay=0", "upsample=bilinear",
                                         "reflect_pad=true"],
               "+ bilinear resize-convolution upsampling and reflection padding in the generators"),
    "sn": ("normal-covid", "paper", ["epochs_constant={epochs}", "epochs_decay=0", "spectral_norm=true"],
           "+ spectral normalisation of the discriminators"),
    "decay": ("normal-covid", "paper", ["epochs_constant={half}", "epochs_decay={rest}"],
              "+ linear decay of the learning rate over the second half of the budget"),
    "ema": ("normal-covid", "paper", ["epochs_constant={epochs}", "epochs_decay=0", "ema_decay=0.999"],
            "+ exported generator = EMA of the weights (decay 0.999 after a warm-up)"),
    "all-pneumonia": ("pneumonia-covid", "paper", ["epochs_constant={half}", "epochs_decay={rest}",
                                                 f"diff_augment={ALL_AUG}", "upsample=bilinear", "reflect_pad=true",
                                                 "spectral_norm=true", "ema_decay=0.999"],
                      "every option together on the pneumonia-covid task"),
    "mask_markers": ("normal-covid", "paper", ["epochs_constant={epochs}", "epochs_decay=0", "mask_markers=true"],
                     "+ burnt-in letters, arrows and labels filled in the COVID-19 training images (markers.py)"),
    # The first combination, from the one-option rows: resize-convolution (no banding in the grids) with the
    # two options that lowered encoder KID and spectral distance (sn, ema); without diffaug and decay, which
    # were worse than `paper` at this budget.
    "resize_sn_ema": ("normal-covid", "paper", ["epochs_constant={epochs}", "epochs_decay=0", "upsample=bilinear",
                                                "reflect_pad=true", "spectral_norm=true", "ema_decay=0.999"],
                      "+ resize-convolution and reflection padding, spectral norm in D, EMA generator (no diffaug, no decay)"),
}

_print_lock = threading.Lock()
_translate_lock = threading.Lock()


def say(msg: str) -> None:
    with _print_lock:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())}Z {msg}", flush=True)


def cli(root: Path, *args: str, env: dict | None = None, log: Path | None = None) -> None:
    cmd = [sys.executable, "-m", "cxrsynth.cli", "-w", str(root), *args]
    if log is None:
        subprocess.run(cmd, check=True, env=env)
        return
    with open(log, "a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        subprocess.run(cmd, check=True, env=env, stdout=fh, stderr=subprocess.STDOUT)


def prepare(root: Path) -> None:
    """The shared work folder, as ``scripts/train_translators.sh`` makes it (each stage once)."""
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "records.parquet").is_file():
        cli(root, "ingest", "--workers", "1")
    if not (root / "splits.json").is_file():
        cli(root, "split")
    if not (root / "plan.json").is_file():
        cli(root, "plan", "--per-domain", "180")


def steps_per_epoch(root: Path, task: str) -> int:
    """The keras loop's updates per epoch for this plan (``TrainingSet.steps_per_epoch``)."""
    tt = json.loads((root / "plan.json").read_text())["tasks"][task]["translator_train"]
    return min(len(tt["source"]), len(tt["covid"])) // BATCH - 1


def schedule(root: Path, task: str, budget: int) -> dict[str, int]:
    spe = steps_per_epoch(root, task)
    if budget % spe:
        raise SystemExit(f"Error: --budget {budget} is not a whole number of epochs of {spe} updates ({task})")
    epochs = budget // spe
    return {"epochs": epochs, "half": epochs // 2, "rest": epochs - epochs // 2, "steps_per_epoch": spe}


def finished(run: Path) -> bool:
    rep = run / "train_report.json"
    return rep.is_file() and bool(json.loads(rep.read_text()).get("finished"))


def heldout_records(root: Path, task: str) -> list:
    """Validation and test records of the task's source label with pixels, in (split, record id) order."""
    from cxrsynth.data.records import read_records

    assign = json.loads((root / "splits.json").read_text())["assignments"]
    label = task.split("-")[0]
    recs = [r for r in read_records(root / "records.parquet")
            if r.label == label and r.has_pixels and assign.get(r.record_id) in ("validation", "test")]
    return sorted(recs, key=lambda r: (assign[r.record_id], r.record_id))


def translate_heldout(root: Path, run: Path, task: str) -> Path:
    """``run/heldout/``: every held-out source translated by the run's generator; skipped when done."""
    from cxrsynth.stages.translate.checkpoint import load_generator

    net, info = load_generator(run / "generator.safetensors")
    return translate_into(root, run / "heldout", task, net, info["tensors_sha256"],
                          {"generator": str(run / "generator.safetensors")})


def translate_into(root: Path, out: Path, task: str, net, sha: str, about: dict, size: int = SIZE) -> Path:
    """``out/``: the task's held-out sources (:func:`heldout_records`) translated by ``net`` at ``size``
    (the size it was trained at: a translator run at another scale does something else), with
    ``heldout.json`` naming each file's record id; skipped when ``out`` already holds this ``sha``'s
    translations at this size. Written beside ``out`` under a temporary name, then renamed."""
    import numpy as np
    import torch

    from cxrsynth.stages.generate import translate_batch
    from cxrsynth.data.images import encode_png, load_canonical

    index = out / "heldout.json"
    done = json.loads(index.read_text()) if index.is_file() else {}
    if done.get("tensors_sha256") == sha and done.get("size") == size:
        return out
    assign = json.loads((root / "splits.json").read_text())["assignments"]
    recs = heldout_records(root, task)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    rows = []
    for start in range(0, len(recs), 16):
        chunk = recs[start:start + 16]
        batch = torch.from_numpy(np.stack([load_canonical(r.path, size) for r in chunk])).unsqueeze(1)
        for i, (rec, img) in enumerate(zip(chunk, translate_batch(net, batch, torch.device("cpu"), None, False))):
            name = f"{assign[rec.record_id]}-{start + i:04d}.png"
            (tmp / name).write_bytes(encode_png(img))
            rows.append({"file": name, "record_id": rec.record_id, "split": assign[rec.record_id],
                         "source": rec.source})
    desc = {"task": task, "size": size, **about, "tensors_sha256": sha,
            "translator_id": f"{task}-{sha[:12]}", "count": len(rows), "images": rows}
    (tmp / "heldout.json").write_text(json.dumps(desc, indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def collect(run: Path, dst: Path, title: str) -> None:
    from collect_translators import copy_small_artefacts

    copy_small_artefacts(run, dst, title)
    if (run / "heldout" / "heldout.json").is_file():
        shutil.copy2(run / "heldout" / "heldout.json", dst / "heldout.json")
    if (run / "markers.jsonl").is_file():  # mask_markers: what was filled in each COVID-19 training image
        shutil.copy2(run / "markers.jsonl", dst / "markers.jsonl")


def run_variant(name: str, args: argparse.Namespace) -> dict:
    task, preset, sets, what = VARIANTS[name]
    root, run = args.root, args.root / name
    sched = schedule(root, task, args.budget)
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    if not finished(run) or args.max_steps:  # a finished run is not resumed: that would rewrite its timing
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
                   TQDM_DISABLE="1", HF_HUB_OFFLINE="1")
        sets = [s.format(**sched) for s in sets] + ["channels_last=true", "sample_every=70", "save_every=35",
                                                     "save_every_minutes=10"]
        extra = ["--resume"] if (run / "checkpoints").is_dir() else []
        stop = ["--max-steps", str(args.max_steps)] if args.max_steps else []
        say(f"{name}: training ({task}, preset {preset}, {' '.join(sets)}{' resume' if extra else ''})")
        t0 = time.time()
        cli(root, "train", "--task", task, "--preset", preset, "--size", str(SIZE), "--out", str(run), *stop,
            *[x for s in sets for x in ("--set", s)], *extra, env=env, log=logs / f"{name}.log")
        say(f"{name}: trained in {time.time() - t0:.0f} s")
    rep = json.loads((run / "train_report.json").read_text())
    if rep.get("finished") or args.max_steps:
        with _translate_lock:
            out = translate_heldout(root, run, task)
        say(f"{name}: held-out sources translated into {out}")
    collect(run, args.results / name, f"ablation {name} ({task}): losses per update")
    return {"variant": name, "task": task, "preset": preset, "what": what, "steps": rep["steps"],
            "total_steps": rep["total_steps"], "finished": rep["finished"],
            "median_s_per_update": median_seconds_per_update(run / "losses.csv"),
            "translator_id": rep.get("translator_id")}


def median_seconds_per_update(losses_csv: Path) -> float | None:
    """The median of the loss log's per-window speed, as seconds per update (robust to resumes and pauses)."""
    import statistics

    with open(losses_csv, newline="") as fh:
        ips = [float(r["images_per_s"]) for r in csv.DictReader(fh) if float(r["images_per_s"]) > 0]
    return round(statistics.median(BATCH / v for v in ips), 3) if ips else None


def write_table(results: Path, rows: list[dict]) -> None:
    """``runs.csv``: these rows, and the rows of earlier calls for variants not run this time."""
    results.mkdir(parents=True, exist_ok=True)
    if (results / "runs.csv").is_file():
        with open(results / "runs.csv", newline="") as fh:
            new = {r["variant"] for r in rows}
            rows = [r for r in csv.DictReader(fh) if r["variant"] not in new] + rows
        rows.sort(key=lambda r: list(VARIANTS).index(r["variant"]) if r["variant"] in VARIANTS else len(VARIANTS))
    tmp = results / ".runs.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, results / "runs.csv")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=REPO / "runs" / "ablation", help="shared work folder")
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "ablation")
    ap.add_argument("--budget", type=int, default=210, help="updates per run (a whole number of epochs)")
    ap.add_argument("--jobs", type=int, default=2, help="runs trained side by side")
    ap.add_argument("--threads", type=int, default=1, help="threads per run")
    ap.add_argument("--max-steps", type=int, default=None, help="stop every run here (a quick check of the script)")
    ap.add_argument("--only", default="", help="comma-separated variants (default: all, in order)")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"Error: unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    args.root, args.results = args.root.resolve(), args.results.resolve()
    prepare(args.root)
    args.results.mkdir(parents=True, exist_ok=True)
    plan = {"size": SIZE, "batch_size": BATCH, "budget_updates": args.budget, "seed": 0, "jobs": args.jobs,
            "threads_per_run": args.threads, "max_steps": args.max_steps,
            "schedules": {t: schedule(args.root, t, args.budget) for t in sorted({v[0] for v in VARIANTS.values()})},
            # every variant, not only this call's --only: the file describes the whole ablation
            "variants": {n: {"task": v[0], "preset": v[1], "set": v[2], "what": v[3]} for n, v in VARIANTS.items()}}
    (args.results / "variants.json").write_text(json.dumps(plan, indent=1) + "\n")
    say(f"ablation: {len(names)} runs of {args.budget} updates, {args.jobs} at a time, {args.threads} thread(s) each")
    rows: dict[str, dict] = {}
    failed = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {n: pool.submit(run_variant, n, args) for n in names}
        for n, fut in futures.items():
            try:
                rows[n] = fut.result()
            except Exception as exc:  # one failed run must not stop the others; the log says why
                failed.append(n)
                say(f"{n}: FAILED ({exc.__class__.__name__}: {exc}); see {args.root / 'logs' / (n + '.log')}")
                continue
            write_table(args.results, [rows[k] for k in names if k in rows])
    say(f"ablation: done ({len(rows)} runs{', failed: ' + ', '.join(failed) if failed else ''})")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
