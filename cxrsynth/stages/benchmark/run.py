"""The whole benchmark: every task x arm x seed, resumable, then results, tables, figures and report.

The stage is :func:`benchmark` (records, split, plan and release in, a
:class:`~cxrsynth.artifacts.BenchmarkResult` stamped with the release's ``data_sha256`` out); it opens
no work folder: :func:`benchmark_in` (``cxrsynth.pipeline.benchmark_in``) reads one for it, and
:func:`run_benchmark` keeps the older ``(workdir, out_dir, cfg, ...) -> dict`` call on top of it.

Files in ``out_dir``: ``config.json``; ``runs/<task>/<arm>/seed-<k>/{result.json, model.safetensors}``
(a finished run is kept and skipped on a rerun; a control set it has not scored yet is scored with its
saved model); ``results.json`` (validated against
``manifests/benchmark_results.schema.json``); ``tables.md`` and ``tables.csv``; ``figures/*.png``;
``report.html`` (self-contained: figures embedded, no network). With ``--translator`` instead of a
release, the synthetic arms are generated first into ``synthetic/`` (cached) by the generation stage.

Every run also scores the shortcut controls (``controls.py``): the COVID-19 collection's own non-COVID
X-rays and each ``--external`` set. A release is first checked against the work folder's split
(``release_check.py``).

Cells (task x arm x seed) run here one after another, or, with ``--launcher local|slurm``
(``launch.py``), one job each: a cell's ``result.json`` carries its key (:func:`cell_key`) and is
written last, so a finished cell is skipped whichever way it was made; ``job.json`` beside it records
its job (id, log, failure) for ``--status``, and ``jobs/`` holds submitit's pickles and logs. The
outputs are made from the cells' result files by one function (:func:`summarise`) for every launcher.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch

from ... import __version__
from ...artifacts import BenchmarkResult, GeneratedSet, ReleaseFolder
from ...artifacts.benchmark_run import accepted_cell_keys, cell_inputs, cell_key as run_cell_key, legacy_cell_key
from ...artifacts.release_ref import ReleaseRef, describe as describe_release, parse as parse_release, pin as pin_release
from ...core.config import at_least, to_dict
from ...core.runtime import Runtime
from ...core.errors import ConfigError
from ...launch import Job, Launcher, launch, raise_failed, read_record
from ...core.layout import AuditFolder, BenchmarkFolder, WorkLayout
from ...core.locks import hold, holder_of
from ...core.paths import atomic_path, read_json, sha256_file, shareable, write_json
from ...core.progress import log
from ...core.schemas import validate
from ...data.records import Record
from ...core.vocab import ARMS, CONFIG_TASK, TASKS, concrete_arm
from . import attribution
from . import controls as C
from . import external as E
from . import figure_inputs
from ...measure import metrics as M
from .analyses import analyses
from .arms import Cached, EvalDataset, eval_items, train_set
from .power import power_before_grid, power_lines
from ...measure.classifiers import build
from .fit import FitConfig, fit, predict, score
from .inputs import SplitData
from .release_check import FOREIGN_NOTICE, check_release, release_manifest
from .run_files import finished_cells, inputs_config, read_inputs, result_problem


@dataclass(frozen=True)
class BenchmarkConfig:
    model: str = "vgg16"
    init: str = "imagenet"  # imagenet (local torch cache only) | random | PATH to a checkpoint
    protocol: Literal["rigorous", "paper"] = "rigorous"
    seeds: int | None = None  # default: 5 for rigorous, 1 for paper
    tasks: tuple[str, ...] = TASKS
    arms: tuple[str, ...] = ARMS
    image_size: int = 256
    limit: int | None = None  # at most N images per class (and per synthetic config) in each split: quick looks
    bootstrap: int = 1000
    device: str = "auto"
    # The report's model figures (Grad-CAM, UMAP): each seed-0 cell computes their inputs beside its
    # result.json (figure_inputs.py); false skips both, and the report then draws only score figures.
    # It changes no number, so it is not part of a cell's key.
    figures: bool = True
    # "validation": judge translators (or releases) without touching test: every run is scored on the
    # validation split only (it also chose the epoch and the threshold, so the numbers are optimistic and
    # serve to rank candidates, nothing more); test is never predicted, controls and figures are skipped.
    select_on: Literal["test", "validation"] = "test"
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
        if self.select_on == "validation" and self.protocol == "paper":
            raise ConfigError("select_on validation needs the rigorous protocol", "protocol paper",
                              "the paper protocol selects on test; drop --protocol paper")

    @property
    def n_seeds(self) -> int:
        return self.seeds if self.seeds is not None else (5 if self.protocol == "rigorous" else 1)


def _save_model(model, path: Path, arch: str, image_size: int | None = None) -> str:
    """Write the classifier; returns the file's sha256, which result.json records so that the audit can
    tell this run's model from a file put in its place. ``image_size`` (the side it was trained at) goes
    into the metadata, so that the audit embeds images at that size whatever the release's."""
    from safetensors.torch import save

    from ...core.safetensors_bytes import canonical_safetensors

    meta = {"arch": arch} | ({"image_size": str(int(image_size))} if image_size else {})
    # sorted metadata keys: the same weights give the same bytes, and sha256, in every process
    data = canonical_safetensors(save({k: v.contiguous() for k, v in model.state_dict().items()}, metadata=meta))
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        sha = sha256_file(tmp)
    return sha


