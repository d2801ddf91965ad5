"""Burnt-in markers of publication figures (letters, arrows, rulers, labels): find them and paint them out.

Why: most COVID-19 X-rays of the sample collection are figures cut from papers, with panel letters,
arrows and "R"/"PA ERECT" labels drawn into the pixels. A translator trained on them learns to draw
them too, and the arrows and letters reappear in the synthetic images (issue 19). Cleaning the target
domain's training images before training removes that shortcut; each image's record says what was
removed, so a reader can see how much of the training data was altered.

The detector is deliberately plain, so that every flagged pixel can be explained. It works at
``work_size`` (512 px) whatever size training uses, then the cleaned image is resized as every image is:

1. a marker is drawn near-white or near-black: at least ``bright`` or at most ``dark``;
2. it is thin: it stands out of a grey-scale opening (white top-hat) or closing (black top-hat) with a
   square window of half-side ``radius`` (a fraction of the side: 13 px at 512) by at least ``contrast``
   (bright) or ``dark_contrast`` (dark) grey levels, while anatomy of that brightness (bone, the abdomen,
   a letter-box border) is wider than the window. Dark strokes need the larger step, because the air
   between arm and chest is thin and black too;
3. it is small and inside the picture: a connected component larger than ``max_area`` of the image is
   anatomy, and one that touches the edge is a border strip; both are left alone.

The mask is then widened by ``grow`` pixels (the anti-aliased and JPEG-ringing halo of each stroke) and
filled from its surroundings: ``biharmonic`` (``skimage.restoration.inpaint_biharmonic``, region by
region: smooth) or ``median`` (the median of the known 3x3 neighbours, from the rim inwards: cruder, and
slower here). Measured on the sample collection: ``bench/results/markers/``.

What it misses or takes too: white text on an over-exposed (near-white) abdomen has no contrast to
find; the white or black boxes behind some labels are wider than the window and stay; real thin bright
or black things (ECG leads, wires, bright rib edges in a high-contrast figure, air beside the arm) can be
flagged and smoothed over.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.restoration import inpaint_biharmonic

from ...core.config import at_least, between
from ...core.errors import ConfigError
from ...data.images import load_canonical, resize_square
from ...core.paths import atomic_write


@dataclass(frozen=True)
class MarkerParams:
    """How markers are found and filled; the defaults were chosen by eye on the sample collection and
    checked on NIH normals with drawn-in text and arrows (tests/test_markers.py)."""

    bright: int = 215  # a bright stroke is at least this grey level
    dark: int = 20  # a dark stroke is at most this
    contrast: int = 50  # ... and stands out of its top-hat background by this much
    dark_contrast: int = 80  # a dark one by this much: dark anatomy (air beside the arm) is thin too
    radius: float = 1 / 40  # top-hat window half-side, as a fraction of the image side (13 px at 512)
    max_area: float = 0.01  # largest component taken as a marker, as a fraction of the image
    grow: int = 2  # pixels the mask is widened by before filling
    fill: Literal["biharmonic", "median"] = "biharmonic"
    # markers are found and filled at this size, whatever size the image is then used at: at 128 px a
    # panel letter is a few blurred pixels that neither the brightness nor the top-hat test can tell apart
    work_size: int = 512

    def __post_init__(self):
        between("bright", self.bright, 0, 255)
        between("dark", self.dark, 0, 255)
        between("contrast", self.contrast, 1, 255)
        between("dark_contrast", self.dark_contrast, 1, 255)
        between("radius", self.radius, 0.0, 0.5)
        between("max_area", self.max_area, 0.0, 1.0)
        at_least("grow", self.grow, 0)
        at_least("work_size", self.work_size, 32)
        if self.fill not in ("biharmonic", "median"):
            raise ConfigError("fill must be biharmonic or median", self.fill)


@dataclass(frozen=True)
class MarkerRecord:
    """What cleaning did to one image: the fraction of its pixels repainted and how many strokes."""

    record_id: str
    mask_fraction: float  # of the pixels filled (mask after grow), at ``size``
    components: int  # strokes found; 0: the image is used as loaded
    size: int  # the side the image was cleaned at (work_size)


def detect(img: np.ndarray, params: MarkerParams = MarkerParams()) -> tuple[np.ndarray, int]:
    """The marker mask of one uint8 grey image (before ``grow``) and its number of components."""
    if img.ndim != 2 or img.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 image, got {img.dtype} {img.shape}")
    side = min(img.shape)
    k = 2 * max(1, round(params.radius * side)) + 1
    f = img.astype(np.int16)
    white = f - ndimage.grey_opening(f, size=(k, k))
    black = ndimage.grey_closing(f, size=(k, k)) - f
    cand = ((f >= params.bright) & (white >= params.contrast)) | ((f <= params.dark) & (black >= params.dark_contrast))
    labels, n = ndimage.label(cand, structure=np.ones((3, 3), bool))
    if n == 0:
        return cand, 0
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    keep = areas <= params.max_area * img.size
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    keep[np.unique(edge)] = False  # a strip along the edge is a border, not a stroke
    keep[0] = False
    return keep[labels], int(keep.sum())


def _median_fill(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fill ``mask`` from the rim inwards, each pixel the median of its known 3x3 neighbours."""
    out, todo = img.astype(np.float64), mask.copy()
    h, w = img.shape
    while todo.any():
        known = ~todo
        pad_v, pad_k = np.pad(out, 1, mode="edge"), np.pad(known, 1, mode="constant")
        win_v = np.stack([pad_v[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)])
        win_k = np.stack([pad_k[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)])
        rim = todo & win_k.any(0)
        if not rim.any():  # nothing known at all: leave it mid-grey
            out[todo] = 127.0
            break
        vals = np.where(win_k[:, rim], win_v[:, rim], np.nan)
        out[rim] = np.nanmedian(vals, axis=0)
        todo &= ~rim
    return out


