"""What each arm trains on, and the real validation / test sets it is judged on.

Arm names (``vocab.ARMS``) are generic so one list serves both tasks: ``real``, ``real+own`` (the task's own synthetic
config: g_nc for normal-covid, g_pc for pneumonia-covid), ``real+all`` (both configs),
``synthetic-only`` (the task's own config replaces the real COVID-19 images, as Tables 1-2 of the
paper: G_NC for normal-covid, G_PC for pneumonia-covid), ``synthetic-only-both`` (both configs replace
them: an extra arm, not in the paper), ``real-oversampled`` (the count-matched control: real
COVID-19 repeated to the size of ``real+all``'s positives) and ``real+null`` (the null-translator control:
``real+own`` with a trivial transform in place of the translator; ``null_arm.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...data.images import load_canonical
from ..load.loader import ArmDataset, load
from ...core.vocab import CONFIGS, NULL_ARM, TASK_LABELS, concrete_arm
from .inputs import SplitData, real_images
from .null_arm import NullSet, null_sources


@dataclass
class EvalItem:
    path: str
    label: int
    patient: str
    record_id: str


class EvalDataset(torch.utils.data.Dataset):
    def __init__(self, items: list[EvalItem], size: int):
        self.items, self.size = items, size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        it = self.items[i]
        x = torch.from_numpy(load_canonical(it.path, self.size).astype(np.float32) / 255.0).unsqueeze(0)
        return x, it.label


def eval_items(data: SplitData, task: str, split: str, limit: int | None = None) -> list[EvalItem]:
    """The real ``split`` images of ``task`` (``data``: the records and split), with the split's patients
    (a --patient-map included)."""
    neg, pos = TASK_LABELS[task]
    assign = data.assign
    recs = [r for r in data.grouped
            if r.has_pixels and assign.get(r.record_id) == split and r.label in (neg, pos)]
    items = [EvalItem(str(r.path), int(r.label == pos), r.patient_group or r.patient_id, r.record_id) for r in recs]
    if limit:
        items = [i for i in items if i.label == 0][:limit] + [i for i in items if i.label == 1][:limit]
    return items


def _load(data: SplitData, task: str, arm: str, release, size: int) -> ArmDataset:
    """``cxrsynth.load``'s training set of one arm, on ``data``'s records and split (no folder is read)."""
    return load(task, arm, "train", release=release, size=size, real=real_images(data))


def null_set(data: SplitData, task: str, release, size: int) -> ArmDataset:
    """``real`` plus the null-translator images, as many as ``real+own`` has synthetic ones."""
    real = _load(data, task, "real", release, size)
    count = len(_load(data, task, "real+own", release, size).synthetic[0])
    sources = null_sources(data.need_plan("the null arm (real+null)"), data.records, task, count)
    return _as_null(ArmDataset(real.real, [NullSet(sources, size)], size, real.transform))


def _as_null(ds: ArmDataset) -> ArmDataset:
    """Its non-real items are the null arm's (results.json counts them as ``positives_null``, not synthetic)."""
    ds.origins = ["null" if o == "synthetic" else o for o in ds.origins]
    return ds


def train_set(data: SplitData, task: str, arm: str, release, size: int, limit: int | None) -> ArmDataset:
    """What ``arm`` trains on for ``task`` (``data``: the records and split)."""
    ds = (null_set(data, task, release, size) if arm == NULL_ARM
          else _load(data, task, concrete_arm(task, arm), release, size))
    if limit:
        # keep the arm's composition, capped: at most `limit` real of each class and `limit` per synthetic config
        neg = [x for x in ds.real if x[1] == 0][:limit]
        pos = [x for x in ds.real if x[1] == 1]
        if arm == "real-oversampled":
            pos = pos[: limit * (1 + len(CONFIGS))]
        else:
            pos = pos[:limit]
        synth = [s.select(range(min(limit, len(s)))) for s in ds.synthetic]
        ds = ArmDataset(neg + pos, synth, size, ds.transform)
        ds = _as_null(ds) if arm == NULL_ARM else ds
    return ds


class Cached(torch.utils.data.Dataset):
    """Decode each item once per run (the sets here are small; epochs repeat them many times)."""

    def __init__(self, ds):
        self.ds, self.cache = ds, {}

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        if i not in self.cache:
            x, y = self.ds[i]
            self.cache[i] = (x, y)
        return self.cache[i]
