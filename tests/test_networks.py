"""The networks match the canonical CycleGAN's sizes; losses and the pool behave as documented."""

from __future__ import annotations

import torch

from cxrsynth.stages.translate.losses import GANLoss
from cxrsynth.stages.translate.networks import (PatchDiscriminator, ResnetGenerator, count_parameters, default_blocks,
                                         generator_macs, init_weights)
from cxrsynth.stages.translate.pool import ImagePool
from cxrsynth.stages.translate.train import seeded


def test_canonical_sizes():
    g = ResnetGenerator(1, 1, 64, 9)
    d = PatchDiscriminator(1, 64)
    assert round(count_parameters(g) / 1e6, 2) == 11.37
    assert round(count_parameters(d) / 1e6, 2) == 2.76
    # 48.7 G multiply-adds, as torch's own counter says; the "about 56 G" quoted for the canonical
    # generator counts each transposed conv once per *output* pixel (4x its real work).
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc, torch.no_grad():
        g(torch.zeros(1, 1, 256, 256))
    assert generator_macs(256, 1, 64, 9) * 2 == fc.get_total_flops()
    assert round(generator_macs(256, 1, 64, 9) / 1e9, 1) == 48.7
    assert default_blocks(256) == 9 and default_blocks(128) == 6
    with torch.no_grad():
        assert d(torch.zeros(1, 1, 256, 256)).shape == (1, 1, 30, 30)
        y = ResnetGenerator(1, 1, 8, 2)(torch.randn(2, 1, 64, 64))
    assert y.shape == (2, 1, 64, 64) and y.abs().max() <= 1


def test_init_is_normal_002_and_seeded():
    a = init_weights(ResnetGenerator(1, 1, 8, 2), generator=seeded(0, 1))
    b = init_weights(ResnetGenerator(1, 1, 8, 2), generator=seeded(0, 1))
    w = torch.cat([p.flatten() for n, p in a.named_parameters() if n.endswith("weight")])
    assert abs(w.std().item() - 0.02) < 0.002
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_gan_losses():
    pred = torch.full((1, 1, 4, 4), 0.25)
    assert GANLoss("lsgan")(pred, True).item() == 0.75 ** 2
    assert GANLoss("lsgan")(pred, False).item() == 0.25 ** 2
    v = GANLoss("vanilla")(torch.zeros(1, 1, 2, 2), True).item()
    assert abs(v - torch.log(torch.tensor(2.0)).item()) < 1e-6


def test_pool_fills_then_mixes_deterministically():
    pool_a, pool_b = ImagePool(3), ImagePool(3)
    outs_a, outs_b = [], []
    for step in range(20):
        img = torch.full((1, 1, 2, 2), float(step))
        outs_a.append(pool_a.query(img, seeded(0, step))[0, 0, 0, 0].item())
        outs_b.append(pool_b.query(img, seeded(0, step))[0, 0, 0, 0].item())
    assert outs_a == outs_b
    assert outs_a[:3] == [0.0, 1.0, 2.0]  # filling: the new image comes straight back
    assert any(o < s for s, o in enumerate(outs_a))  # later: older images are returned
    assert ImagePool(0).query(torch.ones(1, 1, 2, 2), seeded(0)).sum() == 4