def synthetic_from_translators(data: SplitData, out_dir: Path, translators: dict[str, str],
                               rt: Runtime | None = None, limit: int | None = None) -> Path:
    """Generate both synthetic configs with the given translators (cached) and package them as a release
    (cached under the generated set's fingerprint, so other translators never reuse it). ``data``: the
    records, split and plan; ``rt``: the benchmark's Runtime, whose device
    generates (in generate's own precision). The images go to ``out_dir/synthetic/``, the benchmark's own
    folder (named there as a work folder's generated images are).

    ``limit`` (the benchmark's ``--limit``): translate only the first N planned images of each config,
    the ones a limited benchmark reads (``arms.train_set`` takes the first N rows of each config), instead
    of every planned image (633 on the sample data) for a quick look. The shards' keys name their images,
    so a limited set is another release, never mistaken for the whole one."""
    from ..generate import GenerateConfig, generate
    from ..generate import runtime_of as generate_runtime
    from ..release.package import ReleaseConfig, package

    syn = out_dir / "synthetic"
    configs = tuple(c for c, t in CONFIG_TASK.items() if t in translators)
    if set(configs) != set(CONFIG_TASK):
        raise ConfigError("give a translator for both tasks", sorted(translators),
                          " ".join(f"--translator {t}=PATH" for t in TASKS))
    cfg, plan = GenerateConfig(configs=configs, limit=limit), data.need_plan("--translator")
    rt = rt.with_numerics(cfg.precision, cfg.channels_last) if rt else generate_runtime(cfg)
    generated = generate(plan, data.records, translators, cfg, rt, GeneratedSet(WorkLayout(syn / "work").generated))
    # The release is keyed by what its images were made from (every shard's translator sha and records):
    # new translator files regenerate the shards and so make a new release, never reuse the old one.
    made_from = generated.fingerprint(configs)
    release = ReleaseFolder(syn / f"release-{made_from[:16]}" / ReleaseConfig.name)
    if not release.is_release():
        package(generated, plan, data.records, translators, release, ReleaseConfig(), data.ingest_report)
    return release.root


@dataclass
class ControlSets:
    """The control images every model scores, decoded once per benchmark: each task's matched
    same-source negatives and each external set, per task."""

    same_source: dict[str, tuple[Cached, list[str]]]  # task -> (dataset, patients)
    external: dict[str, dict[str, tuple[Cached, list]]]  # name -> task -> (dataset, items)


def _control_sets(data: SplitData, cfg: BenchmarkConfig, externals: dict[str, str]) -> tuple[ControlSets | None, dict | None]:
    """The control sets (None, None with ``select_on`` validation: controls are read against test)."""
    if cfg.select_on == "validation":
        return None, None
    records = data.grouped  # the probes resample the split's patients
    neg, findings, ss_report = C.same_source_negatives(records)
    ss = {}
    for task in TASKS:
        mine = [neg[i] for i in C.matched_negatives(findings, task)]
        if mine:
            ss[task] = (Cached(EvalDataset(mine, cfg.image_size)), [i.patient for i in mine])
    ext, ext_reports = {}, {}
    for name, folder in externals.items():
        e = E.load_external(name, folder, data)
        ext_reports[name] = e.report
        ext[name] = {t: (Cached(EvalDataset(items, cfg.image_size)), items) for t, items in e.items.items() if items}
    return ControlSets(ss, ext), {"records": records, "same_source": ss_report, "same_source_items": neg,
                                  "findings": findings, "external": ext_reports}


def runtime_of(cfg: BenchmarkConfig) -> Runtime:
    """The benchmark's :class:`Runtime`: ``device``, ``fit.precision`` and ``fit.channels_last``. The CLI
    builds it once per command; a launched cell builds its own, on the machine it runs on."""
    return Runtime.resolve(cfg.device, cfg.fit.precision, cfg.fit.channels_last)


