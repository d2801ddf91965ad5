"""``cxrsynth.evaluate``: score a trained classifier on a work folder's held-out test split, no training.

This is the benchmark's ``--eval-only`` (the CLI calls :func:`evaluate`, nothing else), as a function
that takes a checkpoint path *or* an ``nn.Module`` object, so a classifier can be judged from Python
without converting it to the benchmark's format. What it does, in order:

1. the model is made scoreable (``scoring.py``): its head must be 1 logit (sigmoid) or 2 logits
   (softmax, ``positive_index`` names COVID-19), its input is prepared by ``normalize``;
2. the decision threshold: a number, or ``"youden"``: the one maximising sensitivity + specificity - 1
   on the *validation* split (never the test split); by default as the benchmark's protocol does it,
   Youden on validation (``rigorous``) or 0.5 (``paper``), so eval-only and the benchmark read a
   checkpoint the same way;
3. the test split is scored once, then the shortcut controls (same-source negatives, ``externals``);
4. with ``out_dir``: ``results.json`` (the benchmark's schema, ``eval_only: true``, an ``evaluation``
   block recording head, normalisation and threshold), ``tables.md/csv`` and ``report.html``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from ... import __version__
from ...measure import metrics as M
from ...core.config import to_dict
from ...core.runtime import Runtime
from ...core.errors import CheckpointError, ConfigError
from ...core.paths import shareable, write_json
from ...core.schemas import validate
from ...core.vocab import TASKS
from . import external as E
from . import figure_inputs
from .arms import Cached, EvalDataset, eval_items
from .fit import predict, score
from .inputs import SplitData
from .run import BenchmarkConfig, Cell, _control_sets, _public_run, aggregate, score_controls
from .scoring import NORMALIZE, Normalize, ScoringModel, from_file, from_module

YOUDEN_SOURCE = "validation (Youden's J)"


@dataclass(frozen=True)
class EvalResult:
    """What :func:`evaluate` measured. Rates are fractions in [0, 1]; ``auroc_ci95`` is a patient-level
    bootstrap interval (None with ``bootstrap=0``); ``confusion`` counts tn / fp / fn / tp at
    ``threshold``. ``results`` is the whole results.json record; ``out_dir`` where it was written."""

    task: str
    model: str
    checkpoint: str | None
    head: str
    normalize: str
    threshold: float
    threshold_source: str
    n_test: int
    auroc: float | None
    auroc_ci95: tuple[float, float] | None
    auprc: float | None
    sensitivity: float | None
    specificity: float | None
    precision: float | None
    f1: float | None
    confusion: dict[str, int]
    validation: dict | None = field(default=None, repr=False)
    controls: dict = field(default_factory=dict, repr=False)
    scores: tuple[float, ...] = field(default=(), repr=False)
    labels: tuple[int, ...] = field(default=(), repr=False)
    results: dict = field(default_factory=dict, repr=False)
    out_dir: Path | None = None


def parse_threshold(value) -> float | str | None:
    """``None`` (as the protocol), ``"youden"``, or a number in [0, 1] (a probability of COVID-19);
    strings from the command line are read here."""
    if value is None or value == "youden":
        return value
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise ConfigError("threshold must be a number in [0, 1] or youden", value) from None
    if not 0.0 <= t <= 1.0:  # also refuses NaN
        raise ConfigError("threshold must be a number in [0, 1] or youden", value,
                          "it is a probability of COVID-19 (sigmoid or softmax output)")
    return t


def _threshold(wanted, protocol: str, model, data: SplitData, task: str, cfg: BenchmarkConfig, device):
    """-> (threshold, where it came from, validation metrics or None)."""
    wanted = parse_threshold(wanted)
    if wanted is None and protocol == "paper":
        return 0.5, "fixed 0.5 (argmax, as the paper)", None
    if wanted is not None and wanted != "youden":
        return wanted, "given", None
    items = eval_items(data, task, "validation", cfg.limit)
    if len({i.label for i in items}) < 2:
        raise ConfigError("a Youden threshold needs a validation split with both classes", task,
                          "split with the rigorous method, or give --threshold 0.5 (or another number)")
    val = predict(model, Cached(EvalDataset(items, cfg.image_size)), device)
    thr = M.youden_threshold(val["labels"], val["scores"])
    return thr, YOUDEN_SOURCE, score(val["labels"], val["scores"], [i.patient for i in items], thr, 0, 0)


def _scoring_size(path: str | None, asked: int | None) -> int:
    """The side to score at: ``asked``, else what a cxrsynth safetensors file records it was trained at,
    else 256; refused when ``asked`` contradicts the record."""
    from ...measure.classifiers import file_image_size, file_metadata

    metadata = {}
    if path and path.endswith(".safetensors"):
        try:
            metadata = file_metadata(path)
        except CheckpointError:
            pass  # from_file says what is wrong with the file, as in _named_by_file
    recorded = file_image_size(path, metadata)  # an impossible recorded size is refused here
    if asked is None:
        return recorded or 256
    if recorded and asked != recorded:
        raise ConfigError("a classifier scored at another size than it was trained at", path,
                          f"it was trained at {recorded} px (its metadata) and --image-size asks {asked}; "
                          f"give --image-size {recorded} or leave it out")
    return asked


def evaluate(model_or_path: nn.Module | str | Path, task: str, workdir: str | Path = "cxrsynth-work", *,
             model: str | None = None, threshold: float | str | None = None, normalize: Normalize = "none",
             positive_index: int | None = None, channels: int | None = None, image_size: int | None = None,
             limit: int | None = None, protocol: str = "rigorous", bootstrap: int = 1000, device: str = "auto",
             externals: dict[str, str] | None = None, out_dir: str | Path | None = None,
             figures: bool = False, record_paths: bool = False, rt: Runtime | None = None) -> EvalResult:
    """Score a trained COVID-19 classifier on ``workdir``'s test split (and the shortcut controls).

    ``model_or_path``: an ``nn.Module`` mapping (B, C, H, W) images to 1 logit (sigmoid) or 2 logits
    (softmax), or a checkpoint file (safetensors, or a state dict read with ``weights_only``) of the
    architecture ``model`` names (a torchvision name, ``timm:NAME``, or ``package.module:factory``,
    which imports and runs that code; default: the architecture a cxrsynth safetensors file names, else
    vgg16). A checkpoint of any other head (ImageNet's 1000 classes, none)
    is refused with a :class:`~cxrsynth.core.errors.CheckpointError` naming what it found.
    ``threshold``: a number in [0, 1], ``"youden"`` (on validation) or None (as ``protocol``: Youden
    for rigorous, 0.5 for paper). ``normalize``: ``none`` ([0, 1]), ``imagenet`` (mean / std),
    ``xrv`` ([-1024, 1024]). ``positive_index``: for 2 logits, which is COVID-19 (default 1).
    ``channels``: what the model reads (default: its first convolution's). ``image_size``: the side the
    images are scored at; default the one a cxrsynth file records it was trained at, else 256. A size other
    than the recorded one is refused: a CNN scored at another scale than it learnt is silently worse.
    ``out_dir``: where to write results.json, tables and report.html (nothing is written without it). ``figures``: also the
    Grad-CAM / UMAP inputs (cxrsynth classifiers only). A module given is put in eval mode and moved to
    ``device`` (``auto``: CUDA when there is one), or to ``rt``'s device when the command gives its Runtime.
    """
    if task not in TASKS:
        raise ConfigError("unknown task", task, f"use one of {sorted(TASKS)}")
    if normalize not in NORMALIZE:
        raise ConfigError("unknown normalize", normalize, f"use one of {', '.join(NORMALIZE)}")
    workdir = Path(workdir)
    data = SplitData.read(workdir)  # the one read of the work folder (--eval-only still takes one)
    path = None if isinstance(model_or_path, nn.Module) else str(model_or_path)
    image_size = _scoring_size(path, image_size)
    if path is None:
        named = getattr(model_or_path, "arch", None)  # a cxrsynth Classifier names its architecture
        arch = model or (named if isinstance(named, str) else type(model_or_path).__name__)
        scorer = from_module(model_or_path, normalize, positive_index, channels, image_size)
    else:
        arch = model or _named_by_file(path)
        scorer = from_file(arch, path, normalize, positive_index, image_size)
    cfg = BenchmarkConfig(model=arch, init=path or "given in Python", protocol=protocol, tasks=(task,),
                          arms=("real",), image_size=image_size, limit=limit, bootstrap=bootstrap, device=device,
                          figures=figures)
    dev = (rt or Runtime.resolve(device, "fp32")).device  # scoring runs in fp32 (fit.predict)
    scorer = scorer.to(dev)
    thr, source, val_metrics = _threshold(threshold, protocol, scorer, data, task, cfg, dev)
    items = eval_items(data, task, "test", limit)
    if len({i.label for i in items}) < 2:
        raise ConfigError("the test split lacks a class for this task", task)
    test_ds = Cached(EvalDataset(items, image_size))
    test = predict(scorer, test_ds, dev)
    head = scorer.describe() if isinstance(scorer, ScoringModel) else "2 logits (softmax), COVID-19 at index 1"
    evaluation = {"model": arch, "checkpoint": path, "head": head, "normalize": normalize,
                  "positive_index": getattr(scorer, "positive_index", 1), "threshold": thr, "threshold_source": source}
    res = {"task": task, "arm": "eval-only", "concrete_arm": "eval-only", "seed": 0, "protocol": protocol,
           "test_used_for_selection": False, "model": arch, "init": path, "train": None, "fit": None,
           "threshold": thr, "threshold_source": source, "validation": val_metrics, "evaluation": evaluation,
           "test": score(test["labels"], test["scores"], [i.patient for i in items], thr, bootstrap, 0),
           "test_scores": [round(float(s), 6) for s in test["scores"]], "test_labels": [int(v) for v in test["labels"]],
           "test_patients": [i.patient for i in items], "test_record_ids": [i.record_id for i in items]}
    sets, ctl = _control_sets(data, cfg, externals or {})
    score_controls(res, None, cfg, sets, dev, scorer)
    summary = {"kind": "cxrsynth.benchmark_results", "code_version": __version__, "config": to_dict(cfg),
               "protocol": protocol, "test_used_for_selection": False, "warning": None,
               "notices": E.external_notices(ctl["external"]),
               "split_method": data.method, "release": None,
               "release_check": None, "eval_only": True, "evaluation": evaluation,
               "summary": aggregate([res], bootstrap),
               "controls": {"same_source": ctl["same_source"], "external": ctl["external"], "source_probe": None,
                            "real_vs_synthetic": None},
               "runs": [_public_run(res)]}
    validate(summary, "benchmark_results")
    if out_dir is not None:
        _write(Path(out_dir), shareable(summary, (out_dir, workdir), record_paths), res, cfg, scorer, test_ds, data,
               dev)  # the files name no absolute local path unless record_paths (paths.shareable)
    t = res["test"]
    return EvalResult(task=task, model=arch, checkpoint=path, head=head, normalize=normalize, threshold=thr,
                      threshold_source=source, n_test=len(items), auroc=t["auroc"],
                      auroc_ci95=tuple(t["auroc_ci95"]) if t.get("auroc_ci95") else None, auprc=t["auprc"],
                      sensitivity=t["sensitivity"], specificity=t["specificity"], precision=t["precision"],
                      f1=t["f1"], confusion=dict(t["confusion"]), validation=val_metrics,
                      controls=res.get("controls") or {}, scores=tuple(res["test_scores"]),
                      labels=tuple(res["test_labels"]), results=summary,
                      out_dir=Path(out_dir) if out_dir is not None else None)


def _named_by_file(path: str) -> str:
    """The architecture a cxrsynth safetensors file names (only a torchvision or timm: name is taken
    from a file, see :func:`cxrsynth.measure.classifiers.file_arch`), else the benchmark's default, vgg16."""
    from ...measure.classifiers import file_arch
    from ...core.errors import CheckpointError

    if path.endswith(".safetensors"):
        try:
            return file_arch(path)
        except CheckpointError:
            pass  # from_file says what is wrong with the file
    return BenchmarkConfig.model


def _write(out_dir: Path, summary: dict, res: dict, cfg: BenchmarkConfig, scorer, test_ds, data: SplitData,
           device) -> None:
    """results.json, the cell's result.json (the report's scores, as a benchmark cell's), tables and
    report; the model figures' inputs only for a cxrsynth classifier (UMAP reads its pooled features,
    which a classifier seen from outside does not expose)."""
    from .report import write_outputs

    cell = Cell(res["task"], "eval-only", 0).folder(out_dir)
    cell.mkdir(parents=True, exist_ok=True)
    draw = cfg.figures and not isinstance(scorer, ScoringModel)
    if draw:
        figure_inputs.write(cell, scorer, res, test_ds, data, None, cfg.image_size, cfg.limit, device)
    write_json(cell / "result.json", res)
    write_json(out_dir / "results.json", summary)
    write_outputs(out_dir, summary, [res], cfg if draw else _no_figures(cfg))


def _no_figures(cfg: BenchmarkConfig) -> BenchmarkConfig:
    from dataclasses import replace

    return replace(cfg, figures=False)
