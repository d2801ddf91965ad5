"""The translator networks as plain maths: the canonical CycleGAN's and the paper authors' own.

Canonical (junyanz/pytorch-CycleGAN-and-pix2pix, ``networks.py``), the ``canonical`` preset:

- :class:`ResnetGenerator`: reflection pad 3, 7x7 conv to ``base`` channels, instance norm (no affine,
  no running stats), ReLU; two stride-2 3x3 convs; ``blocks`` residual blocks (9 at 256 px, 6 at 128);
  two stride-2 transposed convs (output_padding 1); reflection pad 3, 7x7 conv, tanh.
  With 1 channel and base 64: 11.37 M parameters, 48.7 G multiply-adds per 256x256 image (97.5 GFLOP;
  counters that charge a transposed conv per output pixel say about 56 G).
- :class:`PatchDiscriminator`: the 70x70 PatchGAN: 4x4 convs 64-128-256-512 (no norm on the first,
  LeakyReLU 0.2), then a 1-channel 4x4 conv: a 30x30 map of real/fake logits for a 256 input.

The authors' Keras-GAN networks (hasibzunair/synthetic-covid-cxr-gen, notebook 2a), the ``paper`` preset:

- :class:`UNetGenerator`: 4 down blocks (4x4 stride-2 conv, LeakyReLU 0.2, norm) of base x 1/2/4/8 filters,
  3 up blocks (nearest x2 upsampling, 4x4 conv, ReLU, norm, concatenate the skip), a last x2 upsampling
  and a 4x4 conv to tanh. With 1 channel and base 32: 1,542,351 parameters, about 3.3 G multiply-adds per
  256x256 image.
- :class:`KerasPatchDiscriminator`: 4x4 stride-2 convs 64-128-256-512 (no norm on the first, LeakyReLU 0.2),
  then a 4x4 stride-1 conv to 1 channel: a 16x16 map for a 256 input; 2,762,695 parameters.
- :class:`LayerInstanceNorm`: keras-contrib ``InstanceNormalization()`` with its default ``axis=None``,
  which normalises each sample over H, W **and** C together (eps 1e-3) with one scalar gamma and beta. That
  is a one-group group norm, so it runs as torch's fused ``group_norm``.
- Keras ``padding='same'`` pads the odd remainder at the bottom/right; :class:`SameConv` reproduces it.
- ``init_weights(..., scheme="glorot")``: Keras's default (Glorot uniform kernels, zero biases).

The authors read grayscale X-rays as 3-channel RGB; ours take and give one channel (the same pixels
without the copies), which only changes the first and last layers' widths.

Recipe options (the ``refined`` preset, issue 19), each off by default so the two recipes above are
unchanged: ``upsample`` ``"nearest"``/``"bilinear"`` resizes then convolves instead of the ResNet's
transposed convs (Odena et al. 2016: a stride-2 transposed conv paints a checkerboard, a resize cannot),
and ``padding="reflect"`` pads every generator conv by reflection instead of zeros (zero borders are a
constant the network can key on and show up as edge artefacts). :func:`spectral_norm_` wraps every conv of
a discriminator in spectral normalisation (Miyato et al. 2018).

Constructors take plain arguments, never a config object; :func:`build_generator` maps the ``arch``
dict saved beside every exported generator back to a network.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


def reflect_pad(x: torch.Tensor, pad: tuple[int, ...]) -> torch.Tensor:
    """Reflection padding in ``x``'s own dtype, also under autocast.

    CPU autocast lists ``reflection_pad2d`` among its fp32 ops: under bf16 autocast it casts a bf16
    activation to fp32, pads it, and the next conv casts the padded copy back to bf16. Those two
    layout-preserving casts were a fifth of a `refined` update's CPU time at 128 px (profile in
    bench/README.md, "Reflection padding under autocast"). Padding only copies values, so the padded
    tensor is the same; what changes is that its backward adds the two gradients of a reflected border
    pixel in the activation's dtype (bf16 under bf16 autocast) instead of fp32.
    """
    if torch.is_autocast_enabled(x.device.type):
        with torch.autocast(x.device.type, enabled=False):
            return F.pad(x, pad, mode="reflect")
    return F.pad(x, pad, mode="reflect")


class ReflectionPad2d(nn.ReflectionPad2d):
    """``nn.ReflectionPad2d`` that pads in its input's dtype under autocast (:func:`reflect_pad`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return reflect_pad(x, self.padding)


class ResnetBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=True), _norm(channels), nn.ReLU(True),
            ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=True), _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Image -> image of the same size, in [-1, 1]."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, base: int = 64, blocks: int = 9,
                 upsample: str = "transposed", padding: str = "zero"):
        super().__init__()
        check_generator_options(upsample, padding, ("transposed", "nearest", "bilinear"))
        pad_mode = "reflect" if padding == "reflect" else "zeros"
        layers: list[nn.Module] = [ReflectionPad2d(3), nn.Conv2d(in_channels, base, 7, bias=True), _norm(base), nn.ReLU(True)]
        ch = base
        for _ in range(2):
            layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1, bias=True, padding_mode=pad_mode), _norm(ch * 2),
                       nn.ReLU(True)]
            ch *= 2
        layers += [ResnetBlock(ch) for _ in range(blocks)]
        for _ in range(2):
            if upsample == "transposed":
                up: list[nn.Module] = [nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1, bias=True)]
            else:
                up = [nn.Upsample(scale_factor=2, mode=upsample),
                      nn.Conv2d(ch, ch // 2, 3, padding=1, bias=True, padding_mode=pad_mode)]
            layers += [*up, _norm(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [ReflectionPad2d(3), nn.Conv2d(ch, out_channels, 7), nn.Tanh()]
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


class LayerInstanceNorm(nn.Module):
    """Per-sample normalisation over (C, H, W) with a scalar affine: keras-contrib InstanceNormalization(axis=None)."""

    def __init__(self, eps: float = 1e-3):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The scalar affine goes into group_norm's own per-channel affine (the scalar expanded, a view):
        # the same maths, but one fused kernel instead of two more full passes over the activation
        # forward (and four backward: the scalars' gradients were a multiply and a sum each).
        c = x.shape[1]
        return F.group_norm(x, 1, self.weight.expand(c), self.bias.expand(c), self.eps)


class SameConv(nn.Conv2d):
    """A 4x4 conv with Keras ``padding='same'``: TF puts the odd pixel of padding at the bottom and right."""

    def __init__(self, cin: int, cout: int, stride: int, reflect: bool = False):
        # Zero padding of 1 on every side at stride 2 is the conv's own padding (no padded copy of the
        # input, and no sliced gradient copied back out of one in the backward pass); the other
        # cases pad explicitly (reflection, and stride 1's uneven 1 + 2).
        own = stride == 2 and not reflect
        super().__init__(cin, cout, 4, stride=stride, padding=1 if own else 0)
        # total padding for an even input: 2 at stride 2 (1 + 1), 3 at stride 1 (1 + 2)
        self.pad = None if own else (1, 1, 1, 1) if stride == 2 else (1, 2, 1, 2)
        self.pad_mode = "reflect" if reflect else "constant"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = reflect_pad(x, self.pad) if self.pad_mode == "reflect" else F.pad(x, self.pad)
        return super().forward(x)


class _Down(nn.Sequential):
    def __init__(self, cin: int, cout: int, norm: bool = True, reflect: bool = False):
        # in place: the conv's output is needed by nothing else (its backward needs its input)
        super().__init__(SameConv(cin, cout, 2, reflect), nn.LeakyReLU(0.2, inplace=True),
                         *([LayerInstanceNorm()] if norm else []))


def _upsample(x: torch.Tensor, mode: str) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int, upsample: str = "nearest", reflect: bool = False):
        super().__init__()
        self.conv = SameConv(cin, cout, 1, reflect)
        self.norm = LayerInstanceNorm()
        self.mode = upsample

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = _upsample(x, self.mode)
        return torch.cat([self.norm(F.relu(self.conv(x), inplace=True)), skip], dim=1)


class UNetGenerator(nn.Module):
    """The authors' U-Net translator: image -> image of the same size (a multiple of 16), in [-1, 1]."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, base: int = 32, upsample: str = "nearest",
                 padding: str = "zero"):
        super().__init__()
        check_generator_options(upsample, padding, ("nearest", "bilinear"))
        r = padding == "reflect"
        w = [base, base * 2, base * 4, base * 8]
        self.down = nn.ModuleList([_Down(in_channels, w[0], reflect=r), _Down(w[0], w[1], reflect=r),
                                   _Down(w[1], w[2], reflect=r), _Down(w[2], w[3], reflect=r)])
        # each up block sees the previous block's output concatenated with its skip: 2 x its width
        self.up = nn.ModuleList([_Up(w[3], w[2], upsample, r), _Up(2 * w[2], w[1], upsample, r),
                                 _Up(2 * w[1], w[0], upsample, r)])
        self.out = SameConv(2 * w[0], out_channels, 1, r)
        self.mode = upsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = block(x, skip)
        return torch.tanh(self.out(_upsample(x, self.mode)))


class KerasPatchDiscriminator(nn.Sequential):
    """The authors' discriminator: image -> (size/16)^2 map of real/fake scores (MSE targets 1 and 0)."""

    def __init__(self, in_channels: int = 1, base: int = 64):
        super().__init__(_Down(in_channels, base, norm=False), _Down(base, base * 2), _Down(base * 2, base * 4),
                         _Down(base * 4, base * 8), SameConv(base * 8, 1, 1))


class ThumbnailTwin(nn.Module):
    """A discriminator that also judges the image shrunk to ``side`` px by a second, same-architecture
    discriminator (multi-scale discriminators, Wang et al. 2018, pix2pixHD): returns both score maps.

    Why (issue 19): a PatchGAN at full size judges patches, so nothing in the objective penalises what a
    thumbnail shows, the framing and the large-scale brightness of the whole chest; yet that is where a
    linear probe on 32 px thumbnails tells the synthetic images from real COVID-19 (bench/results/recipe-thumb/).
    The shrink is an area average, the same low-pass that any thumbnail is."""

    def __init__(self, make: Callable[[], nn.Module], side: int):
        super().__init__()
        self.side = side
        self.full, self.thumb = make(), make()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.full(x), self.thumb(F.adaptive_avg_pool2d(x, self.side))


def check_generator_options(upsample: str, padding: str, upsamples: tuple[str, ...]) -> None:
    """Refuse an upsampling or padding a generator does not have (an arch dict from elsewhere)."""
    if upsample not in upsamples:
        raise ValueError(f"upsample must be one of {list(upsamples)} for this generator, not {upsample!r}")
    if padding not in ("zero", "reflect"):
        raise ValueError(f"padding must be 'zero' or 'reflect', not {padding!r}")


def spectral_norm_(net: nn.Module, generator: torch.Generator) -> nn.Module:
    """Spectral normalisation (one power iteration per forward) on every conv of ``net``, in place.

    Applied after :func:`init_weights`: the parametrisation keeps the initialised weight as its
    ``original`` and divides by its largest singular value at each call. Its ``u``/``v`` vectors are
    buffers, so a checkpoint holds them and a resumed run continues the same iteration. torch draws
    their starting values from the global RNG, which is not seeded per run: they are drawn here under
    a global seed taken from ``generator`` (and the global RNG is put back afterwards).
    """
    from torch.nn.utils.parametrizations import spectral_norm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(generator.initial_seed())
        for m in list(net.modules()):
            if isinstance(m, nn.Conv2d):
                spectral_norm(m)
    return net


def init_weights(net: nn.Module, gain: float = 0.02, generator: torch.Generator | None = None,
                 scheme: str = "normal") -> nn.Module:
    """Conv weights N(0, gain) (the canonical 'normal' init) or Glorot uniform (Keras's default); zero biases."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            with torch.no_grad():
                if scheme == "glorot":
                    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
                    bound = (6.0 / (fan_in + fan_out)) ** 0.5
                    m.weight.uniform_(-bound, bound, generator=generator)
                else:
                    m.weight.normal_(0.0, gain, generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
    return net


def build_generator(arch: dict) -> nn.Module:
    """The generator an ``arch`` dict describes (as saved in ``generator.json`` and the safetensors metadata)."""
    name = arch.get("name", "resnet_generator")
    io = {k: arch[k] for k in ("in_channels", "out_channels") if k in arch}
    # upsample/padding are written only when they differ from the network's own (older files lack them)
    opts = {k: arch[k] for k in ("upsample", "padding") if k in arch}
    if name == "unet_generator":
        return UNetGenerator(**io, base=arch.get("base", 32), **opts)
    if name == "resnet_generator":
        return ResnetGenerator(**io, **{k: arch[k] for k in ("base", "blocks") if k in arch}, **opts)
    raise ValueError(f"unknown generator architecture {name!r}")


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


def unet_generator_macs(size: int = 256, channels: int = 1, base: int = 32) -> int:
    """Multiply-accumulates of one U-Net generator forward at ``size`` x ``size`` (analytic, 4x4 kernels)."""
    w = [base, base * 2, base * 4, base * 8]
    macs, s, cin = 0, size, channels
    for c in w:  # down blocks: output s/2 x s/2
        s //= 2
        macs += s * s * cin * c * 16
        cin = c
    for cin_up, cout in ((w[3], w[2]), (2 * w[2], w[1]), (2 * w[1], w[0])):  # up blocks: output 2s x 2s
        s *= 2
        macs += s * s * cin_up * cout * 16
    return macs + size * size * 2 * w[0] * channels * 16
