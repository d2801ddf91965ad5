"""The CycleGAN objective (Zhu et al. 2017; the paper's Eq. 1-4).

Code names and the paper's terms, with A = source class (normal or pneumonia), B = COVID-19:
``G_A``: A -> B (the published translator), ``G_B``: B -> A (kept private), ``D_A`` judges B images,
``D_B`` judges A images.

- adversarial: ``gan(D_A(G_A(a)), real)`` and ``gan(D_B(G_B(b)), real)``; ``lsgan`` (MSE, default, as
  the canonical code) or ``vanilla`` (BCE with logits: the paper's log-likelihood form);
- cycle: ``lambda_cycle * (|G_B(G_A(a)) - a|_1 + |G_A(G_B(b)) - b|_1)``, lambda 10;
- identity (optional): ``lambda_identity * lambda_cycle * (|G_A(b) - b|_1 + |G_B(a) - a|_1)``;
- discriminators: ``(gan(D(real), real) + gan(D(pool(fake)), fake)) / 2``.

A discriminator that judges two views (``networks.ThumbnailTwin``: full size and a thumbnail) returns a
score map per view; each adversarial term is then the mean of the views' terms, so that a 2x2 thumbnail
map weighs as much as an 8x8 full-size one.
"""

from __future__ import annotations

import torch
from torch import nn


class GANLoss(nn.Module):
    def __init__(self, mode: str = "lsgan", views: str = "mean"):
        """``views``: how the score maps of a multi-view discriminator (``networks.ThumbnailTwin``) combine,
        ``mean`` or ``sum``; each map is averaged over its own cells first, so a 2x2 map weighs as much as
        an 8x8 one."""
        super().__init__()
        if views not in ("mean", "sum"):
            raise ValueError(f"views must be 'mean' or 'sum', not {views!r}")
        self.views = views
        if mode == "lsgan":
            self.loss = nn.MSELoss()
        elif mode == "vanilla":
            self.loss = nn.BCEWithLogitsLoss()
        else:
            raise ValueError(f"unknown GAN loss {mode!r}")

    def forward(self, prediction: torch.Tensor | tuple[torch.Tensor, ...], target_is_real: bool) -> torch.Tensor:
        if isinstance(prediction, (tuple, list)):
            total = sum(self(p, target_is_real) for p in prediction)
            return total / len(prediction) if self.views == "mean" else total
        target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
        return self.loss(prediction.float(), target.float())
