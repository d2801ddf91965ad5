"""``cxrsynth.load``: torch datasets that mix real records and synthetic configs as the benchmark arms do.

Labels are binary per task: 1 = COVID-19, 0 = the task's other class (normal or pneumonia). Items are
``(image, label)`` with ``image`` a float tensor (1, size, size) in [0, 1] (the paper's 1/255 scaling),
passed through ``transform`` when one is given.

Arms (training split only; validation and test are always real), in the concrete spelling of
``vocab.concrete_arm`` (the benchmark's ``real+own`` is ``real+g_nc`` for normal-covid), or a benchmark
arm name, which is made concrete for the task:
- ``real``: real negatives and real COVID-19;
- ``real+g_nc``, ``real+g_pc``, ``real+g_nc+g_pc`` (any order): real plus those synthetic configs;
- ``synthetic-only (g_nc)``, ``synthetic-only (g_nc+g_pc)`` ...: real negatives, those synthetic configs
  instead of the real COVID-19; plain ``synthetic-only`` means both configs here, as it always has
  (``vocab.LOADER_ALIASES``; the benchmark's ``synthetic-only`` is the task's own config only);
- ``real-oversampled``: real COVID-19 repeated to the count of ``real+g_nc+g_pc`` (the count-matched control).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .artifacts.release_ref import parse
from .errors import ConfigError, DataNotFoundError
from .images import load_canonical, resize_square
from .layout import WorkLayout
from .paths import read_json
from .records import read_records
from .vocab import ARMS, CONFIGS, LOADER_ALIASES, TASK_LABELS, TASKS, arm_parts, concrete_arm


def parse_arm(arm: str, task: str | None = None) -> tuple[bool, tuple[str, ...], bool]:
    """-> (use real COVID-19, synthetic configs, oversample real COVID-19). A benchmark arm name
    (``real+own``, ``real+all``, ``synthetic-only-both``) is made concrete for ``task`` first."""
    if task is not None and arm in ARMS and arm not in LOADER_ALIASES:
        arm = concrete_arm(task, arm)
    return arm_parts(arm)


class ArmDataset(torch.utils.data.Dataset):
    """Real records (decoded on access) followed by synthetic rows (from a ``datasets`` release)."""

    def __init__(self, real: list[tuple[str, int]], synthetic: list, size: int, transform=None):
        self.real, self.synthetic, self.size, self.transform = real, synthetic, size, transform
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
            arr = load_canonical(self.real[i][0], self.size)
            label = self.real[i][1]
        else:
            j = i - len(self.real)
            k = int(np.searchsorted(self._offsets, j, side="right") - 1)
            img = self.synthetic[k][int(j - self._offsets[k])]["image"].convert("L")
            arr, label = resize_square(img, self.size), 1  # as real images are resized (bilinear)
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


def load(task: str, arm: str = "real", split: str = "train", workdir: str | Path = "cxrsynth-work",
         release: str | Path | None = None, size: int = 256, transform=None, revision: str | None = None) -> ArmDataset:
    """The dataset of one benchmark arm. ``release``: a release folder or a Hub id (``ORG/NAME``);
    ``revision``: for a Hub id, the version tag (e.g. ``v1.0.0``) or commit to load, so a run can name
    exactly the images it used (default: the latest on ``main``)."""
    if task not in TASKS:
        raise ConfigError("unknown task", task, f"use one of {sorted(TASKS)}")
    neg_label, pos_label = TASK_LABELS[task]
    use_real, configs, oversample = parse_arm(arm, task)
    if split != "train" and arm != "real":
        raise ConfigError("only the training split has synthetic arms", f"{arm} / {split}", "use arm real for evaluation")
    layout = WorkLayout(workdir)
    assign = read_json(layout.splits)["assignments"]
    recs = [r for r in read_records(layout.records)
            if r.has_pixels and assign.get(r.record_id) == split and r.label in (neg_label, pos_label)]
    negatives = [(str(r.path), 0) for r in recs if r.label == neg_label]
    positives = [(str(r.path), 1) for r in recs if r.label == pos_label]
    synthetic = []
    if configs or oversample:
        if release is None:
            raise ConfigError("this arm needs a synthetic release", arm, "pass release=PATH or ORG/NAME")
        synthetic = [_synthetic(release, c, revision) for c in (CONFIGS if oversample else configs)]
    if oversample:
        target = len(positives) + sum(len(s) for s in synthetic)
        positives = [positives[i % len(positives)] for i in range(target)] if positives else []
        synthetic = []
    real = negatives + (positives if use_real else [])
    return ArmDataset(real, synthetic, size, transform)
