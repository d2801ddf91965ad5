"""cxrsynth: synthetic COVID-19 chest X-rays, made reproducibly and judged honestly.

Stages, each a sub-module that reads the previous stage's files and writes its own:
records (``ingest``) -> splits -> plan -> translators (``translate``) -> images (``generate``).

The public Python API (``__all__``) is small; everything else is reached through the ``cxrsynth``
command line and may change between versions:

- :func:`load`: the torch dataset of one benchmark arm (real, real + synthetic, synthetic only);
- :func:`evaluate`: score your own trained classifier (an ``nn.Module`` or a checkpoint file) on a work
  folder's test split, as ``cxrsynth benchmark --eval-only`` does; it returns an :class:`EvalResult`.

Both import their heavy dependencies (torch, datasets) only when called, so ``import cxrsynth`` is quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["EvalResult", "__version__", "evaluate", "load"]

if TYPE_CHECKING:
    from .stages.benchmark.evaluate import EvalResult


def load(*args, **kwargs):
    """Torch dataset of one benchmark arm; see :func:`cxrsynth.stages.load.loader.load`."""
    from .stages.load.loader import load as _load

    return _load(*args, **kwargs)


def evaluate(model_or_path, task, workdir="cxrsynth-work", **kwargs) -> "EvalResult":
    """Score a trained classifier (an ``nn.Module`` giving 1 or 2 logits, or a checkpoint path) on
    ``workdir``'s held-out test split and the shortcut controls; no training. Returns an
    :class:`EvalResult` (AUROC with its interval, sensitivity and specificity at the threshold, ...).
    See :func:`cxrsynth.stages.benchmark.evaluate.evaluate` for the options (``threshold``, ``normalize``,
    ``positive_index``, ``image_size``, ``out_dir``, ...)."""
    from .stages.benchmark.evaluate import evaluate as _evaluate

    return _evaluate(model_or_path, task, workdir, **kwargs)


def __getattr__(name: str):
    # EvalResult without importing torch at ``import cxrsynth``
    if name == "EvalResult":
        from .stages.benchmark.evaluate import EvalResult

        return EvalResult
    raise AttributeError(f"module 'cxrsynth' has no attribute {name!r}")
