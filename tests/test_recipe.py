"""The recipe options of issue 19 (augment.py, the networks' upsample/padding, spectral norm, EMA) and the
``refined`` preset: each trains, does what it claims, resumes exactly and regenerates through ``generate``;
the ``paper`` and ``canonical`` recipes are unchanged by them."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cxrsynth.core.config import resolve, to_dict
from cxrsynth.core.errors import ConfigError
from cxrsynth.stages.translate.augment import POLICIES, apply, diff_augment, draw
from cxrsynth.stages.translate.card import PRESET_WORDS
from cxrsynth.stages.translate.checkpoint import latest_checkpoint, load_generator
from cxrsynth.stages.translate.networks import ResnetGenerator, UNetGenerator, build_generator, init_weights
from cxrsynth.stages.translate.train import PRESETS, resolve_train_config, train

from .conftest import copy_workdir
from .test_train import _run_killed_and_resumed, _tensors

REPO = Path(__file__).resolve().parents[1]
# the paper recipe shrunk to the 8-image plan: 32 px, batch 4 (one keras update per epoch)
SMALL = ["preset=paper", "size=32", "base=8", "disc_base=8", "batch_size=4", "epochs_constant=4",
         "save_every=1", "sample_every=2"]
OPTIONS = {
    "diffaug": ["diff_augment=color,translation,cutout"],
    "resize": ["upsample=bilinear", "reflect_pad=true"],
    "sn": ["spectral_norm=true"],
    "ema": ["ema_decay=0.9"],
    "decay": ["epochs_constant=1", "epochs_decay=2"],
    "refined": ["preset=refined", "epochs_constant=1", "epochs_decay=2"],
    "thumb": ["disc_thumbnail=16"],
    "thumbsum": ["disc_thumbnail=16", "disc_views=sum"],
}


def test_options_are_validated_and_default_to_the_existing_recipes():
    for bad, match in ((["diff_augment=color,blur"], "subset"), (["diff_augment=color,color"], "twice"),
                       (["preset=paper", "upsample=transposed"], "U-Net"), (["ema_decay=1.0"], "ema_decay"),
                       (["ema_decay=0"], "ema_decay"), (["upsample=cubic"], "upsample"),
                       (["preset=paper", "size=128", "disc_thumbnail=24"], "multiple of 16"),
                       (["preset=paper", "size=128", "disc_thumbnail=128"], "below size"),
                       (["size=128", "disc_thumbnail=4"], "multiple of 8"),
                       (["preset=refined", "disc_views=sum"], "set disc_thumbnail too"),
                       (["preset=refined-thumbnail", "size=128", "disc_views=max"], "disc_views")):
        with pytest.raises(ConfigError, match=match):
            resolve_train_config(overrides=bad)
    for preset in ("canonical", "paper"):
        cfg = resolve_train_config(overrides=[f"preset={preset}"])
        assert (cfg.diff_augment, cfg.upsample, cfg.reflect_pad, cfg.spectral_norm, cfg.ema_decay) == \
            ("", "auto", False, False, None)
        assert not {"upsample", "padding"} & set(cfg.arch())  # the exported description is as before
    ref = resolve_train_config(overrides=["preset=refined"])
    assert ref.generator == "unet" and ref.loop == "keras" and ref.batch_size == 16
    assert (ref.upsample_mode, ref.reflect_pad, ref.spectral_norm) == ("bilinear", True, True)
    assert ref.diff_augment == "" and ref.ema_decay == 0.999 and (ref.epochs_constant, ref.epochs_decay) == (100, 0)
    assert ref.arch()["upsample"] == "bilinear" and ref.arch()["padding"] == "reflect"


def _assert_same_recipe(old: dict, new: dict, run_specific: set[str]) -> None:
    """A committed run's config.json (``old``) and a config resolved now (``new``) agree on every field of
    ``old`` but the run-specific ones."""
    assert {k: old[k] for k in old if k not in run_specific} == {k: new[k] for k in old if k not in run_specific}


def test_paper_preset_resolves_to_the_committed_paper_run_config():
    """The committed paper translators' config, minus the run's own settings, is what the preset gives today."""
    old = json.loads((REPO / "bench/results/paper-translators/normal-covid/config.json").read_text())
    run_specific = {"size", "max_steps", "save_every", "sample_every", "channels_last", "device", "precision"}
    new = to_dict(resolve_train_config(overrides=["preset=paper", "size=128"]))
    _assert_same_recipe(old, new, run_specific)
    assert len(set(old) - run_specific) >= 20


def test_refined_preset_resolves_to_the_committed_recipe_rse_config():
    """`refined` is the recipe that was measured: the committed recipe-rse translators were trained as `paper`
    plus four --set values, and the preset gives the same config (bench/results/recipe-rse/README.md)."""
    for task in ("normal-covid", "pneumonia-covid"):
        old = json.loads((REPO / f"bench/results/recipe-rse-translators/{task}/config.json").read_text())
        assert old["preset"] == "paper" and old["upsample"] == "bilinear" and old["spectral_norm"] is True
        run_specific = {"preset", "task", "size", "max_steps", "save_every", "sample_every", "channels_last",
                        "device", "precision"}
        new = to_dict(resolve_train_config(overrides=["preset=refined", "size=128", f"task={task}"]))
        _assert_same_recipe(old, new, run_specific)


def test_refined_thumbnail_preset_resolves_to_the_committed_recipe_thumb_config():
    """`refined-thumbnail` is what was measured: the committed recipe-thumb translators were trained as
    `refined` plus disc_thumbnail=32 (bench/results/recipe-thumb/README.md), and the preset gives that config."""
    for task in ("normal-covid", "pneumonia-covid"):
        old = json.loads((REPO / f"bench/results/recipe-thumb-translators/{task}/config.json").read_text())
        assert old["preset"] == "refined" and old["disc_thumbnail"] == 32
        run_specific = {"preset", "task", "size", "max_steps", "save_every", "sample_every", "channels_last",
                        "device", "precision", "keep_checkpoints"}
        new = to_dict(resolve_train_config(overrides=["preset=refined-thumbnail", "size=128", f"task={task}"]))
        _assert_same_recipe(old, new, run_specific)
        assert len(set(old) - run_specific) >= 25
    with pytest.raises(ConfigError, match="below size"):  # a 32 px thumbnail needs images larger than 32 px
        resolve_train_config(overrides=["preset=refined-thumbnail", "size=32"])


def test_the_committed_256px_refined_thumbnail_pair_is_the_preset_at_256px():
    """The 256 px translators in bench/results/thumb256-translators/ were trained with `--preset
    refined-thumbnail --size 256` to the whole schedule, and the preset still resolves to their config."""
    run_specific = {"task", "max_steps", "save_every", "sample_every", "channels_last", "device", "precision"}
    for task in ("normal-covid", "pneumonia-covid"):
        folder = REPO / f"bench/results/thumb256-translators/{task}"
        old = json.loads((folder / "config.json").read_text())
        report = json.loads((folder / "train_report.json").read_text())
        assert old["preset"] == "refined-thumbnail" and old["size"] == 256 and old["disc_thumbnail"] == 32
        assert report["finished"] and report["steps"] == report["total_steps"] == 700
        new = to_dict(resolve_train_config(overrides=["preset=refined-thumbnail", "size=256", f"task={task}"]))
        _assert_same_recipe(old, new, run_specific)


def test_the_committed_256px_release_comes_from_that_pair_on_its_split():
    """bench/results/sample-release-thumb256/ was released from the fp32 originals of the generators committed
    in fp16 beside it, finished, on the split their fidelity was scored on, and holds 256 px images."""
    release = REPO / "bench/results/sample-release-thumb256"
    manifest = json.loads((release / "manifest.json").read_text())
    translators = {t["task"]: t for t in manifest["translators"]}
    assert set(translators) == {"normal-covid", "pneumonia-covid"}
    for task, t in translators.items():
        committed = json.loads((REPO / f"bench/results/thumb256-translators/{task}/generator-fp16.json").read_text())
        assert t["generator_sha256"] == committed["fp32_sha256"]
        assert t["preset"] == "refined-thumbnail" and t["arch"]["size"] == 256 and t["finished"]
    split = json.loads((REPO / "bench/results/thumb256-translators/split.json").read_text())
    assert manifest["split_assignment_sha256"] == split["split_assignment_sha256"]
    assert "8-bit grayscale 256x256 PNG" in (release / "card.md").read_text()


@pytest.mark.parametrize("option", list(OPTIONS))
def test_each_option_trains_and_exports(option, planned_workdir, tmp_path):
    run = tmp_path / option
    cfg = resolve_train_config(overrides=SMALL + OPTIONS[option] + ["max_steps=3"])
    rep = train(planned_workdir, cfg, out_dir=run)
    assert rep["steps"] == 3 and all(np.isfinite(v) for v in rep["last_losses"].values())
    saved = json.loads((run / "config.json").read_text())
    for kv in OPTIONS[option]:
        key, value = kv.split("=", 1)
        assert str(saved[key]).lower() == value.lower() or saved[key] == float(value)
    net, info = load_generator(run / "generator.safetensors")
    assert info["arch"] == cfg.arch() and info["arch"]["preset"] == cfg.preset
    card = (run / "README.md").read_text()  # the translator's card names its recipe
    assert "U-Net" in card and PRESET_WORDS[cfg.preset] in card
    with torch.no_grad():
        assert net(torch.zeros(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    tensors = load_file(str(latest_checkpoint(run) / "tensors.safetensors"))
    assert any("parametrizations.weight.original" in k for k in tensors) == (option in ("sn", "refined"))
    assert any(k.startswith("net.EMA_G_A.") for k in tensors) == (option in ("ema", "refined"))
    assert any(k.startswith("net.D_A.thumb.") for k in tensors) == option.startswith("thumb")
    assert ("16 px thumbnails" in card) == option.startswith("thumb")
    assert ("adds to the full-size one's" in card) == (option == "thumbsum")
    with open(run / "losses.csv", newline="") as fh:
        lrs = [float(r["lr"]) for r in csv.DictReader(fh)]
    # the log's lr is the rate after the step's scheduler update: epochs done = step // steps_per_epoch; the
    # linear decay (over epochs_decay + 1, as junyanz's rule) runs in the keras loop as in the canonical one
    done = [s // rep["steps_per_epoch"] for s in range(1, 4)]
    ec, ed = cfg.epochs_constant, cfg.epochs_decay
    assert lrs == [pytest.approx(2e-4 * (1 - max(0, e + 1 - ec) / (ed + 1)), rel=1e-3) for e in done]  # 4 digits
    assert (lrs[-1] < lrs[0]) == (option in ("decay", "refined"))


def test_thumbnail_discriminator_judges_only_the_shrunk_image_and_weighs_as_much_as_the_full_one():
    """disc_thumbnail: the second discriminator sees the area-average thumbnail, so two images with the same
    thumbnail get the same thumbnail scores (and different full-size ones); the GAN loss averages the two
    views, each view's own mean-squared error counted once whatever its map size."""
    from cxrsynth.stages.translate.losses import GANLoss
    from cxrsynth.stages.translate.networks import KerasPatchDiscriminator, ThumbnailTwin

    torch.manual_seed(0)
    d = ThumbnailTwin(lambda: KerasPatchDiscriminator(1, 8), 16).eval()
    x = torch.rand(2, 1, 64, 64)
    # a zero-mean checkerboard within each 4x4 block: the same 16 px area average, other full-size pixels
    board = (torch.arange(64)[:, None] + torch.arange(64)[None]) % 2 * 0.2 - 0.1
    full_a, thumb_a = d(x)
    full_b, thumb_b = d(x + board)
    assert full_a.shape == (2, 1, 4, 4) and thumb_a.shape == (2, 1, 1, 1)
    assert torch.allclose(thumb_a, thumb_b, atol=1e-6) and not torch.allclose(full_a, full_b, atol=1e-3)
    gan = GANLoss("lsgan")
    both = gan((full_a, thumb_a), True)
    assert torch.isclose(both, (gan(full_a, True) + gan(thumb_a, True)) / 2)
    assert not torch.isclose(both, gan(torch.cat([full_a.flatten(), thumb_a.flatten()]), True))
    # disc_views=sum: the full-size view keeps the weight a lone discriminator has, the thumbnail's adds to it
    assert torch.isclose(GANLoss("lsgan", views="sum")((full_a, thumb_a), True), gan(full_a, True) + gan(thumb_a, True))
    with pytest.raises(ValueError, match="views"):
        GANLoss("lsgan", views="max")


