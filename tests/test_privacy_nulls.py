"""Nulls that are nulls (issue 20): each privacy verdict right on data whose answer is known.

- Linkage: a top-1 rate 6x chance is "linkable above chance at a low rate", 100x chance at a pool of
  5,000 is LINKABLE (the old +2-point margin passed both), chance is not linkable.
- SSIM to source: the null is measured (new real images, random pseudo-sources, the identical
  shortlist procedure). On unrelated pairs it is far below 1 / 11 and the test holds its level; a
  near-copy set and a partial-resemblance set that 1 / 11 calls chance are flagged.
- References are label-matched per stratum (config); the off-manifold caveat; one resampling path to
  the probe's 32 px.

Real NIH sample images at 32 px, split by patient, keep the SSIM tests to seconds.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from cxrsynth.images import decode, encode_png

from .conftest import NIH

SIDE = 32


# --- the probe's one resampling path -------------------------------------------------------------------

def test_real_and_synthetic_reach_the_probe_by_one_path():
    """A real image and the same image stored as a 128 px release PNG give the probe identical inputs."""
    from cxrsynth.benchmark.controls import _pil_pixels, _pixels

    paths = [str(p) for p in sorted(NIH.glob("images/*.png"))[:6]]
    pngs = [Image.open(io.BytesIO(encode_png(decode(p, 128).pixels))) for p in paths]
    syn, size = _pil_pixels(pngs)
    assert size == 128 and np.array_equal(_pixels(paths, size), syn)
    # before: real images decoded straight to 32 px, synthetic ones shrunk from 128 px: not the same input
    direct = np.stack([decode(p, SIDE).pixels.astype(np.float32).ravel() / 255 for p in paths])
    assert not np.array_equal(direct, syn)