def clean(img: np.ndarray, params: MarkerParams = MarkerParams()) -> tuple[np.ndarray, np.ndarray, int]:
    """``img`` with its markers filled in, the filled mask (after ``grow``) and the component count."""
    mask, n = detect(img, params)
    if n == 0:
        return img.copy(), mask, 0
    if params.grow:
        mask = ndimage.binary_dilation(mask, structure=np.ones((3, 3), bool), iterations=params.grow)
    if params.fill == "biharmonic":
        filled = inpaint_biharmonic(img.astype(np.float64) / 255.0, mask, split_into_regions=True) * 255.0
    else:
        filled = _median_fill(img, mask)
    out = img.copy()
    out[mask] = np.clip(np.rint(filled[mask]), 0, 255).astype(np.uint8)
    return out, mask, n


def load_clean(path: str | Path, size: int, record_id: str,
               params: MarkerParams = MarkerParams()) -> tuple[np.ndarray, MarkerRecord]:
    """The canonical ``size`` px array of ``path`` with its markers filled (found at ``work_size``, then
    resized as every image is), and the record of what was changed. An image in which nothing is found
    is the very array :func:`~cxrsynth.data.images.load_canonical` gives, so the switch changes only the
    images it reports."""
    work = load_canonical(path, params.work_size)
    out, mask, n = clean(work, params)
    rec = MarkerRecord(record_id, round(float(mask.mean()), 6), n, params.work_size)
    if n == 0:
        return (work if size == params.work_size else load_canonical(path, size)), rec
    return resize_square(Image.fromarray(out, mode="L"), size), rec


def write_records(path: str | Path, records: list[MarkerRecord]) -> Path:
    """One JSON line per image (record id, mask fraction, components, size), written atomically."""
    with atomic_write(path) as fh:
        fh.writelines(json.dumps(asdict(r)) + "\n" for r in records)
    return Path(path)


def summary(records: list[MarkerRecord], params: MarkerParams = MarkerParams()) -> dict:
    """The method, its parameters and the totals over ``records``, for ``train_report.json``."""
    fractions = [r.mask_fraction for r in records]
    return {"method": "saturated thin strokes (top-hat), small components off the edge, " + params.fill + " fill",
            "params": asdict(params), "images": len(records),
            "with_markers": sum(r.components > 0 for r in records),
            "mean_mask_fraction": round(float(np.mean(fractions)), 6) if fractions else 0.0}
