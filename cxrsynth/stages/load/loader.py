"""``cxrsynth.load``: torch datasets that mix real records and synthetic configs as the benchmark arms do.

Labels are binary per task: 1 = COVID-19, 0 = the task's other class (normal or pneumonia). Items are
``(image, label)`` with ``image`` a float tensor (1, size, size) in [0, 1] (the paper's 1/255 scaling),
passed through ``transform`` when one is given.

Arms (training split only; validation and test are always real), as the benchmark names them
(:data:`vocab.ARMS`: ``real``, ``real+own``, ``real+all``, ``synthetic-only``, ``synthetic-only-both``,
``real-oversampled``), made concrete for the task, or in the concrete spelling itself
(:func:`vocab.concrete_arm`: ``real+own`` is ``real+g_nc`` for normal-covid):
- ``real``: real negatives and real COVID-19;
- ``real+g_nc``, ``real+g_pc``, ``real+g_nc+g_pc`` (any order): real plus those synthetic configs;
- ``synthetic-only`` (the task's own config, as in the benchmark), ``synthetic-only-both``, or concretely
  ``synthetic-only (g_nc)``, ``synthetic-only (g_nc+g_pc)`` ...: real negatives, those synthetic configs
  instead of the real COVID-19. One name, one meaning: ``synthetic-only`` once meant both configs here
  (only here); it now warns once that it changed (:data:`vocab.CHANGED_MEANING`);
- ``real-oversampled``: real COVID-19 repeated to the count of ``real+g_nc+g_pc`` (the count-matched control).

Real images come from a work folder (its records and ``splits.json``, as the benchmark uses them) or,
with ``real=``, from folders or a ``datasets`` dataset split on the fly (``real_images.py``), so a
release from the Hub plus a local NIH sample is enough.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ...artifacts.release_ref import parse
from ...core.errors import ConfigError, DataNotFoundError
from ...data.images import from_pil, load_canonical
from .real_images import RealImages, from_workdir, resolve
from ...core.vocab import ARMS, CHANGED_MEANING, CONFIGS, TASK_LABELS, TASKS, arm_parts, concrete_arm


def parse_arm(arm: str, task: str | None = None) -> tuple[bool, tuple[str, ...], bool]:
    """-> (use real COVID-19, synthetic configs, oversample real COVID-19). A benchmark arm name
    (``real+own``, ``synthetic-only``, ``synthetic-only-both`` ...) is made concrete for ``task`` first."""
    if task is not None and arm in ARMS:
        arm = concrete_arm(task, arm)
    return arm_parts(arm)


def warn_changed(task: str, arm: str) -> None:
    """A FutureWarning for an arm name whose meaning in ``cxrsynth.load`` changed, naming both spellings:
    code written for the old meaning now gets other images, and must hear of it rather than silently
    train on them (an error instead would refuse the one spelling that is now right)."""
    if arm in CHANGED_MEANING:
        warnings.warn(f"cxrsynth.load: {arm!r} now means {concrete_arm(task, arm)!r} (the task's own translator), "
                      f"as in the benchmark; it used to mean both translators here: write {CHANGED_MEANING[arm]!r} "
                      f"for that. Spell {concrete_arm(task, arm)!r} to silence this warning.", FutureWarning, stacklevel=3)


class ArmDataset(torch.utils.data.Dataset):
    """Real records (decoded on access) followed by synthetic rows (from a ``datasets`` release).

    ``real``: (file path, label), or (row number in ``rows``, label) for a ``datasets`` input. ``info``:
    where the real images came from and how they were split (``real_images.py``)."""

    def __init__(self, real: list[tuple[str | int, int]], synthetic: list, size: int, transform=None,
                 rows=None, info: dict | None = None):
        self.real, self.synthetic, self.size, self.transform = real, synthetic, size, transform
        self.rows, self.info = rows, info or {}
        self.labels = [lab for _, lab in real] + [1] * sum(len(s) for s in synthetic)
        self.origins = ["real"] * len(real) + ["synthetic"] * (len(self.labels) - len(real))
        self._offsets = np.cumsum([0] + [len(s) for s in synthetic])

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def skew(self) -> float | None:
        pos = sum(self.labels)
        return (len(self.labels) - pos) / pos if pos else None

    def __getitem__(self, i: int):
        if i < len(self.real):
            ref, label = self.real[i]
            arr = from_pil(self.rows[ref]["image"], self.size) if isinstance(ref, int) else load_canonical(ref, self.size)
        else:
            j = i - len(self.real)
            k = int(np.searchsorted(self._offsets, j, side="right") - 1)
            # the same gray conversion and resampling as every real image (images.from_pil)
            arr, label = from_pil(self.synthetic[k][int(j - self._offsets[k])]["image"], self.size), 1
        x = torch.from_numpy(arr.astype(np.float32) / 255.0).unsqueeze(0)
        return (self.transform(x) if self.transform else x), label


def _synthetic(release: str | Path, config: str, revision: str | None = None):
    """One config of a release folder or a Hub release (``ORG/NAME``, ``ORG/NAME@REV`` or ``revision``)."""
    import datasets

    ref = parse(release, revision)
    try:
        return datasets.load_dataset(ref.id, config, split="train", revision=ref.revision)
    except (FileNotFoundError, ValueError, datasets.exceptions.DatasetNotFoundError) as exc:
        raise DataNotFoundError(f"cannot load config {config} of the release", release, str(exc).splitlines()[0]) from exc


def load(task: str, arm: str = "real", split: str = "train", workdir: str | Path | None = None,
         release: str | Path | None = None, size: int = 256, transform=None, revision: str | None = None,
         real=None, seed: int = 0) -> ArmDataset:
    """The dataset of one benchmark arm. ``release``: a release folder or a Hub id (``ORG/NAME``);
    ``revision``: for a Hub id, the version tag (e.g. ``v1.0.0``) or commit to load, so a run can name
    exactly the images it used (default: the latest on ``main``).

    Real images: from ``workdir`` (default ``cxrsynth-work``: its records and ``splits.json``), or from
    ``real``: a folder ``cxrsynth ingest`` reads, a list of them, or a ``datasets.Dataset`` with ``image``
    and ``label`` columns, split patient-level on the fly by the rigorous splitter with ``seed``
    (``real_images.py``); the returned dataset's ``info`` records where they came from and the split."""
    if task not in TASKS:
        raise ConfigError("unknown task", task, f"use one of {sorted(TASKS)}")
    neg_label, pos_label = TASK_LABELS[task]
    use_real, configs, oversample = parse_arm(arm, task)
    warn_changed(task, arm)
    if split != "train" and arm != "real":
        raise ConfigError("only the training split has synthetic arms", f"{arm} / {split}", "use arm real for evaluation")
    if real is not None and workdir is not None:
        raise ConfigError("give real= or workdir=, not both", workdir,
                          "real= takes the place of a work folder's records and splits")
    images: RealImages = resolve(real, seed) if real is not None else from_workdir(workdir or "cxrsynth-work")
    recs = images.pick(split, (neg_label, pos_label))
    ref = (lambda r: int(r.source_path)) if images.rows is not None else (lambda r: str(r.path))
    negatives = [(ref(r), 0) for r in recs if r.label == neg_label]
    positives = [(ref(r), 1) for r in recs if r.label == pos_label]
    synthetic = []
    if configs or oversample:
        if release is None:
            raise ConfigError("this arm needs a synthetic release", arm, "pass release=PATH or ORG/NAME")
        synthetic = [_synthetic(release, c, revision) for c in (CONFIGS if oversample else configs)]
    if oversample:
        target = len(positives) + sum(len(s) for s in synthetic)
        positives = [positives[i % len(positives)] for i in range(target)] if positives else []
        synthetic = []
    info = dict(images.info, task=task, arm=concrete_arm(task, arm) if arm in ARMS else arm, split=split,
                counts={"real_negative": len(negatives), "real_positive": len(positives) if use_real else 0,
                        "synthetic": sum(len(s) for s in synthetic)})
    return ArmDataset(negatives + (positives if use_real else []), synthetic, size, transform, images.rows, info)
