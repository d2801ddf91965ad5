"""CycleGAN translators: networks, losses, the image pool, training with exact resume, checkpoints."""