def test_paper_networks_match_the_authors_keras_models():
    """The authors' U-Net (gf 32) and 16x16 PatchGAN (df 64), with one channel and scalar-affine norms."""
    from torch.utils.flop_counter import FlopCounterMode

    from cxrsynth.stages.translate.networks import (KerasPatchDiscriminator, LayerInstanceNorm, UNetGenerator,
                                             build_generator, unet_generator_macs)

    g, d = UNetGenerator(1, 1, 32), KerasPatchDiscriminator(1, 64)
    assert count_parameters(g) == 1_542_351 and count_parameters(d) == 2_762_695
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        y = g(torch.randn(1, 1, 256, 256))
    assert y.shape == (1, 1, 256, 256) and y.abs().max() <= 1
    assert unet_generator_macs(256, 1, 32) * 2 == fc.get_total_flops()
    assert round(unet_generator_macs(256, 1, 32) / 1e9, 2) == 3.16  # 3.3 G with the authors' 3 channels
    with torch.no_grad():
        assert d(torch.zeros(2, 1, 256, 256)).shape == (2, 1, 16, 16)
        assert d(torch.zeros(2, 1, 128, 128)).shape == (2, 1, 8, 8)
    # keras-contrib InstanceNormalization(axis=None): one mean/var per sample over C, H and W, eps 1e-3
    x = torch.randn(3, 5, 7, 7) * 4 + 2
    norm = LayerInstanceNorm()
    with torch.no_grad():
        norm.weight.fill_(1.5)
        norm.bias.fill_(-0.25)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        var = x.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
        torch.testing.assert_close(norm(x), (x - mean) / torch.sqrt(var + 1e-3) * 1.5 - 0.25)
    assert sum(p.numel() for p in norm.parameters()) == 2
    assert isinstance(build_generator({"name": "unet_generator", "base": 32}), UNetGenerator)


def test_keras_same_padding_and_glorot_init():
    from cxrsynth.stages.translate.networks import SameConv

    conv = SameConv(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
        y = conv(torch.ones(1, 1, 6, 6))
    assert y.shape == (1, 1, 6, 6)
    # TF 'same' with a 4x4 kernel at stride 1 pads 1 before and 2 after: the top-left output sees 3x3 ones,
    # the bottom-right 2x2
    assert y[0, 0, 0, 0] == 9 and y[0, 0, -1, -1] == 4
    assert SameConv(1, 1, 2)(torch.ones(1, 1, 6, 6)).shape == (1, 1, 3, 3)
    net = init_weights(SameConv(16, 32, 2), generator=seeded(0), scheme="glorot")
    bound = (6.0 / (16 * 16 + 32 * 16)) ** 0.5
    assert net.weight.abs().max() <= bound and net.weight.abs().max() > 0.9 * bound
    assert net.bias.abs().max() == 0


def test_fast_paths_compute_the_explicit_maths():
    """The speed-ups of issue 19 (a stride-2 SameConv padding through the conv itself, the norm's scalar
    affine inside group_norm, in-place activations) give the explicit formulas' values and gradients."""
    import torch.nn.functional as F

    from cxrsynth.stages.translate.networks import LayerInstanceNorm, SameConv, UNetGenerator

    g = seeded(3)
    x = torch.randn(2, 6, 10, 10, generator=g, requires_grad=True)
    conv = init_weights(SameConv(6, 4, 2), generator=seeded(4), scheme="glorot")
    with torch.no_grad():
        conv.bias.normal_(generator=g)
    y = conv(x)
    ref = F.conv2d(F.pad(x, (1, 1, 1, 1)), conv.weight, conv.bias, stride=2)
    w = torch.randn(ref.shape, generator=g)
    grads = torch.autograd.grad((y * w).sum(), [x, conv.weight, conv.bias])
    ref_grads = torch.autograd.grad((ref * w).sum(), [x, conv.weight, conv.bias])
    torch.testing.assert_close(y, ref)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b)
    # reflection and stride 1 keep their explicit padding
    assert SameConv(6, 4, 2, reflect=True).pad == (1, 1, 1, 1) and SameConv(6, 4, 1).pad == (1, 2, 1, 2)

    norm = LayerInstanceNorm()
    with torch.no_grad():
        norm.weight.fill_(1.5)
        norm.bias.fill_(-0.25)
    z = (x.detach() * 3 + 1).requires_grad_()
    out = norm(z)
    mean, var = z.mean(dim=(1, 2, 3), keepdim=True), z.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
    ref = (z - mean) / torch.sqrt(var + 1e-3) * norm.weight + norm.bias
    w = torch.randn(out.shape, generator=g)
    got = torch.autograd.grad((out * w).sum(), [z, norm.weight, norm.bias])
    want = torch.autograd.grad((ref * w).sum(), [z, norm.weight, norm.bias])
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)

    # the whole U-Net still trains: a finite gradient reaches every parameter
    net = init_weights(UNetGenerator(1, 1, 4), generator=seeded(5), scheme="glorot")
    net(torch.randn(2, 1, 32, 32, generator=g)).square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