def score_controls(res: dict, run_dir: Path | None, cfg: BenchmarkConfig, sets: ControlSets, device, model=None) -> dict:
    """Add what is missing of ``res["controls"]`` (the task's matched same-source negatives, each external
    set), loading the run's saved model only when something is missing; rewrites ``run_dir/result.json``
    when it changed. A same-source entry of the older pooled control (no ``control`` key), or one without
    the patient bootstrap of its FPR difference (``fpr_difference``) or its per-image calls (``per_image``,
    which the arm's bootstrap over seeds resamples), is redone."""
    ctl = res.setdefault("controls", {"same_source": None, "external": {}})
    old = ctl.get("same_source")
    todo_ss = res["task"] in sets.same_source and (old is None or "control" not in old or "fpr_difference" not in old
                                                   or "fpr_ci95" not in old or "per_image" not in old)
    todo_ext = [n for n, per_task in sets.external.items() if res["task"] in per_task and n not in ctl["external"]]
    if not (todo_ss or todo_ext):
        return res
    if model is None:
        model = build(cfg.model, str(run_dir / "model.safetensors"))
    model.to(device)
    thr, seed = res["threshold"], res["seed"]
    if todo_ss:
        ds, patients = sets.same_source[res["task"]]
        pred = predict(model, ds, device)
        pos = [i for i, v in enumerate(res["test_labels"]) if v == 1]
        neg = [i for i, v in enumerate(res["test_labels"]) if v == 0]
        ctl["same_source"] = C.same_source_metrics(
            [res["test_scores"][i] for i in pos], [res["test_patients"][i] for i in pos],
            pred["scores"], patients, thr, cfg.bootstrap, seed, res["test"]["confusion"], res["task"],
            test_negatives=([res["test_scores"][i] for i in neg], [res["test_patients"][i] for i in neg]))
    for name in todo_ext:
        ds, items = sets.external[name][res["task"]]
        pred = predict(model, ds, device)
        ctl["external"][name] = E.score_external(pred["labels"], pred["scores"], items, thr, cfg.bootstrap, seed)
    if run_dir is not None:
        write_json(run_dir / "result.json", res)
    return res


def _wants_figure_inputs(cfg: BenchmarkConfig, seed: int, run_dir: Path) -> bool:
    return cfg.figures and cfg.select_on == "test" and seed == 0 and not figure_inputs.path_in(run_dir).is_file()


def run_one(data: SplitData, run_dir: Path, task: str, arm: str, seed: int, cfg: BenchmarkConfig, release, rt: Runtime,
            sets: ControlSets | None = None, key: str | None = None) -> dict:
    """Train and score one cell into ``run_dir/result.json`` (written atomically, last), or read the one
    there when it is finished (``cell_done``); ``key`` (see :func:`cell_key`) is recorded in it. ``rt``:
    where and in which precision the classifier trains (``fit`` records both); ``data``: the records and split."""
    device = rt.device
    if cell_done(run_dir, key, (task, arm, seed)):
        res = read_json(run_dir / "result.json")
        res = score_controls(res, run_dir, cfg, sets, device) if sets else res
        if _wants_figure_inputs(cfg, seed, run_dir):  # a cell finished with figures off, or by an older version
            model = build(cfg.model, str(run_dir / "model.safetensors")).to(device)
            test_ds = Cached(EvalDataset(eval_items(data, task, "test", cfg.limit), cfg.image_size))
            figure_inputs.write(run_dir, model, res, test_ds, data, release, cfg.image_size, cfg.limit, device)
        return res
    run_dir.mkdir(parents=True, exist_ok=True)
    train = train_set(data, task, arm, release, cfg.image_size, cfg.limit)
    val_items = eval_items(data, task, "validation", cfg.limit)
    # select_on validation: the scored split is validation, and test is never read
    test_items = val_items if cfg.select_on == "validation" else eval_items(data, task, "test", cfg.limit)
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
    hist = fit(model, Cached(train), monitor, cfg.fit, seed, rt)
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
        "scored_split": "validation" if cfg.select_on == "validation" else "test",
        "train": {"n": len(train), "negatives": len(train) - pos, "positives": pos,
                  "positives_synthetic": train.origins.count("synthetic"), "positives_null": train.origins.count("null"),
                  "skew": train.skew},
        "fit": {**{k: v for k, v in hist.items() if k != "history"}, "device": str(device), "precision": rt.precision},
        "history": hist["history"],
        "threshold": threshold, "threshold_source": source, "validation": val_metrics,
        "test": score(test["labels"], test["scores"], [i.patient for i in test_items], threshold, cfg.bootstrap, seed),
        "test_scores": [round(float(s), 6) for s in test["scores"]], "test_labels": [int(v) for v in test["labels"]],
        "test_patients": [i.patient for i in test_items], "test_record_ids": [i.record_id for i in test_items],
    } | ({"cell_key": key} if key else {})
    if cfg.protocol == "rigorous":  # kept so that operating.py can re-pick thresholds inside its bootstrap
        res |= {"validation_scores": [round(float(s), 6) for s in val["scores"]],
                "validation_labels": [int(v) for v in val["labels"]], "validation_patients": [i.patient for i in val_items]}
    res["model_sha256"] = _save_model(model, run_dir / "model.safetensors", cfg.model, cfg.image_size)
    if _wants_figure_inputs(cfg, seed, run_dir):
        figure_inputs.write(run_dir, model, res, test_ds, data, release, cfg.image_size, cfg.limit, device)
    write_json(run_dir / "result.json", res)  # last: it marks the cell finished
    return score_controls(res, run_dir, cfg, sets, device, model) if sets else res