def test_diff_augment_is_seeded_differentiable_and_pairs_real_and_fake():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.rand(3, 1, 16, 16, generator=g) * 2 - 1, torch.rand(3, 1, 16, 16, generator=g) * 2 - 1
    assert diff_augment(real, (), torch.Generator()) is real
    p1, p2 = draw(POLICIES, 3, 16, torch.Generator().manual_seed(5)), draw(POLICIES, 3, 16, torch.Generator().manual_seed(5))
    assert all(torch.equal(p1[k], p2[k]) for k in p1)
    assert not torch.equal(apply(real, p1), apply(real, draw(POLICIES, 3, 16, torch.Generator().manual_seed(6))))
    # one draw, applied to a pair: the same shift moves both, the same square is cut from both
    p = draw(("translation", "cutout"), 3, 16, torch.Generator().manual_seed(1))
    p["shift"] = torch.tensor([[2, -1], [0, 0], [-2, 2]])
    out_r, out_f = apply(real, p), apply(fake, p)
    for i, ((sy, sx), (cy, cx)) in enumerate(zip(p["shift"].tolist(), p["cutout"].tolist())):
        cut = torch.zeros(16, 16, dtype=torch.bool)
        cut[max(0, cy - 4):cy + 4, max(0, cx - 4):cx + 4] = True  # the 8x8 square centred there, clipped
        ys, xs = slice(max(0, -sy), 16 - max(0, sy)), slice(max(0, -sx), 16 - max(0, sx))
        src_y, src_x = slice(ys.start + sy, ys.stop + sy), slice(xs.start + sx, xs.stop + sx)
        for out, src in ((out_r, real), (out_f, fake)):
            assert cut.any() and bool((out[i, 0][cut] == 0).all())
            kept = ~cut[ys, xs]
            assert torch.equal(out[i, 0, ys, xs][kept], src[i, 0, src_y, src_x][kept])
    # differentiable in the image: the generator's adversarial loss reaches it through D's augmented input
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    q = draw(POLICIES, 2, 8, torch.Generator().manual_seed(2))
    assert torch.autograd.gradcheck(lambda t: apply(t, q), (x,))


