"""Differentiable augmentation of the discriminators' inputs (DiffAugment, Zhao et al. 2020).

Why: with ~140 COVID-19 training images a discriminator memorises them within a few hundred updates,
and its gradient then tells the generator nothing useful. DiffAugment shows the discriminator only
augmented images, real and fake alike, and because the augmentation is made of differentiable tensor
operations the generator's adversarial loss flows back through it (the generator is never asked to
produce augmented images, as it would be if only the reals were augmented).

The policies, as in the authors' ``DiffAugment_pytorch.py`` but for one grayscale channel (no saturation):

- ``color``: brightness ``x + (u - 0.5)``, then contrast ``(x - mean) * (u + 0.5) + mean`` (per image);
- ``translation``: an integer shift of up to 1/8 of the side in each direction, zero (mid-grey) filled;
- ``cutout``: a square of half the side set to 0 at a random centre.

Every random draw comes from the ``torch.Generator`` passed in (``train.seeded``), so a run is
reproducible and a resumed run draws the same augmentations; :func:`draw` and :func:`apply` are separate
so that one draw can be applied to a real/fake pair.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...core.errors import ConfigError

POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def parse_policy(text: str) -> tuple[str, ...]:
    """``"color,translation,cutout"`` -> its names, in the fixed order they are applied; ``""`` -> none."""
    names = [t.strip() for t in str(text).split(",") if t.strip()]
    bad = [n for n in names if n not in POLICIES]
    if bad:
        raise ConfigError(f"diff_augment takes a comma-separated subset of {list(POLICIES)}", text)
    if len(set(names)) != len(names):
        raise ConfigError("diff_augment names a policy twice", text)
    return tuple(p for p in POLICIES if p in names)


def draw(policy: tuple[str, ...], n: int, size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The random parameters of one augmentation of ``n`` images of ``size`` x ``size`` (on the CPU)."""
    out: dict[str, torch.Tensor] = {}
    if "color" in policy:
        out["brightness"] = torch.rand(n, 1, 1, 1, generator=generator) - 0.5
        out["contrast"] = torch.rand(n, 1, 1, 1, generator=generator) + 0.5
    if "translation" in policy:
        shift = int(size * TRANSLATION_RATIO + 0.5)
        out["shift"] = torch.randint(-shift, shift + 1, (n, 2), generator=generator)
    if "cutout" in policy:
        cut = int(size * CUTOUT_RATIO + 0.5)
        out["cutout"] = torch.randint(0, size + (1 - cut % 2), (n, 2), generator=generator)
    return out


def apply(x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """``x`` (N, C, H, W) augmented by ``params`` from :func:`draw`; differentiable in ``x``."""
    n, _, h, w = x.shape
    dev = x.device
    if "brightness" in params:
        x = x + params["brightness"].to(dev, x.dtype)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * params["contrast"].to(dev, x.dtype) + mean
    if "shift" in params:
        sy, sx = (params["shift"][:, i].to(dev) for i in range(2))
        # index into a 1-pixel zero border: a source row/column outside the image reads the border
        iy = (torch.arange(h, device=dev)[None, :] + sy[:, None] + 1).clamp(0, h + 1)
        ix = (torch.arange(w, device=dev)[None, :] + sx[:, None] + 1).clamp(0, w + 1)
        padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # N, H+2, W+2, C
        b = torch.arange(n, device=dev)[:, None, None]
        x = padded[b, iy[:, :, None], ix[:, None, :]].permute(0, 3, 1, 2)
    if "cutout" in params:
        cut = int(h * CUTOUT_RATIO + 0.5)
        oy, ox = (params["cutout"][:, i].to(dev) for i in range(2))
        ys = torch.arange(h, device=dev)[None, :] - (oy[:, None] - cut // 2)
        xs = torch.arange(w, device=dev)[None, :] - (ox[:, None] - cut // 2)
        inside = ((ys >= 0) & (ys < cut))[:, :, None] & ((xs >= 0) & (xs < cut))[:, None, :]
        x = x * (~inside).to(x.dtype)[:, None]
    return x


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], generator: torch.Generator) -> torch.Tensor:
    """One fresh augmentation of ``x`` (the identity when ``policy`` is empty)."""
    if not policy:
        return x
    return apply(x, draw(policy, x.shape[0], x.shape[-1], generator))