PER_IMAGE = ("history", "test_scores", "test_labels", "test_patients", "test_record_ids", "validation_scores",
             "validation_labels", "validation_patients")


def _public_run(r: dict) -> dict:
    """A run as results.json keeps it: without per-image lists (those stay in runs/*/result.json) nor its key."""
    out = {k: v for k, v in r.items() if k not in PER_IMAGE and k != "cell_key"}
    if (out.get("controls") or {}).get("same_source"):
        out["controls"] = out["controls"] | {"same_source": C.public(out["controls"]["same_source"])}
    if (out.get("controls") or {}).get("external"):
        out["controls"] = out["controls"] | {"external": {n: E.public(e) for n, e in out["controls"]["external"].items()}}
    return out


def _control_summary(runs: list[dict], bootstrap: int = 0) -> dict | None:
    """Mean and spread over seeds of the control metrics of one task and arm."""
    ctl = [r.get("controls") for r in runs if r.get("controls")]
    if not ctl:
        return None
    ss = [c["same_source"] for c in ctl if c.get("same_source")]
    out = {"same_source": {k: M.summarise_seeds([c[k] for c in ss]) for k in ("fpr", "auroc")}
           | {"verdict": C.verdict_over_seeds(runs, bootstrap)} if ss else None, "external": {}}
    if len(ss) == 1:  # one seed: its intervals are the honest spread
        out["same_source"] |= {"fpr_ci95": ss[0]["fpr_ci95"], "auroc_ci95": ss[0]["auroc_ci95"]}
    for name in sorted({n for c in ctl for n in c.get("external", {})}):
        ext = [c["external"][name] for c in ctl if name in c.get("external", {})]
        out["external"][name] = {k: M.summarise_seeds([e[k] for e in ext]) for k in SUMMARY_KEYS} | {
            "n": ext[0]["n"], "n_positive_patients": ext[0].get("n_positive_patients"),
            "sensitivity_patient_ci95": E.seed_interval(ext, bootstrap)}
        if len(ext) == 1:
            out["external"][name] |= {k: ext[0][k] for k in ("sensitivity_wilson95", "specificity_wilson95", "auroc_ci95")}
    return out


SUMMARY_KEYS = ("sensitivity", "false_negatives", "specificity", "precision", "f1", "auroc", "auprc")


def aggregate(results: list[dict], bootstrap: int) -> dict:
    """Mean and spread over seeds per task and arm; each arm against ``real`` and ``real-oversampled``,
    paired seed by seed; each arm's step budget and its prior-shift row (``attribution.py``)."""
    out: dict = {}
    for task in sorted({r["task"] for r in results}):
        out[task] = {}
        by_arm: dict = {}
        for r in results:
            if r["task"] == task:
                by_arm.setdefault(r["arm"], []).append(r)
        for arm, runs in by_arm.items():
            runs.sort(key=lambda r: r["seed"])
            out[task][arm] = {"concrete_arm": runs[0]["concrete_arm"], "seeds": len(runs),
                              "skew": (runs[0]["train"] or {}).get("skew"),
                              **{k: M.summarise_seeds([r["test"][k] for r in runs]) for k in SUMMARY_KEYS},
                              "controls": _control_summary(runs, bootstrap), "budget": attribution.budget(runs)}
        for key, ref_arm in attribution.REFERENCES.items():  # vs real and vs the count-matched control
            for arm, d in attribution.paired_against(by_arm, ref_arm, bootstrap).items():
                out[task][arm][key] = d
        for arm, row in attribution.prior_shift(by_arm).items():
            out[task][arm]["at_0.5"] = row
    return out



def _notices(cfg: BenchmarkConfig, split_method: str, release_check: dict | None) -> list[str]:
    """Everything a reader of any output must know before reading a number (also printed by the CLI)."""
    out = []
    if cfg.protocol == "paper":
        out.append(PAPER_WARNING)
        if split_method != "paper":
            out.append(f"PAPER PROTOCOL ON A {split_method.upper()} SPLIT: the paper's numbers came from its row-order "
                       "split (`cxrsynth split --method paper`); this run does not reproduce them.")
    if cfg.select_on == "validation":
        out.append(SELECT_ON_VALIDATION)
    if release_check and release_check["allowed_by_flag"]:
        out.append(f"{FOREIGN_NOTICE}: " + "; ".join(release_check["problems"]))
    return out


PAPER_WARNING = ("PAPER PROTOCOL: model selection, learning-rate schedule and early stopping watched the TEST set, "
                 "as the original code did; these numbers are optimistic and not a valid estimate.")


SELECT_ON_VALIDATION = ("SCORED ON VALIDATION ONLY (select_on validation): every number here is on the validation split, "
                        "which also chose each model's epoch and threshold; the test split was never scored. Use "
                        "these to rank translators; score the chosen one once on test.")


#: Config keys that change no number of a cell (where it runs; whether figure inputs are written).
NOT_RUN_DEFINING = ("device", "figures")


