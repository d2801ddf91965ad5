"""The canonical CycleGAN networks as plain maths (junyanz/pytorch-CycleGAN-and-pix2pix, ``networks.py``).

- :class:`ResnetGenerator`: reflection pad 3, 7x7 conv to ``base`` channels, instance norm (no affine,
  no running stats), ReLU; two stride-2 3x3 convs; ``blocks`` residual blocks (9 at 256 px, 6 at 128);
  two stride-2 transposed convs (output_padding 1); reflection pad 3, 7x7 conv, tanh.
  With 1 channel and base 64: 11.37 M parameters, 48.7 G multiply-adds per 256x256 image (97.5 GFLOP;
  counters that charge a transposed conv per output pixel say about 56 G).
- :class:`PatchDiscriminator`: the 70x70 PatchGAN: 4x4 convs 64-128-256-512 (no norm on the first,
  LeakyReLU 0.2), then a 1-channel 4x4 conv: a 30x30 map of real/fake logits for a 256 input.

Constructors take plain arguments, never a config object.
"""

from __future__ import annotations

import torch
from torch import nn


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=True), _norm(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=True), _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Image -> image of the same size, in [-1, 1]."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, base: int = 64, blocks: int = 9):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, base, 7, bias=True), _norm(base), nn.ReLU(True)]
        ch = base
        for _ in range(2):
            layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1, bias=True), _norm(ch * 2), nn.ReLU(True)]
            ch *= 2
        layers += [ResnetBlock(ch) for _ in range(blocks)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1, bias=True),
                       _norm(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """Image -> map of patch logits (30x30 for 256x256 with 3 layers)."""

    def __init__(self, in_channels: int = 1, base: int = 64, layers: int = 3):
        super().__init__()
        seq: list[nn.Module] = [nn.Conv2d(in_channels, base, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < layers else 1
            seq += [nn.Conv2d(base * prev, base * mult, 4, stride=stride, padding=1, bias=True),
                    _norm(base * mult), nn.LeakyReLU(0.2, True)]
        seq += [nn.Conv2d(base * mult, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*seq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def init_weights(net: nn.Module, gain: float = 0.02, generator: torch.Generator | None = None) -> nn.Module:
    """N(0, gain) for conv weights, zero biases (the canonical 'normal' init)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            with torch.no_grad():
                m.weight.normal_(0.0, gain, generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
    return net


def default_blocks(size: int) -> int:
    return 9 if size >= 256 else 6


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def generator_macs(size: int = 256, channels: int = 1, base: int = 64, blocks: int = 9) -> int:
    """Multiply-accumulates of one generator forward at ``size`` x ``size`` (analytic)."""
    macs = size * size * channels * base * 49
    ch, s = base, size
    for _ in range(2):
        s //= 2
        macs += s * s * ch * (ch * 2) * 9
        ch *= 2
    macs += blocks * 2 * s * s * ch * ch * 9
    for _ in range(2):
        s *= 2
        macs += (s // 2) * (s // 2) * ch * (ch // 2) * 9  # transposed conv: one 3x3 kernel per input pixel
        ch //= 2
    macs += size * size * ch * channels * 49
    return macs
