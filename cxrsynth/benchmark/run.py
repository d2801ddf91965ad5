"""The whole benchmark: every task x arm x seed, resumable, then results, tables, figures and report.

Files in ``out_dir``: ``config.json``; ``runs/<task>/<arm>/seed-<k>/{result.json, model.safetensors}``
(a finished run is kept and skipped on a rerun); ``results.json`` (validated against
``manifests/benchmark_results.schema.json``); ``tables.md`` and ``tables.csv``; ``figures/*.png``;
``report.html`` (self-contained: figures embedded, no network). With ``--translator`` instead of a
release, the synthetic arms are generated first into ``synthetic/`` (cached) by the generation stage.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from .. import __version__
from ..config import at_least, to_dict
from ..device import pick_device
from ..errors import ConfigError
from ..paths import read_json, write_json
from ..schemas import validate
from ..splits import TASKS
from . import metrics as M
from .arms import ARMS, Cached, EvalDataset, concrete_arm, eval_items, train_set
from .classifiers import build
from .fit import FitConfig, fit, predict, score


@dataclass(frozen=True)
class BenchmarkConfig:
    model: str = "vgg16"
    init: str = "imagenet"  # imagenet (local torch cache only) | random | PATH to a checkpoint
    protocol: Literal["rigorous", "paper"] = "rigorous"
    seeds: int | None = None  # default: 5 for rigorous, 1 for paper
    tasks: tuple[str, ...] = ("normal-covid", "pneumonia-covid")
    arms: tuple[str, ...] = ARMS
    image_size: int = 256
    limit: int | None = None  # at most N images per class (and per synthetic config) in each split: quick looks
    bootstrap: int = 1000
    device: str = "auto"
    fit: FitConfig = field(default_factory=FitConfig)

    def __post_init__(self):
        bad = set(self.tasks) - set(TASKS)
        if bad:
            raise ConfigError("unknown task", sorted(bad), f"use {sorted(TASKS)}")
        bad = set(self.arms) - set(ARMS)
        if bad:
            raise ConfigError("unknown arm", sorted(bad), f"use {', '.join(ARMS)}")
        # 0 or a negative number would silently mean something else (limit 0: no limit).
        at_least("image_size", self.image_size, 16)
        if self.seeds is not None:
            at_least("seeds", self.seeds, 1, "leave it out for the protocol's default")
        if self.limit is not None:
            at_least("limit", self.limit, 1, "leave it out to use every image")
        at_least("bootstrap", self.bootstrap, 0)  # 0: no confidence intervals

    @property
    def n_seeds(self) -> int:
        return self.seeds if self.seeds is not None else (5 if self.protocol == "rigorous" else 1)


def _save_model(model, path: Path, arch: str) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp), metadata={"arch": arch})
    tmp.replace(path)


def synthetic_from_translators(workdir: Path, out_dir: Path, translators: dict[str, str]) -> Path:
    """Generate both synthetic configs with the given translators (cached) and package them as a release."""
    from ..generate import GenerateConfig, generate
    from ..release.package import ReleaseConfig, build

    syn = out_dir / "synthetic"
    work = syn / "work"
    work.mkdir(parents=True, exist_ok=True)
    for name in ("records.parquet", "splits.json", "plan.json"):
        if not (work / name).is_file():
            shutil.copy(workdir / name, work / name)
    configs = tuple(c for c, t in (("g_nc", "normal-covid"), ("g_pc", "pneumonia-covid")) if t in translators)
    if set(configs) != {"g_nc", "g_pc"}:
        raise ConfigError("give a translator for both tasks", sorted(translators), "--translator normal-covid=PATH --translator pneumonia-covid=PATH")
    generate(work, GenerateConfig(configs=configs), translators)
    release = syn / "covid-cxr-synth"
    if not (release / "manifest.json").is_file():
        build(work, release, syn / "covid-cxr-synth.private", ReleaseConfig())
    return release


def run_one(workdir: Path, run_dir: Path, task: str, arm: str, seed: int, cfg: BenchmarkConfig, release, device) -> dict:
    if (run_dir / "result.json").is_file():
        return read_json(run_dir / "result.json")
    run_dir.mkdir(parents=True, exist_ok=True)
    train = train_set(workdir, task, arm, release, cfg.image_size, cfg.limit)
    val_items = eval_items(workdir, task, "validation", cfg.limit)
    test_items = eval_items(workdir, task, "test", cfg.limit)
    if cfg.protocol == "rigorous" and len({i.label for i in val_items}) < 2:
        raise ConfigError("the rigorous protocol needs a validation split with both classes", task,
                          "split with the rigorous method, or use --protocol paper")
    if len({i.label for i in test_items}) < 2:
        raise ConfigError("the test split lacks a class for this task", task)
    test_ds = Cached(EvalDataset(test_items, cfg.image_size))
    val_ds = Cached(EvalDataset(val_items, cfg.image_size))
    monitor = test_ds if cfg.protocol == "paper" else val_ds
    torch.manual_seed(seed)
    model = build(cfg.model, cfg.init)
    hist = fit(model, Cached(train), monitor, cfg.fit, seed, device)
    test = predict(model, test_ds, device)
    if cfg.protocol == "rigorous":
        val = predict(model, val_ds, device)
        threshold, source = M.youden_threshold(val["labels"], val["scores"]), "validation (Youden's J)"
        val_metrics = score(val["labels"], val["scores"], [i.patient for i in val_items], threshold, 0, seed)
    else:
        threshold, source, val_metrics = 0.5, "fixed 0.5 (argmax, as the paper)", None
    pos = sum(train.labels)
    res = {
        "task": task, "arm": arm, "concrete_arm": concrete_arm(task, arm), "seed": seed, "protocol": cfg.protocol,
        "test_used_for_selection": cfg.protocol == "paper", "model": cfg.model, "init": str(cfg.init),
        "train": {"n": len(train), "negatives": len(train) - pos, "positives": pos,
                  "positives_synthetic": train.origins.count("synthetic"), "skew": train.skew},
        "fit": {k: v for k, v in hist.items() if k != "history"}, "history": hist["history"],
        "threshold": threshold, "threshold_source": source, "validation": val_metrics,
        "test": score(test["labels"], test["scores"], [i.patient for i in test_items], threshold, cfg.bootstrap, seed),
        "test_scores": [round(float(s), 6) for s in test["scores"]], "test_labels": [int(v) for v in test["labels"]],
        "test_patients": [i.patient for i in test_items], "test_record_ids": [i.record_id for i in test_items],
    }
    _save_model(model, run_dir / "model.safetensors", cfg.model)
    write_json(run_dir / "result.json", res)
    return res


PER_IMAGE = ("history", "test_scores", "test_labels", "test_patients", "test_record_ids")


def _public_run(r: dict) -> dict:
    """A run as results.json keeps it: without per-image lists (those stay in runs/*/result.json)."""
    return {k: v for k, v in r.items() if k not in PER_IMAGE}


def aggregate(results: list[dict], bootstrap: int) -> dict:
    """Mean and spread over seeds per task and arm; AUROC difference of each arm against ``real``."""
    out: dict = {}
    for task in sorted({r["task"] for r in results}):
        out[task] = {}
        by_arm: dict = {}
        for r in results:
            if r["task"] == task:
                by_arm.setdefault(r["arm"], []).append(r)
        for arm, runs in by_arm.items():
            keys = ("sensitivity", "false_negatives", "specificity", "precision", "f1", "auroc", "auprc")
            out[task][arm] = {"concrete_arm": runs[0]["concrete_arm"], "seeds": len(runs),
                              "skew": (runs[0]["train"] or {}).get("skew"),
                              **{k: M.summarise_seeds([r["test"][k] for r in runs]) for k in keys}}
        if "real" in by_arm:
            ref = by_arm["real"]
            y = np.asarray(ref[0]["test_labels"])
            pats = ref[0]["test_patients"]
            mean_ref = np.mean([r["test_scores"] for r in ref], axis=0)
            for arm, runs in by_arm.items():
                if arm == "real":
                    continue
                mean_arm = np.mean([r["test_scores"] for r in runs], axis=0)
                out[task][arm]["auroc_vs_real"] = M.bootstrap_difference(y, mean_ref, mean_arm, pats, bootstrap)
    return out


def run_benchmark(workdir: str | Path, out_dir: str | Path, cfg: BenchmarkConfig = BenchmarkConfig(),
                  release: str | None = None, translators: dict[str, str] | None = None, progress: bool = False) -> dict:
    from tqdm import tqdm

    from .report import write_outputs

    workdir, out_dir = Path(workdir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "config.json", to_dict(cfg) | {"release": release, "translators": translators})
    needs_synth = any(a != "real" for a in cfg.arms)
    if translators:
        release = str(synthetic_from_translators(workdir, out_dir, translators))
    if needs_synth and not release:
        raise ConfigError("the synthetic arms need a release or translators", "--release / --translator",
                          "or run only --arms real")
    device = pick_device(cfg.device)
    jobs = [(t, a, s) for t in cfg.tasks for a in cfg.arms for s in range(cfg.n_seeds)]
    results = []
    for task, arm, seed in tqdm(jobs, desc="benchmark", unit="run", disable=not progress):
        results.append(run_one(workdir, out_dir / "runs" / task / arm / f"seed-{seed}", task, arm, seed, cfg, release, device))
    summary = {
        "kind": "cxrsynth.benchmark_results", "code_version": __version__, "config": to_dict(cfg),
        "protocol": cfg.protocol, "test_used_for_selection": cfg.protocol == "paper",
        "warning": ("PAPER PROTOCOL: model selection, learning-rate schedule and early stopping watched the TEST set, "
                    "as the original code did; these numbers are optimistic and not a valid estimate.")
        if cfg.protocol == "paper" else None,
        "release": release, "eval_only": False,
        "summary": aggregate(results, cfg.bootstrap),
        "runs": [_public_run(r) for r in results],
    }
    validate(summary, "benchmark_results")
    write_json(out_dir / "results.json", summary)
    write_outputs(out_dir, summary, results, workdir, cfg)
    return summary


def evaluate_checkpoint(workdir: str | Path, out_dir: str | Path, checkpoint: str, task: str,
                        cfg: BenchmarkConfig = BenchmarkConfig(), threshold: float = 0.5) -> dict:
    """``--eval-only``: score a trained classifier on the held-out test split, no training."""
    from .report import write_outputs

    workdir, out_dir = Path(workdir), Path(out_dir)
    device = pick_device(cfg.device)
    model = build(cfg.model, checkpoint).to(device)
    items = eval_items(workdir, task, "test", cfg.limit)
    test = predict(model, Cached(EvalDataset(items, cfg.image_size)), device)
    res = {"task": task, "arm": "eval-only", "concrete_arm": "eval-only", "seed": 0, "protocol": cfg.protocol,
           "test_used_for_selection": False, "model": cfg.model, "init": checkpoint,
           "train": None, "fit": None, "threshold": threshold, "threshold_source": "given", "validation": None,
           "test": score(test["labels"], test["scores"], [i.patient for i in items], threshold, cfg.bootstrap, 0),
           "test_scores": [round(float(s), 6) for s in test["scores"]], "test_labels": [int(v) for v in test["labels"]],
           "test_patients": [i.patient for i in items], "test_record_ids": [i.record_id for i in items]}
    summary = {"kind": "cxrsynth.benchmark_results", "code_version": __version__, "config": to_dict(cfg),
               "protocol": cfg.protocol, "test_used_for_selection": False, "warning": None, "release": None,
               "eval_only": True, "summary": aggregate([res], cfg.bootstrap),
               "runs": [_public_run(res)]}
    validate(summary, "benchmark_results")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "results.json", summary)
    write_outputs(out_dir, summary, [res], workdir, cfg, models_from=checkpoint)
    return summary