def run_inputs(data: SplitData, cfg: BenchmarkConfig, release: str | None, home: Path | None = None) -> dict:
    """Everything a finished run's numbers depend on: the config (less the device), the release's images,
    the split assignment and the code version. Run folders are reused only for the same inputs. A checkpoint
    given as ``init`` is named by its path below ``home`` (the work folder; else its name) and its sha256:
    the key follows the file's content, not where it lies, and no absolute local path is recorded."""
    images = None
    if release:
        manifest = release_manifest(release)
        images = manifest.get("data_sha256") or hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    return shareable({"config": {k: v for k, v in to_dict(cfg).items() if k not in NOT_RUN_DEFINING},
                      "release_data_sha256": images,
                      "split_assignment_sha256": data.assignment_sha256,
                      "code_version": __version__}, _bases(home))


def _bases(*folders: Path | None) -> tuple[Path, ...]:
    """The folders output paths are shown relative to (:func:`~cxrsynth.core.paths.shareable`)."""
    return tuple(f for f in folders if f is not None)


def claim_run_folder(out_dir: Path, inputs: dict) -> None:
    """Record ``inputs`` as ``out_dir/inputs.json``; refuse a folder whose finished runs came from others.

    Finished runs are reused by name on a rerun (resume); without this check a rerun with another release,
    model or --max-epochs would return the old numbers under the new config. A folder with no finished
    cell (a start that failed before any cell finished) has nothing to protect and is claimed afresh.
    """
    path = out_dir / "inputs.json"
    if finished_cells(out_dir):
        old = read_inputs(out_dir) if path.is_file() else {}
        new = json.loads(json.dumps(inputs))
        if cell_inputs(old) != cell_inputs(new):  # more or fewer seeds, arms or tasks: the cells still hold
            flat_old, flat_new = _flatten(cell_inputs(old)), _flatten(cell_inputs(new))
            differ = sorted(k for k in set(flat_old) | set(flat_new) if flat_old.get(k) != flat_new.get(k))
            raise ConfigError("this benchmark folder holds runs made from other inputs", out_dir,
                              f"they differ in {', '.join(differ[:6])}; choose another --out, or delete "
                              f"{out_dir / 'runs'} to recompute")
        _rekey_legacy_cells(out_dir, old)
    write_json(path, inputs)


def _rekey_legacy_cells(out_dir: Path, old: dict) -> None:
    """Give each finished cell that carries the key of the whole old inputs (written before the grid's
    extent left the key) the key it has now: the same numbers from the same inputs, so kept, not rerun."""
    for folder in finished_cells(out_dir):
        res = read_json(folder / "result.json")
        task, arm, seed = res["task"], res["arm"], res["seed"]
        if res.get("cell_key") == legacy_cell_key(old, task, arm, seed):
            write_json(folder / "result.json", res | {"cell_key": run_cell_key(old, task, arm, seed)})


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


@dataclass(frozen=True)
class Cell:
    """One classifier training of the grid: a task, an arm and a seed (the model is the config's)."""

    task: str
    arm: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.task}/{self.arm}/seed-{self.seed}"

    def folder(self, out_dir: Path) -> Path:
        return BenchmarkFolder(out_dir).cell(self.task, self.arm, self.seed)


def list_cells(cfg: BenchmarkConfig) -> list[Cell]:
    """Every cell of the grid, in the order results are reported."""
    return [Cell(t, a, s) for t in cfg.tasks for a in cfg.arms for s in range(cfg.n_seeds)]


def cell_key(inputs: dict, cell: Cell) -> str:
    """What one cell's numbers depend on: the run's inputs (:func:`run_inputs`) and the cell itself."""
    return run_cell_key(inputs, cell.task, cell.arm, cell.seed)


def cell_done(run_dir: Path, key: str | None, cell: tuple[str, str, int]) -> bool:
    """A cell (task, arm, seed) is finished when its ``result.json`` is that cell's finished result
    and carries ``key`` (:func:`~cxrsynth.stages.benchmark.run_files.result_problem`). Anything else is run
    again; a result file that exists but is not trusted is said so on stderr."""
    problem = result_problem(run_dir, key, cell)
    if problem and problem != "no result yet":
        print(f"cxrsynth: {cell[0]}/{cell[1]}/seed-{cell[2]} is run again: {problem} ({run_dir / 'result.json'})",
              file=sys.stderr)
    return problem is None


