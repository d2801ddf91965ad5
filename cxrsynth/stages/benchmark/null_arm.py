"""The null-translator arm (``vocab.NULL_ARM``, ``real+null``): what a trivial transform labelled COVID-19 buys.

In ``real+own`` every synthetic image is a train negative put through the task's translator and labelled
COVID-19, so each of those negatives appears twice, once per label. A gain of ``real+own`` over ``real``
could then come from the translator adding COVID-19 features, or from any altered copy of a negative
labelled COVID-19 (more positives, a lower skew, a regulariser). This arm keeps everything but the
translator: the same sources (the plan's ``translate`` list of the task, with pixels, in the order
``generate`` takes them), the same count (the release's own config, capped by ``--limit`` as the
synthetic arms are), labelled COVID-19, and a transform that knows nothing of COVID-19:

- a Gaussian blur, sigma drawn uniformly in [0.5%, 1.5%] of the image side, then
- a contrast change about the image mean, factor drawn uniformly in [0.8, 1.2],

each drawn per image from a generator seeded by :data:`NULL_SEED` and the record id, so every run and
seed sees the same images (as a release's synthetic images are fixed). No translator is loaded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from ...data.images import load_canonical

#: Seeds the per-image transform parameters (with the record id).
NULL_SEED = 0
SIGMA_SHARE = (0.005, 0.015)  # blur sigma as a share of the image side
CONTRAST = (0.8, 1.2)  # contrast factor about the image mean

#: One line for results.json and the report: what the null arm's images are.
DESCRIPTION = (f"train negatives the translator would translate, Gaussian blur (sigma {SIGMA_SHARE[0]:.1%}-"
               f"{SIGMA_SHARE[1]:.1%} of the side) then contrast x{CONTRAST[0]}-{CONTRAST[1]} about the mean, "
               f"per image from seed {NULL_SEED} and the record id; labelled COVID-19, count of real+own's synthetic images")


def parameters(record_id: str, size: int) -> tuple[float, float]:
    """(blur sigma in pixels, contrast factor) of one source at ``size``: a function of the record id only."""
    salt = int(hashlib.sha256(record_id.encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng([NULL_SEED, salt])
    return float(rng.uniform(*SIGMA_SHARE) * size), float(rng.uniform(*CONTRAST))


def null_transform(pixels: np.ndarray, record_id: str) -> np.ndarray:
    """The stated trivial transform of one canonical uint8 image (square)."""
    sigma, contrast = parameters(record_id, pixels.shape[0])
    x = gaussian_filter(pixels.astype(np.float64), sigma=sigma)
    x = x.mean() + contrast * (x - x.mean())
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


@dataclass
class NullSet:
    """Transformed sources, shaped like one synthetic config of a release for ``loader.ArmDataset``
    (``len``, rows with an ``"image"``, ``select``)."""

    sources: list[tuple[str, str]]  # (record id, path)
    size: int

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> dict:
        rid, path = self.sources[i]
        return {"image": Image.fromarray(null_transform(load_canonical(path, self.size), rid), mode="L"),
                "record_id": rid}

    def select(self, idx) -> "NullSet":
        return NullSet([self.sources[i] for i in idx], self.size)


def null_sources(plan: dict, records, task: str, count: int) -> list[tuple[str, str]]:
    """The first ``count`` sources the task's translator translates (the plan's list, with pixels, in
    ``generate``'s order: its synthetic images are made from exactly these)."""
    by_id = {r.record_id: r for r in records}
    planned = plan["tasks"][task]["translate"]["record_ids"]
    usable = [i for i in planned if i in by_id and by_id[i].has_pixels]
    return [(i, str(by_id[i].path)) for i in usable[:count]]
