"""The history pool of generated images (Shrivastava et al. 2017), as in the canonical CycleGAN.

Discriminators see a mix of the newest fakes and up to ``size`` older ones, which steadies training.
Unlike the canonical pool, every random choice comes from a generator seeded by (seed, step, which), and
the stored images are part of the checkpoint, so a resumed run draws exactly what an uninterrupted one
would.
"""

from __future__ import annotations

import torch


class ImagePool:
    def __init__(self, size: int = 50):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(1, generator=generator).item() > 0.5:
                i = int(torch.randint(0, self.size, (1,), generator=generator).item())
                old = self.images[i].clone()
                self.images[i] = image.clone()
                out.append(old)
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        if not self.images:
            return {}
        return {f"{prefix}": torch.cat(self.images, 0).float().cpu().contiguous()}

    def load_tensors(self, tensors: dict[str, torch.Tensor], prefix: str, device: torch.device) -> None:
        stacked = tensors.get(prefix)
        self.images = [] if stacked is None else [t.unsqueeze(0).to(device) for t in stacked]