@dataclass(frozen=True)
class Setup:
    """Everything a cell needs, picklable: a launched job gets this and its :class:`Cell` (with ``data``
    as the folder :meth:`for_jobs` wrote it to, read once per job, rather than a copy of every record
    pickled into every job's file)."""

    data: SplitData | Path  # a Path only in a launched job's copy: the folder for_jobs wrote (see loaded)
    out_dir: Path
    cfg: BenchmarkConfig
    release: str | None
    externals: dict[str, str]
    inputs: dict
    release_info: dict | None = None  # artifacts.release_ref.describe: name, version, data_sha256, commit
    record_paths: bool = False  # --record-paths: outputs keep absolute local paths (see paths.shareable)
    home: Path | None = None  # the work folder, only to show local paths relative to it; never read

    def key(self, cell: Cell) -> str:
        return cell_key(self.inputs, cell)

    def for_jobs(self) -> Setup:
        """This setup with its records, split and plan written once to ``out_dir/jobs/inputs/``."""
        folder = self.out_dir / "jobs" / "inputs"
        self.loaded().write(folder)
        return replace(self, data=folder)

    def loaded(self) -> SplitData:
        """The records, split and plan: as given, or read from the folder :meth:`for_jobs` wrote (once per
        launched job, :func:`run_cell_job`). That folder is this benchmark's own, not a work folder."""
        return self.data if isinstance(self.data, SplitData) else SplitData.read(self.data)


def run_cell(setup: Setup, cell: Cell, rt: Runtime, sets: ControlSets) -> dict:
    """Run (or read, when finished) one cell under its lock, ``.cell.lock`` in its folder: a cell is
    never computed twice at once, and ``--status`` sees it running."""
    run_dir = cell.folder(setup.out_dir)
    with hold(run_dir, "cell", f"the benchmark cell {cell.name}"):
        return run_one(setup.loaded(), run_dir, cell.task, cell.arm, cell.seed, setup.cfg, setup.release, rt, sets,
                       key=setup.key(cell))


def run_cell_job(setup: Setup, cell: Cell) -> dict:
    """A launched job (``--launcher local|slurm``): one cell, in its own process; its controls are
    decoded here. Returns a small summary; the numbers are in the cell's ``result.json``."""
    setup = replace(setup, data=setup.loaded())  # read once for the controls and the cell
    sets, _ = _control_sets(setup.data, setup.cfg, setup.externals)
    res = run_cell(setup, cell, runtime_of(setup.cfg), sets)
    return {"cell": cell.name, "auroc": res["test"]["auroc"]}


def prepare(data: SplitData, out_dir: Path, cfg: BenchmarkConfig, release: str | None,
            translators: dict[str, str] | None, externals: dict[str, str] | None,
            allow_foreign_release: bool, record_paths: bool = False,
            rt: Runtime | None = None, home: Path | None = None) -> tuple[Setup, dict | None]:
    """Before any cell: synthetic images from translators (when given), the release check, the folder's
    claim (``inputs.json``) and ``config.json``. Returns the cells' setup and the release check."""
    out_dir.mkdir(parents=True, exist_ok=True)
    needs_synth = any(a != "real" for a in cfg.arms)
    if translators:
        release = str(synthetic_from_translators(data, out_dir, translators, rt, cfg.limit))
    if needs_synth and not release:
        raise ConfigError("the synthetic arms need a release or translators", "--release / --translator",
                          "or train only the real arm: --arm real")
    # A Hub release is pinned to the commit its revision (default main) names now: every read below
    # (manifest, shards, controls, figures, launched cells) uses that commit, and results record it.
    asked = parse_release(release) if release else None
    pinned = pin_release(asked) if asked else None
    release = str(pinned) if pinned else None
    checked = check_release(data, release, allow_foreign_release) if release else None
    inputs = run_inputs(data, cfg, release, home)
    claim_run_folder(out_dir, inputs)
    write_json(out_dir / "config.json", shareable(to_dict(cfg) | {
        "release": release, "translators": translators, "externals": externals,
        "allow_foreign_release": allow_foreign_release}, _bases(out_dir, home), record_paths))
    return Setup(data, out_dir, cfg, release, dict(externals or {}), json.loads(json.dumps(inputs, default=str)),
                 describe_release(pinned, asked) if pinned else None, record_paths, home), checked


def summarise(setup: Setup, results: list[dict], checked: dict | None, ctl: dict,
              audit: AuditFolder | None = None) -> BenchmarkResult:
    """results.json from every cell's result (validated and written), then tables, figures and report
    (with ``audit``'s section when it judged the same release): the same for every launcher. The result
    returned keeps the caller's paths in ``summary``; its ``data`` is what results.json holds."""
    from .report import write_outputs

    data, out_dir, cfg, release = setup.loaded(), setup.out_dir, setup.cfg, setup.release
    split_method = data.method
    summary = {
        "kind": "cxrsynth.benchmark_results", "code_version": __version__, "config": to_dict(cfg),
        "protocol": cfg.protocol, "test_used_for_selection": cfg.protocol == "paper",
        "warning": PAPER_WARNING if cfg.protocol == "paper" else None,
        "notices": _notices(cfg, split_method, checked) + (E.external_notices(ctl["external"]) if ctl else []),
        "split_method": split_method,
        "release": release, "release_data_sha256": setup.inputs.get("release_data_sha256"),
        "release_info": setup.release_info,
        "release_check": checked, "eval_only": False,
        "summary": aggregate(results, cfg.bootstrap),
        "controls": None if ctl is None else {
            "same_source": ctl["same_source"], "external": ctl["external"],
            "source_probe": C.source_probes(ctl["records"], ctl["same_source_items"], ctl["findings"], cfg.bootstrap),
            "real_vs_synthetic": C.real_vs_synthetic(ctl["records"], data.assign, release, cfg.bootstrap) if release else None,
        },
        "runs": [_public_run(r) for r in results],
    }
    summary |= analyses(data, cfg, results, summary["summary"])  # operating points, power, calibration, subgroups
    shared = shareable(summary, _bases(out_dir, setup.home), setup.record_paths)  # the files: no absolute local paths
    validate(shared, "benchmark_results")
    write_json(out_dir / "results.json", shared)
    write_outputs(out_dir, shared, results, cfg, audit=audit)
    return BenchmarkResult(shared, out_dir, local=summary)  # the caller's copy keeps the paths it gave