def _nyquist_share(y: torch.Tensor) -> float:
    """Share of the (border-trimmed) output's spectral energy on the Nyquist row and column: a
    checkerboard's frequency."""
    y = y[0, 0, 8:-8, 8:-8] - y[0, 0, 8:-8, 8:-8].mean()
    f = torch.fft.fft2(y).abs() ** 2
    n = y.shape[0]
    return float((f[n // 2, :].sum() + f[:, n // 2].sum()) / f.sum())


def test_resize_convolution_paints_no_checkerboard():
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    smooth = (0.5 * torch.sin(3 * xx) + 0.4 * yy)[None, None]
    with torch.no_grad():
        for seed in range(3):
            def resnet(up):
                net = ResnetGenerator(1, 1, 8, 2, up, "reflect")
                return init_weights(net, generator=torch.Generator().manual_seed(seed))(smooth)

            resized = _nyquist_share(resnet("bilinear"))
            assert resized < 0.01 and _nyquist_share(resnet("transposed")) > 10 * resized
        # the U-Net with reflection padding: a constant image stays constant in space (no border, no pattern)
        const = torch.full((1, 1, 64, 64), 0.3)
        for pad, flat in (("reflect", True), ("zero", False)):
            net = init_weights(UNetGenerator(1, 1, 8, "bilinear", pad), generator=torch.Generator().manual_seed(0),
                               scheme="glorot")
            assert (float(net(const).std()) < 1e-5) == flat


def test_reflection_padding_stays_in_the_activations_dtype_under_autocast(monkeypatch):
    """CPU autocast runs reflection_pad2d in fp32, which cost two full casts per padded conv. The networks
    pad in the activation's own dtype instead: the padded tensor stays bf16, the outputs are identical to
    padding in fp32, and the gradients differ only by bf16 rounding at reflected borders."""
    import torch.nn.functional as F

    from cxrsynth.stages.translate import networks

    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        act = torch.rand(2, 4, 8, 8).to(torch.bfloat16)
        assert F.pad(act, (1, 2, 1, 2), mode="reflect").dtype == torch.float32  # what autocast does to torch's pad
        assert networks.reflect_pad(act, (1, 2, 1, 2)).dtype == torch.bfloat16
        assert networks.ReflectionPad2d(1)(act).dtype == torch.bfloat16
        assert torch.equal(networks.reflect_pad(act, (1, 2, 1, 2)).float(), F.pad(act, (1, 2, 1, 2), mode="reflect"))

    def run(net, amp=True):
        net.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            y = net(x)
        y.float().square().mean().backward()
        return y.detach(), torch.cat([p.grad.flatten() for p in net.parameters()])

    def rel(a, b):
        return float((a - b).norm() / b.norm())

    for make in (lambda: UNetGenerator(1, 1, 8, "bilinear", "reflect"), lambda: ResnetGenerator(1, 1, 8, 1, "bilinear", "zero")):
        net = init_weights(make(), generator=torch.Generator().manual_seed(0))
        y_new, g_new = run(net)
        _, g_fp32 = run(net, amp=False)
        with monkeypatch.context() as m:  # torch's own padding, which autocast runs in fp32
            m.setattr(networks, "reflect_pad", lambda t, pad: F.pad(t, pad, mode="reflect"))
            y_old, g_old = run(net)
        assert torch.equal(y_new, y_old)
        # measured: 0.4% apart, while bf16 autocast itself is 2-7% from fp32; and no farther from fp32
        assert rel(g_new, g_old) < 0.25 * rel(g_old, g_fp32)
        assert rel(g_new, g_fp32) < 1.1 * rel(g_old, g_fp32)


def test_refined_preset_killed_and_resumed_reaches_the_same_weights(planned_workdir, tmp_path):
    """`cxrsynth train --preset refined` (the paper's Keras-GAN loop with every option on, a decay added)
    killed part-way and resumed: every tensor (EMA and spectral-norm vectors included) equals the
    uninterrupted run's, and the published generator is the average, not the raw weights. (It also stands
    for the `paper` preset's resume, whose loop it shares: one test of three processes, not two.)"""
    full, killed = tmp_path / "full", tmp_path / "killed"
    sets = SMALL[1:] + ["epochs_constant=3", "epochs_decay=3", "ema_decay=0.9",
                        "diff_augment=color,translation,cutout"]

    def cmd(out, *extra):
        return [sys.executable, "-m", "cxrsynth.cli", "-w", str(planned_workdir), "train", "--task", "normal-covid",
                "--preset", "refined", "--out", str(out), "--max-steps", "6", *extra] \
            + [x for kv in sets for x in ("--set", kv)]

    _run_killed_and_resumed(cmd, full, killed, 2, 6)
    a, b = _tensors(full), _tensors(killed)
    assert a.keys() == b.keys() and [k for k in a if not torch.equal(a[k], b[k])] == []
    ema = {k[len("net.EMA_G_A."):]: v for k, v in b.items() if k.startswith("net.EMA_G_A.")}
    raw = {k[len("net.G_A."):]: v for k, v in b.items() if k.startswith("net.G_A.")}
    assert ema.keys() == raw.keys() and any(not torch.equal(ema[k], raw[k]) for k in ema)
    published = load_file(str(killed / "generator.safetensors"))
    assert all(torch.equal(published[k], ema[k]) for k in ema)
    assert any(k.endswith("_u") for k in b)  # spectral norm's power-iteration vectors are checkpointed
    rep, saved = (json.loads((killed / f).read_text()) for f in ("train_report.json", "config.json"))
    assert rep["steps"] == 6 and rep["preset"] == "refined" and rep["steps_per_epoch"] == 1
    assert (saved["preset"], saved["generator"], saved["loop"]) == ("refined", "unet", "keras")
    card = (killed / "README.md").read_text()
    assert "U-Net" in card and PRESET_WORDS["refined"] in card and "spectral norm in the discriminators" in card
    assert load_generator(killed / "generator.safetensors")[1]["arch"]["preset"] == "refined"


def test_generator_with_new_arch_fields_regenerates_through_generate(planned_workdir, tmp_path):
    """A refined translator in a work folder: `generate` rebuilds the bilinear, reflect-padded U-Net from the
    file's arch alone, and its PNG equals the network rebuilt by hand from the weights."""
    from cxrsynth.artifacts import GeneratedSet
    from cxrsynth.stages.generate import GenerateConfig
    from cxrsynth.pipeline import generate_in
    from cxrsynth.data.images import load_canonical
    from cxrsynth.data.records import read_records

    wd = copy_workdir(planned_workdir, tmp_path / "wd")
    shutil.rmtree(wd / "translators", ignore_errors=True)  # the session's `trained` fixture trains in place
    train(wd, resolve_train_config(overrides=["preset=refined", "size=64", "base=8", "disc_base=8", "batch_size=4",
                                              "epochs_constant=1", "epochs_decay=1", "max_steps=2"]))
    path = wd / "translators/normal-covid/generator.safetensors"
    net, info = load_generator(path)
    assert info["arch"]["upsample"] == "bilinear" and info["arch"]["padding"] == "reflect"
    assert net.mode == "bilinear" and net.out.pad_mode == "reflect"
    by_hand = UNetGenerator(1, 1, 8, upsample="bilinear", padding="reflect")
    by_hand.load_state_dict(load_file(str(path)))
    generate_in(wd, resolve(GenerateConfig, overrides=["limit=2", "configs=g_nc", "workers=0", "precision=fp32"]))
    gen = GeneratedSet(wd / "generated")
    p = gen.provenance("g_nc")[0]
    m = json.loads(gen.private_mapping("g_nc", "shard-00000").read_text().splitlines()[0])
    rec = {r.record_id: r for r in read_records(wd / "records.parquet")}[m["record_id"]]
    x = torch.from_numpy(load_canonical(rec.path, 64)).float()[None, None] / 127.5 - 1
    with torch.no_grad():
        y = ((by_hand(x).clamp(-1, 1) + 1) * 127.5).round().byte()[0, 0].numpy()
    assert np.array_equal(np.asarray(Image.open(gen.image(p))), y)
    # the same weights under the old (nearest, zero-padded) architecture give another image
    old = build_generator({"name": "unet_generator", "in_channels": 1, "out_channels": 1, "base": 8})
    old.load_state_dict(load_file(str(path)))
    with torch.no_grad():
        assert not torch.equal(old(x), by_hand(x))
    assert "refined" in PRESETS