CELL_STATES = ("done", "running", "failed", "missing")


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


def _cell_state(out_dir: Path, cell: Cell, key: str | tuple[str, ...]) -> dict:
    folder = cell.folder(out_dir)
    rec = read_record(folder) or {}
    here = rec.get("host") == socket.gethostname()
    entry = {"cell": cell.name, "state": "missing", "job_id": rec.get("job_id"), "log": rec.get("stderr"),
             "launcher": rec.get("launcher"), "detail": None}
    problem = result_problem(folder, key, (cell.task, cell.arm, cell.seed))
    if problem is None:
        return entry | {"state": "done", "detail": None if rec.get("job_id") else "run here"}
    if problem != "no result yet":  # a result file that is not trusted: said, and the cell counts as to do
        entry["detail"] = f"{problem}; it is run again"
    holder = holder_of(folder, "cell")
    if holder:
        return entry | {"state": "running", "detail": holder}
    state = rec.get("state")
    if state == "submitted" and rec.get("launcher") == "local" and here and not _pid_alive(rec.get("job_id")):
        return entry | {"state": "failed", "detail": "the job ended without a result"}
    if state == "submitted":
        return entry | {"state": "running", "detail": f"submitted as {rec.get('launcher')} job {rec.get('job_id')}"
                                                      " (queued or starting)"}
    if state == "queued" and here and _pid_alive(rec.get("launcher_pid")):
        return entry | {"state": "running", "detail": f"waiting for a free slot (launcher pid {rec.get('launcher_pid')})"}
    if state == "failed":
        return entry | {"state": "failed", "detail": rec.get("error")}
    return entry


def benchmark_status(out_dir: str | Path) -> dict:
    """Where a benchmark folder stands, cell by cell: done (its result file carries its key), running
    (its lock is held, or a job was submitted and is not known to have ended), failed (with the job's
    log) or missing. Reads only files (``inputs.json``, each cell's ``result.json`` and ``job.json``):
    SLURM is not asked, so a job it dropped without a trace shows as submitted."""
    out_dir = Path(out_dir)
    inputs = read_inputs(out_dir)
    cfg = inputs_config(inputs, out_dir, BenchmarkConfig)
    # a folder not run since keys left out the grid's extent still holds its cells under the old keys
    cells = [_cell_state(out_dir, c, accepted_cell_keys(inputs, c.task, c.arm, c.seed)) for c in list_cells(cfg)]
    return {"out": str(out_dir), "counts": {s: sum(c["state"] == s for c in cells) for s in CELL_STATES},
            "results": (out_dir / "results.json").is_file(), "cells": cells}


def benchmark(records: list[Record], splits: dict, release: ReleaseFolder | ReleaseRef | str | Path | None,
              cfg: BenchmarkConfig, rt: Runtime | None, out_dir: str | Path, *, plan: dict | None = None,
              ingest_report: dict | None = None, translators: dict[str, str] | None = None,
              externals: dict[str, str] | None = None, allow_foreign_release: bool = False,
              launcher: Launcher | None = None, echo=None, record_paths: bool = False, progress: bool = False,
              audit: AuditFolder | None = None, home: str | Path | None = None) -> BenchmarkResult:
    """The benchmark stage: train and score every task x arm x seed, score the shortcut controls, write
    every output into ``out_dir``; returns the :class:`~cxrsynth.artifacts.BenchmarkResult`, stamped with
    the release's ``data_sha256`` (None when no release was judged, e.g. ``--arm real`` alone).

    Artefacts in: ``records`` (as ingest wrote them) and ``splits`` (the split manifest), already read;
    ``plan`` (for the null arm, the release check's plan checksum and ``translators``) and
    ``ingest_report`` (``translators``' release card) when there are. ``release``: a
    :class:`~cxrsynth.artifacts.ReleaseFolder`, a :class:`~cxrsynth.artifacts.release_ref.ReleaseRef`
    or its text (a folder, ``ORG/NAME[@REV]``), or None for the real arm alone. No work folder is opened
    here (:func:`benchmark_in` reads one for it); ``home`` is only the folder local
    paths are written relative to in the outputs (the work folder), and ``audit`` the audit whose
    section report.html embeds when it judged the same release.

    ``translators`` ({task: generator file or run folder}): judged instead of a release; their images
    are generated into ``out_dir/synthetic/`` and packaged there, keyed by the translators' sha.
    ``externals``: {NAME: DIR} of external test sets (any folder ``cxrsynth ingest`` reads).
    ``allow_foreign_release``: run on a release that does not match this split (stated in every output).
    ``launcher``: ``serial`` (default) trains the cells here, one after another; ``local``/``slurm``
    runs each unfinished cell as one job (logs in ``out_dir/jobs/``), and raises
    :class:`~cxrsynth.launch.JobsFailed` naming the failed cells and their logs, before any output is
    written; a rerun runs only those. Either way the outputs come from the cells' result files.
    ``record_paths``: results.json and config.json keep absolute local paths (default: relative to the
    folders, or names with sha256; :func:`~cxrsynth.core.paths.shareable`). ``rt``: the command's Runtime
    (None: :func:`runtime_of` ``cfg``, chosen after the launched cells); launched cells build theirs
    where they run.
    """
    from ...core.progress import bar as progress_bar

    data = SplitData(list(records), splits, plan, ingest_report)
    out_dir, launcher = Path(out_dir), launcher or Launcher()
    home = Path(home) if home is not None else None
    release = None if release is None else str(release.root if isinstance(release, ReleaseFolder) else release)
    setup, checked = prepare(data, out_dir, cfg, release, translators, externals, allow_foreign_release,
                             record_paths, rt, home)
    cells = list_cells(cfg)
    if launcher.kind != "serial":
        todo = [c for c in cells if not cell_done(c.folder(out_dir), setup.key(c), (c.task, c.arm, c.seed))]
        jobs_setup = setup.for_jobs() if todo else setup
        outcomes = launch(launcher, [Job(c.name, run_cell_job, (jobs_setup, c), c.folder(out_dir)) for c in todo],
                          out_dir / "jobs", echo)
        raise_failed(outcomes, "benchmark cells",
                     f"rerun the same command: finished cells are kept and only these run again "
                     f"(`cxrsynth benchmark --status {out_dir}` lists them)")
    for line in power_lines(power_before_grid(data, cfg.tasks, cfg.limit)):  # stated before the grid
        log.info(line)
    sets, ctl = _control_sets(data, cfg, setup.externals)
    rt = rt or runtime_of(cfg)  # here, after any launched cells: a login node need not have their device
    results = [run_cell(setup, c, rt, sets)
               for c in progress_bar(cells, desc="benchmark", unit="run", enabled=progress and launcher.kind == "serial")]
    return summarise(setup, results, checked, ctl, audit)


def benchmark_in(workdir: str | Path, out_dir: str | Path, cfg: BenchmarkConfig = BenchmarkConfig(),
                 release: str | None = None, translators: dict[str, str] | None = None, *,
                 externals: dict[str, str] | None = None, allow_foreign_release: bool = False,
                 launcher: Launcher | None = None, echo=None, record_paths: bool = False, progress: bool = False,
                 rt: Runtime | None = None) -> BenchmarkResult:
    """``cxrsynth benchmark`` on a work folder (``cxrsynth.pipeline.benchmark_in`` is this function): its
    records, split, plan and ingest report are read by :meth:`SplitData.read`, the benchmark's one
    reader of a work folder, and handed to :func:`benchmark` with the folder's audit (report.html embeds its
    section only when it judged the same release). It lives here, not in the pipeline, so that
    :func:`run_benchmark` can call it without importing a layer above. Returns the stamped
    :class:`~cxrsynth.artifacts.BenchmarkResult`; the options are :func:`benchmark`'s."""
    layout = WorkLayout(workdir)
    data = SplitData.read(layout.root)
    return benchmark(data.records, data.splits, release, cfg, rt, out_dir, plan=data.plan,
                     ingest_report=data.ingest_report, translators=translators, externals=externals,
                     allow_foreign_release=allow_foreign_release, launcher=launcher, echo=echo,
                     record_paths=record_paths, progress=progress, audit=layout.audit_files, home=layout.root)


def run_benchmark(workdir: str | Path, out_dir: str | Path, cfg: BenchmarkConfig = BenchmarkConfig(),
                  release: str | None = None, translators: dict[str, str] | None = None, progress: bool = False,
                  externals: dict[str, str] | None = None, allow_foreign_release: bool = False,
                  launcher: Launcher | None = None, echo=None, record_paths: bool = False,
                  rt: Runtime | None = None) -> dict:
    """:func:`benchmark_in`'s summary dict (results.json's content with the caller's own paths): the
    older call, with ``progress`` positional, kept for the callers written before the stage took artefacts."""
    return benchmark_in(workdir, out_dir, cfg, release, translators, externals=externals,
                        allow_foreign_release=allow_foreign_release, launcher=launcher, echo=echo,
                        record_paths=record_paths, progress=progress, rt=rt).summary
