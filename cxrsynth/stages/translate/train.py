"""``cxrsynth train --task normal-covid|pneumonia-covid``: one CycleGAN translator, resumable exactly.

Reads ``plan.json`` (the balanced training sets) and ``records.parquet``; writes into
``translators/<task>/``: ``config.json`` (resolved config), ``losses.csv``, ``samples/step-*.png``
(rows: source, translated, reconstructed), ``checkpoints/`` (see ``checkpoint.py``),
``generator.safetensors`` + ``generator.json`` (the published A -> COVID-19 translator),
``private/reverse_generator.safetensors`` (never published; the audit uses it), ``README.md`` (model
card) and ``train_report.json``.

Determinism: every random draw (weight init, data order, crops, flips, pool choices) comes from a
generator seeded by (seed, step, ...), and the checkpoint holds everything else, so on the CPU a run
killed and resumed with ``--resume`` reaches the same weights as an uninterrupted run.

Devices: CPU, CUDA and Apple MPS, with bf16 autocast where the hardware has it (``device.py``); several GPUs or CPU
processes through ``torchrun`` (DistributedDataParallel; NCCL on CUDA, gloo on the CPU).
"""

from __future__ import annotations

import csv
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torch import nn

from ... import __version__
from ...core.config import at_least, positive, resolve, to_dict
from ...core.errors import ConfigError, DataNotFoundError
from ...data.images import load_canonical
from ...core.layout import TranslatorFolder, WorkLayout
from ...core.locks import hold
from ...core.paths import atomic_write, read_json, write_json
from ...data.records import read_records
from ...core.runtime import Ranks, Runtime
from ...core.vocab import TASKS, Task
from .augment import diff_augment, parse_policy
from .checkpoint import export_generator, latest_checkpoint, load_checkpoint, save_checkpoint, translator_id
from .compile import begin_step, compile_mode, eager, maybe_compile
from .compile_choice import Workload
from .finite import stop_at_non_finite_loss
from .timing import keep_timing
from .losses import GANLoss
from .networks import (KerasPatchDiscriminator, PatchDiscriminator, ThumbnailTwin, build_generator, default_blocks, init_weights,
                       spectral_norm_)
from .pool import ImagePool

if TYPE_CHECKING:  # markers.py imports scipy.ndimage and skimage: only a run that masks markers needs them
    from .markers import MarkerRecord


#: Named recipes: each is a layer of defaults under whatever is set explicitly (``config.resolve``).
#: ``canonical`` is the junyanz CycleGAN (the class defaults). ``paper`` is every detail of the authors'
#: own notebook (hasibzunair/synthetic-covid-cxr-gen, 2a; REFERENCES.md): U-Net gf 32, 16x16 PatchGAN df 64,
#: scalar-affine instance norm over (C, H, W), MSE adversarial + MAE cycle/identity with lambda_id =
#: 0.1 x lambda_cycle, Adam 2e-4/0.5 at a constant rate, batch 16 for 100 epochs of int(min(nA, nB)/16) - 1
#: updates, no image pool, discriminators first, joint horizontal flips, Glorot-uniform init.
PRESETS: dict[str, dict] = {
    "canonical": {},
    "paper": {
        "generator": "unet", "base": 32, "disc_base": 64, "gan_loss": "lsgan", "lambda_cycle": 10.0,
        "lambda_identity": 0.1, "pool_size": 0, "lr": 2e-4, "beta1": 0.5, "epochs_constant": 100,
        "epochs_decay": 0, "batch_size": 16, "jitter": False, "flip": True, "init": "glorot", "loop": "keras",
    },
}
#: ``refined`` (issue 19): the paper recipe with bilinear resize-convolution and reflection padding in the
#: generators, spectral norm in the discriminators and an EMA generator, on the paper's schedule (700
#: updates at 128 px on the sample). Chosen on held-out fidelity (bench/results/recipe-rse/): one option at
#: a time at 210 updates (bench/results/ablation/), then this combination at full length against the
#: ``paper`` translators. DiffAugment and a linear decay, worse than ``paper`` at 210 updates, are left out;
#: both stay available as options.
PRESETS["refined"] = dict(PRESETS["paper"], upsample="bilinear", reflect_pad=True, spectral_norm=True,
                          ema_decay=0.999)
#: ``refined-thumbnail`` (issue 19): ``refined`` plus a second discriminator per domain that judges the image
#: shrunk to 32 px (``disc_thumbnail``). Why: the pixel probe that told every earlier recipe from real COVID-19
#: (AUROC 0.93-0.96) looks at 32 px thumbnails, where the framing and large-scale brightness that no
#: full-size PatchGAN is asked about show. Same schedule; measured against ``refined`` on the same split
#: (bench/results/recipe-thumb/).
PRESETS["refined-thumbnail"] = dict(PRESETS["refined"], disc_thumbnail=32)


@dataclass(frozen=True)
class TrainConfig:
    """Defaults follow the canonical CycleGAN; see README for what differs (no flips, 1 channel).

    Build one with :func:`resolve_train_config`, which applies the ``preset`` layer.
    """

    task: Task = TASKS[0]
    preset: Literal["canonical", "paper", "refined", "refined-thumbnail"] = "canonical"  # a named recipe (PRESETS) under the fields below
    size: int = 256
    generator: Literal["resnet", "unet"] = "resnet"  # canonical ResNet-9/6 or the authors' U-Net
    blocks: int | None = None  # residual blocks; default 9 at >= 256 px, 6 below
    base: int = 64  # generator width (and the discriminator's unless disc_base is set)
    disc_base: int | None = None  # discriminator width; None: same as base
    init: Literal["normal", "glorot"] = "normal"  # N(0, 0.02) (canonical) or Keras's Glorot uniform
    # canonical: generators first, discriminators on a 50-image history pool, one pass over A per epoch;
    # keras: the Keras-GAN loop (discriminators first, a step on real then one on the current fakes;
    # each epoch int(min(nA, nB) / batch) - 1 batches drawn without replacement from both domains)
    loop: Literal["canonical", "keras"] = "canonical"
    gan_loss: Literal["lsgan", "vanilla"] = "lsgan"  # lsgan (MSE) is also what the authors used
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5  # times lambda_cycle; 0 turns the identity loss off
    pool_size: int = 50
    lr: float = 2e-4
    beta1: float = 0.5
    epochs_constant: int = 100
    epochs_decay: int = 100
    batch_size: int = 1
    jitter: bool = True  # resize to size * 286/256, random crop back (canonical)
    flip: bool = False  # a chest is not left-right symmetric
    # Recipe options (issue 19); each default is the behaviour before them, so canonical and paper are unchanged.
    # DiffAugment policies applied to every discriminator input, real and fake, in the D and G losses
    # (augment.py): a comma-separated subset of color, translation, cutout; "" = none.
    diff_augment: str = ""
    # generator upsampling: auto = the network's own (transposed conv for the ResNet, nearest resize
    # then conv for the U-Net); nearest/bilinear = resize then conv (Odena et al. 2016)
    upsample: Literal["auto", "transposed", "nearest", "bilinear"] = "auto"
    reflect_pad: bool = False  # reflection instead of zero padding in every generator conv
    spectral_norm: bool = False  # spectral normalisation of every discriminator conv
    # exponential moving average of the generators' weights, with the warm-up min(decay, (1+t)/(10+t));
    # the exported generators and the sample grids are the averaged ones. None: no average.
    ema_decay: float | None = None
    # fill the burnt-in markers (letters, arrows, labels) of the COVID-19 training images before training
    # (markers.py), recording each image in the run's markers.jsonl. Off in every preset, refined included:
    # nothing has measured it yet (bench/ablate_translators.py, variant mask_markers).
    mask_markers: bool = False
    # a second discriminator per domain that judges the image shrunk to this many pixels a side
    # (networks.ThumbnailTwin), beside the full-size one; None: full size only. 32 in refined-thumbnail.
    disc_thumbnail: int | None = None
    # how the GAN losses combine the full-size and thumbnail views: mean (refined-thumbnail: each view at half
    # the weight a lone discriminator has) or sum (the full-size view keeps refined's weight and the thumbnail
    # view comes on top). Only with disc_thumbnail.
    disc_views: Literal["mean", "sum"] = "mean"
    seed: int = 0
    max_steps: int | None = None  # stop early (quick runs, tests); the schedule still assumes the epochs above
    save_every: int = 200  # steps between checkpoints (and one at the last step)
    save_every_minutes: float | None = 10.0  # also checkpoint after this much wall time; None: steps only
    log_every: int = 20  # steps between copies of the losses to the host (every step still gets its row)
    sample_every: int = 200  # steps between sample grids
    keep_checkpoints: int = 2
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 where native (see device.py)
    channels_last: bool | None = None  # None: on for CUDA
    # torch.compile of the four networks (compile.py: auto = compiled only where bench_speed.py measured
    # this workload faster compiled on this machine, compile_choice.py; on = inductor, with CUDA graphs
    # on CUDA). Not part of the run: a run may resume with another value.
    compile: Literal["auto", "on", "off"] | bool = "auto"

    def __post_init__(self):
        object.__setattr__(self, "compile", compile_mode(self.compile))  # YAML reads on/off as booleans
        # Every number is checked here, so that 0 or a negative value never silently means something
        # else (max_steps 0 meaning "the full schedule", a negative count meaning "none") or fails
        # later with a traceback.
        at_least("size", self.size, 16)
        if self.size % 4:
            raise ConfigError("size must be a multiple of 4", self.size)
        for name in ("base", "batch_size", "save_every", "sample_every", "keep_checkpoints", "log_every"):
            at_least(name, getattr(self, name), 1)
        if self.blocks is not None:
            at_least("blocks", self.blocks, 1, "leave it out for the default (9 at >= 256 px, 6 below)")
        if self.max_steps is not None:
            at_least("max_steps", self.max_steps, 1, "leave it out to train the whole schedule")
        for name in ("epochs_constant", "epochs_decay", "pool_size", "lambda_cycle", "lambda_identity", "seed"):
            at_least(name, getattr(self, name), 0)
        if self.epochs_constant + self.epochs_decay < 1:
            raise ConfigError("epochs_constant + epochs_decay must be at least 1",
                              (self.epochs_constant, self.epochs_decay))
        positive("lr", self.lr)
        if self.save_every_minutes is not None:
            positive("save_every_minutes", self.save_every_minutes)
        if self.disc_base is not None:
            at_least("disc_base", self.disc_base, 1)
        if not 0 <= self.beta1 < 1:
            raise ConfigError("beta1 must be in [0, 1)", self.beta1)
        if self.generator == "unet" and self.size % 16:
            raise ConfigError("the U-Net generator needs a size that is a multiple of 16", self.size)
        parse_policy(self.diff_augment)
        if self.generator == "unet" and self.upsample == "transposed":
            raise ConfigError("the U-Net generator upsamples by resizing: upsample must be auto, nearest or bilinear",
                              self.upsample)
        if self.disc_thumbnail is not None:
            # the authors' discriminator halves its input four times, the canonical one three times
            need = 16 if self.generator == "unet" else 8
            if not need <= self.disc_thumbnail < self.size or self.disc_thumbnail % need:
                raise ConfigError(f"disc_thumbnail must be a multiple of {need} from {need} up to below size "
                                  f"({self.size}); leave it out for no thumbnail discriminator", self.disc_thumbnail)
        if self.disc_views != "mean" and self.disc_thumbnail is None:
            raise ConfigError("disc_views combines the thumbnail view with the full-size one: set disc_thumbnail "
                              "too, or leave disc_views out", self.disc_views)
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ConfigError("ema_decay must be in (0, 1); leave it out for no average", self.ema_decay)

    @property
    def n_blocks(self) -> int:
        return self.blocks if self.blocks is not None else default_blocks(self.size)

    @property
    def upsample_mode(self) -> str:
        """The generator's upsampling with ``auto`` resolved."""
        if self.upsample != "auto":
            return self.upsample
        return "nearest" if self.generator == "unet" else "transposed"

    def arch(self) -> dict:
        """What ``networks.build_generator`` needs; the recipe options appear only when they change the
        network, so a generator of the existing recipes describes itself (and hashes) as before."""
        native = "nearest" if self.generator == "unet" else "transposed"
        opts = {**({"upsample": self.upsample_mode} if self.upsample_mode != native else {}),
                **({"padding": "reflect"} if self.reflect_pad else {})}
        if self.generator == "unet":
            return {"name": "unet_generator", "in_channels": 1, "out_channels": 1, "base": self.base,
                    "size": self.size, "preset": self.preset, **opts}
        return {"name": "resnet_generator", "in_channels": 1, "out_channels": 1, "base": self.base,
                "blocks": self.n_blocks, "size": self.size, "preset": self.preset, **opts}


#: Fields a resumed run must keep: changing any of them would make it another run.
RUN_DEFINING = ("task", "preset", "size", "generator", "base", "disc_base", "blocks", "init", "loop", "seed",
                "batch_size", "gan_loss", "pool_size", "jitter", "flip", "diff_augment", "upsample", "reflect_pad",
                "spectral_norm", "ema_decay", "mask_markers", "disc_thumbnail", "disc_views")
DEFAULTS = to_dict(TrainConfig())


def resolve_train_config(file=None, overrides=(), base: dict | None = None, prefix: str = "",
                         given: dict | None = None) -> TrainConfig:
    """Defaults <- preset (``preset=...`` in any layer) <- ``base`` <- ``file`` <- ``overrides`` <- ``given``
    (typed command-line options)."""
    return resolve(TrainConfig, file, overrides, base=base, presets=PRESETS, prefix=prefix, given=given)


def seeded(*keys: int) -> torch.Generator:
    """A torch generator determined by ``keys`` alone (seed, step, purpose ...)."""
    state = int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(state)


class TrainingSet:
    """The plan's two balanced image sets, decoded once and held in memory as uint8."""

    def __init__(self, workdir: Path, task: str, size: int, jitter: bool, mask_markers: bool = False):
        layout = WorkLayout(workdir)
        plan = read_json(layout.plan)
        if task not in plan["tasks"]:
            raise ConfigError("task not in plan", task)
        tt = plan["tasks"][task]["translator_train"]
        by_id = {r.record_id: r for r in read_records(layout.records)}
        self.ids = {"A": tt["source"], "B": tt["covid"]}
        # what the translator learns from, for its model card's licence (the records' own licences)
        self.licence_inputs = {"covid": [by_id[r].license for r in tt["covid"] if r in by_id],
                               "sources": sorted({by_id[r].source for r in tt["source"] if r in by_id})}
        load = round(size * 286 / 256) if jitter else size
        self.size, self.load = size, load
        self.images = {}
        self.markers: list[MarkerRecord] | None = [] if mask_markers else None  # one per COVID-19 image
        for dom, ids in self.ids.items():
            if not ids:
                raise DataNotFoundError(f"the plan has no {'source' if dom == 'A' else 'covid'} images with pixels for {task}",
                                        layout.plan, "ingest folders with image files, then split and plan again")
            arrs = []
            for rid in ids:
                rec = by_id.get(rid)
                if rec is None or not rec.has_pixels:
                    raise DataNotFoundError("planned training image has no pixels", rid)
                if dom == "B" and self.markers is not None:
                    from .markers import load_clean

                    arr, found = load_clean(rec.path, load, rid)
                    self.markers.append(found)
                    arrs.append(arr)
                else:
                    arrs.append(load_canonical(rec.path, load))
            self.images[dom] = torch.from_numpy(np.stack(arrs)).unsqueeze(1)  # N,1,H,W uint8

    def __len__(self) -> int:
        return max(len(self.images["A"]), len(self.images["B"]))

    def steps_per_epoch(self, loop: str, per_step: int) -> int:
        """Updates in one epoch: a pass over the larger domain (canonical), or the Keras-GAN loader's
        ``int(min(nA, nB) / batch)`` batches less the last one, which its generator never yields."""
        if loop == "keras":
            n = min(len(self.images["A"]), len(self.images["B"])) // per_step - 1
            if n < 1:
                raise ConfigError("the keras loop needs at least two batches of images in each domain",
                                  {k: len(v) for k, v in self.images.items()}, "lower batch_size or plan more images")
            return n
        return max(1, len(self) // per_step)

    def batch(self, epoch: int, index: int, count: int, seed: int, step: int, flip: bool,
              loop: str = "canonical") -> tuple[torch.Tensor, torch.Tensor]:
        """Items ``index .. index+count`` of epoch ``epoch``.

        canonical: A in a seeded order, B drawn at random, independent flips. keras: both domains in a
        seeded order without replacement, and one flip decision per (A, B) pair, as the authors' loader.
        """
        n = len(self)
        nA, nB = len(self.images["A"]), len(self.images["B"])
        perm = torch.randperm(nA, generator=seeded(seed, epoch, 1))
        if loop == "keras":
            perm_b = torch.randperm(nB, generator=seeded(seed, epoch, 2))
            idx = [(int(perm[i]), int(perm_b[i])) for i in range(index, index + count)]
        else:
            rand_b = torch.randint(0, nB, (n,), generator=seeded(seed, epoch, 2))
            idx = [(int(perm[i % nA]), int(rand_b[i])) for i in range(index, index + count)]
        g = seeded(seed, step, index, 3)
        joint = torch.rand(count, generator=g) < 0.5 if (flip and loop == "keras") else None
        out = []
        for dom, col in (("A", 0), ("B", 1)):
            imgs = self.images[dom][[p[col] for p in idx]].float() / 127.5 - 1.0
            if self.load > self.size:
                crops = []
                for im in imgs:
                    y, x = (int(v) for v in torch.randint(0, self.load - self.size + 1, (2,), generator=g))
                    crops.append(im[:, y:y + self.size, x:x + self.size])
                imgs = torch.stack(crops)
            if flip:
                mask = joint if joint is not None else torch.rand(len(imgs), generator=g) < 0.5
                imgs[mask] = imgs[mask].flip(-1)
            out.append(imgs)
        return out[0], out[1]


def build_models(cfg: TrainConfig) -> dict[str, nn.Module]:
    d_base = cfg.disc_base or cfg.base

    def one():
        return KerasPatchDiscriminator(1, d_base) if cfg.generator == "unet" else PatchDiscriminator(1, d_base)

    def disc():
        return one() if cfg.disc_thumbnail is None else ThumbnailTwin(one, cfg.disc_thumbnail)

    # the generator is the one its exported arch dict rebuilds, so training and `generate` cannot disagree
    nets = {"G_A": build_generator(cfg.arch()), "G_B": build_generator(cfg.arch()), "D_A": disc(), "D_B": disc()}
    for i, net in enumerate(nets.values()):
        init_weights(net, 0.02, seeded(cfg.seed, 0, 100 + i), scheme=cfg.init)
    if cfg.spectral_norm:
        for i, k in enumerate(("D_A", "D_B")):
            spectral_norm_(nets[k], seeded(cfg.seed, 0, 200 + i))
    return nets


def _set_grad(nets: list[nn.Module], flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def _inner(net: nn.Module) -> nn.Module:
    return net.module if hasattr(net, "module") else net


class CycleGAN:
    """One optimisation step of the objective in ``losses.py``: generators first, then discriminators."""

    def __init__(self, nets: dict[str, nn.Module], cfg: TrainConfig, rt: Runtime):
        self.nets, self.cfg, self.rt = nets, cfg, rt
        self.gan = GANLoss(cfg.gan_loss, views=cfg.disc_views)
        self.l1 = nn.L1Loss()
        self.pools = {"A": ImagePool(cfg.pool_size), "B": ImagePool(cfg.pool_size)}
        g_params = list(nets["G_A"].parameters()) + list(nets["G_B"].parameters())
        d_params = list(nets["D_A"].parameters()) + list(nets["D_B"].parameters())
        self.opt = {"G": torch.optim.Adam(g_params, lr=cfg.lr, betas=(cfg.beta1, 0.999)),
                    "D": torch.optim.Adam(d_params, lr=cfg.lr, betas=(cfg.beta1, 0.999))}

        def rule(epoch: int) -> float:
            return 1.0 - max(0, epoch + 1 - cfg.epochs_constant) / float(cfg.epochs_decay + 1)

        self.sched = {k: torch.optim.lr_scheduler.LambdaLR(o, rule) for k, o in self.opt.items()}
        self.policy = parse_policy(cfg.diff_augment)
        self.ema: dict[str, nn.Module] = {}
        if cfg.ema_decay is not None:
            for k in ("G_A", "G_B"):
                avg = build_generator(cfg.arch()).to(rt.device)
                avg.load_state_dict(_inner(nets[k]).state_dict())
                self.ema[k] = avg.requires_grad_(False)

    def d_input(self, img: torch.Tensor, step: int, purpose: int) -> torch.Tensor:
        """What a discriminator sees of ``img``: a fresh DiffAugment draw per (step, rank, purpose), or
        ``img`` itself when the recipe has no policy."""
        if not self.policy:
            return img
        return diff_augment(img, self.policy, seeded(self.cfg.seed, step, self.rt.rank, purpose))

    @torch.no_grad()
    def update_ema(self, step: int) -> None:
        """Move the averaged generators towards the trained ones after update ``step`` (0-based); the
        warm-up keeps the early average from being mostly the random initialisation."""
        if not self.ema:
            return
        decay = min(self.cfg.ema_decay, (1 + step) / (10 + step))
        for k, avg in self.ema.items():
            for a, p in zip(avg.state_dict().values(), _inner(self.nets[k]).state_dict().values()):
                if a.is_floating_point():
                    a.lerp_(p.to(a.dtype), 1 - decay)
                else:
                    a.copy_(p)

    def published(self) -> dict[str, nn.Module]:
        """The generators the run exports and draws its sample grids with: the averaged ones when set."""
        return {k: self.ema.get(k, self.nets[k]) for k in ("G_A", "G_B")}

    def checkpointed(self) -> dict[str, nn.Module]:
        """Every network whose weights a checkpoint holds (the averages as ``EMA_G_A``/``EMA_G_B``)."""
        return dict(self.nets, **{f"EMA_{k}": v for k, v in self.ema.items()})

    def autocast(self):
        if self.rt.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.rt.device.type, dtype=self.rt.amp_dtype)

    def step(self, real_A: torch.Tensor, real_B: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        begin_step(self.nets.values())  # CUDA graphs (compile=on on CUDA): a new iteration
        if self.cfg.loop == "keras":
            out = self.step_keras(real_A, real_B, step)
        else:
            out = self.step_canonical(real_A, real_B, step)
        self.update_ema(step)
        return out

    def _generator_losses(self, real_A: torch.Tensor, real_B: torch.Tensor, step: int
                          ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """Adversarial, cycle and identity terms of the generators, and the two fakes.

        The discriminators are called through their inner module: they get no gradients here, and a DDP
        wrapper would otherwise wait for a reduction that never comes."""
        n, c = self.nets, self.cfg
        lam, lam_idt = c.lambda_cycle, c.lambda_identity * c.lambda_cycle
        fake_B = n["G_A"](real_A)
        fake_A = n["G_B"](real_B)
        d_A, d_B = _inner(n["D_A"]), _inner(n["D_B"])
        out = {"G_A": self.gan(d_A(self.d_input(fake_B, step, 24)), True),
               "G_B": self.gan(d_B(self.d_input(fake_A, step, 25)), True),
               "cycle_A": self.l1(n["G_B"](fake_B).float(), real_A) * lam,
               "cycle_B": self.l1(n["G_A"](fake_A).float(), real_B) * lam}
        zero = torch.zeros((), device=real_A.device)
        out["idt_A"] = self.l1(n["G_A"](real_B).float(), real_B) * lam_idt if lam_idt > 0 else zero
        out["idt_B"] = self.l1(n["G_B"](real_A).float(), real_A) * lam_idt if lam_idt > 0 else zero
        return out, fake_B, fake_A

    def step_keras(self, real_A: torch.Tensor, real_B: torch.Tensor, step: int = 0) -> dict[str, torch.Tensor]:
        """The authors' Keras-GAN update: D on real, D on the current fakes (two optimiser steps, no pool),
        then the generators against the updated, frozen discriminators."""
        n = self.nets
        with torch.no_grad(), self.autocast():  # G.predict: fakes from the generators before this update
            fake_B, fake_A = n["G_A"](real_A), n["G_B"](real_B)
        _set_grad([n["D_A"], n["D_B"]], True)
        d_losses = {}
        for target, (img_B, img_A) in ((True, (real_B, real_A)), (False, (fake_B, fake_A))):
            self.opt["D"].zero_grad(set_to_none=True)
            with self.autocast():
                aug_B, aug_A = self.d_input(img_B, step, 20 + 2 * target), self.d_input(img_A, step, 21 + 2 * target)
                l_A, l_B = self.gan(n["D_A"](aug_B), target), self.gan(n["D_B"](aug_A), target)
            (l_A + l_B).backward()
            self.opt["D"].step()
            d_losses[target] = (l_A.detach(), l_B.detach())
        _set_grad([n["D_A"], n["D_B"]], False)
        self.opt["G"].zero_grad(set_to_none=True)
        with self.autocast():
            g = self._generator_losses(real_A, real_B, step)[0]
            loss_G = sum(g.values())
        loss_G.backward()
        self.opt["G"].step()
        _set_grad([n["D_A"], n["D_B"]], True)
        # reported like Keras-GAN's 0.5 * (real + fake) per discriminator
        g["D_A"] = 0.5 * (d_losses[True][0] + d_losses[False][0])
        g["D_B"] = 0.5 * (d_losses[True][1] + d_losses[False][1])
        return {k: v.detach() for k, v in g.items()}

    def step_canonical(self, real_A: torch.Tensor, real_B: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """The canonical update: generators first, then discriminators on real images and pooled fakes."""
        n, c = self.nets, self.cfg
        _set_grad([n["D_A"], n["D_B"]], False)
        self.opt["G"].zero_grad(set_to_none=True)
        with self.autocast():
            g, fake_B, fake_A = self._generator_losses(real_A, real_B, step)
            loss_G = sum(g.values())
        loss_G.backward()
        self.opt["G"].step()
        # Discriminators, on real images and on fakes drawn from the history pools.
        _set_grad([n["D_A"], n["D_B"]], True)
        self.opt["D"].zero_grad(set_to_none=True)
        pool_B = self.pools["B"].query(fake_B.detach().float(), seeded(c.seed, step, self.rt.rank, 4)).to(real_A.device)
        pool_A = self.pools["A"].query(fake_A.detach().float(), seeded(c.seed, step, self.rt.rank, 5)).to(real_A.device)
        if self.rt.channels_last:
            pool_A, pool_B = (t.contiguous(memory_format=torch.channels_last) for t in (pool_A, pool_B))
        with self.autocast():
            loss_D_A = 0.5 * (self.gan(n["D_A"](self.d_input(real_B, step, 22)), True)
                              + self.gan(n["D_A"](self.d_input(pool_B, step, 20)), False))
            loss_D_B = 0.5 * (self.gan(n["D_B"](self.d_input(real_A, step, 23)), True)
                              + self.gan(n["D_B"](self.d_input(pool_A, step, 21)), False))
        (loss_D_A + loss_D_B).backward()
        self.opt["D"].step()
        return {k: v.detach() for k, v in dict(g, D_A=loss_D_A, D_B=loss_D_B).items()}


@torch.no_grad()
def sample_rows(nets: dict[str, nn.Module], real_A: torch.Tensor) -> list[torch.Tensor]:
    """Source, translated and reconstructed images of a fixed batch, for the sample grid."""
    with eager():  # no recompile for the grid's batch of 4 (compile=on)
        fake_B = _inner(nets["G_A"])(real_A)
        return [real_A, fake_B, _inner(nets["G_B"])(fake_B)]


def _write_grid(path: Path, rows: list[torch.Tensor]) -> None:
    from PIL import Image

    grid = torch.cat([torch.cat(list(r[:4, 0].float().cpu()), dim=1) for r in rows], dim=0)
    arr = ((grid.clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
    with atomic_write(path, "wb") as fh:
        Image.fromarray(arr, mode="L").save(fh, format="PNG")


LOSS_KEYS = ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B")


def _one_run_at_a_time(fn):
    """Hold ``<run folder>/.train.lock`` (``locks.py``) while ``fn`` runs, so that a second process
    training into the same folder stops at once, naming the first one's pid. Under torchrun rank 0
    holds it for all ranks."""
    import functools
    import inspect

    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        run = run_folder(a["workdir"], a["cfg"].task, a.get("out_dir"))
        if not Ranks.from_env().main:
            return fn(*args, **kwargs)
        with hold(run.root, "train", "this translator run folder"):
            return fn(*args, **kwargs)

    return wrapper


class LossLog:
    """``losses.csv`` (and TensorBoard when installed), one row per step, written in batches.

    Steps hand over their losses as device tensors; they are copied to the host together every
    ``every`` steps (one synchronisation instead of eight per step, which is what keeps a GPU busy)
    and at every checkpoint. On resume, rows past the checkpoint are dropped first, so the log holds
    each step once.
    """

    HEADER = ["step", "epoch", "lr", *LOSS_KEYS, "images_per_s"]

    def __init__(self, path: Path, every: int, resume_step: int, enabled: bool = True):
        self.path, self.every, self.enabled = path, max(1, every), enabled
        self.pending: list[tuple[int, int, float, dict[str, torch.Tensor]]] = []
        self.window_start, self.window_images = time.perf_counter(), 0
        self.last: dict[str, float] = {}
        self.fh = self.tb = None
        if not enabled:
            return
        self._truncate(resume_step)
        self.fh = open(path, "a", newline="")
        self.writer = csv.writer(self.fh)
        if path.stat().st_size == 0:
            self.writer.writerow(self.HEADER)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(path.parent / "tensorboard"))
        except Exception:  # tensorboard is optional
            self.tb = None

    def _truncate(self, upto_step: int) -> None:
        if not self.path.is_file():
            return
        with open(self.path, newline="") as fh:
            rows = list(csv.reader(fh))
        if rows:
            keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= upto_step]
            with atomic_write(self.path, newline="") as fh:
                csv.writer(fh).writerows(keep)

    def add(self, step: int, epoch: int, lr: float, losses: dict[str, torch.Tensor], images: int) -> None:
        self.window_images += images
        if self.enabled:
            self.pending.append((step, epoch, lr, losses))
        if len(self.pending) >= self.every or not self.enabled:
            self.flush()

    def flush(self) -> dict[str, float]:
        """Write the pending rows (one host copy for all of them); returns the newest losses."""
        secs = time.perf_counter() - self.window_start
        ips = self.window_images / max(secs, 1e-9)
        self.window_start, self.window_images = time.perf_counter(), 0
        if not self.pending:
            return self.last
        values = torch.stack([torch.stack([l[k].detach().float() for k in LOSS_KEYS]) for *_, l in self.pending]).cpu()
        for (step, epoch, lr, _), row in zip(self.pending, values.tolist()):
            self.writer.writerow([step, epoch, f"{lr:.3e}"] + [f"{v:.5f}" for v in row] + [f"{ips:.3f}"])
            if self.tb:
                for k, v in zip(LOSS_KEYS, row):
                    self.tb.add_scalar(f"loss/{k}", v, step)
            self.last = dict(zip(LOSS_KEYS, row))
        steps = [p[0] for p in self.pending]
        self.pending.clear()
        self.fh.flush()
        stop_at_non_finite_loss(steps, LOSS_KEYS, values, self.path.parent)  # the bad rows are logged first
        return self.last

    def close(self) -> None:
        if self.fh:
            self.fh.close()
        if self.tb:
            self.tb.close()


def run_folder(workdir: str | Path, task: str, out_dir: str | Path | None = None) -> TranslatorFolder:
    """Where a run trains: ``out_dir`` when given, else the work folder's ``translators/<task>``."""
    return TranslatorFolder(out_dir) if out_dir else WorkLayout(workdir).translator(task)


def _prepare_run_dir(run_dir: Path, cfg: TrainConfig, resume: bool, main: bool) -> Path | None:
    """Refuse to overwrite a run or to resume it under another config; save the resolved config.
    Returns the checkpoint to resume from, if any."""
    existing = latest_checkpoint(run_dir)
    if existing and not resume:
        raise ConfigError("this run folder already has checkpoints", existing,
                          "pass --resume to continue it, or choose another --out")
    if main:
        saved_cfg = TranslatorFolder(run_dir).config
        if resume and saved_cfg.is_file():
            old = read_json(saved_cfg)
            diff = {k for k in RUN_DEFINING if old.get(k, DEFAULTS.get(k)) != to_dict(cfg).get(k)}
            if diff:
                raise ConfigError("--resume with a config that changes the run", sorted(diff), "resume with the saved config.json")
        write_json(saved_cfg, to_dict(cfg))
    return existing if resume else None


def train_workload(cfg: TrainConfig, rt: Runtime) -> Workload:
    """What ``compile: auto`` looks up in the speed measurements (``compile_choice.py``)."""
    return Workload(cfg.preset, cfg.size, cfg.batch_size, rt.precision, bool(rt.channels_last))


def _place_models(cfg: TrainConfig, rt: Runtime) -> dict[str, nn.Module]:
    nets = build_models(cfg)
    for net in nets.values():
        net.to(rt.device)
        if rt.channels_last:
            net.to(memory_format=torch.channels_last)
        maybe_compile(net, cfg.compile, rt.device, "train", workload=train_workload(cfg, rt))  # in place: plain keys
    if rt.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [rt.device.index] if rt.device.type == "cuda" else None
        # No buffer broadcast in forward: each net runs several forwards per update (G_A on real A and on
        # the cycle's fake), and rank 0's buffers (spectral norm's vectors) are synced once, at construction.
        # torch 2.13 renamed the switch; its old name warns there.
        import inspect

        off = ("forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters
               else "broadcast_buffers")
        nets = {k: DDP(v, device_ids=ids, **{off: False}) for k, v in nets.items()}
    return nets


class _SaveClock:
    """When to checkpoint: every ``save_every`` steps, every ``save_every_minutes`` of wall time, and at
    the last step. Rank 0's clock decides for every process (a broadcast), so all save together."""

    def __init__(self, cfg: TrainConfig, rt: Runtime, last: int):
        self.cfg, self.rt, self.last = cfg, rt, last
        self.t = time.monotonic()

    def due(self, step: int) -> bool:
        by_time = self.cfg.save_every_minutes is not None and time.monotonic() - self.t >= 60 * self.cfg.save_every_minutes
        if self.rt.world > 1 and self.cfg.save_every_minutes is not None:
            flag = torch.tensor([int(by_time)], device=self.rt.device)
            torch.distributed.broadcast(flag, 0)
            by_time = bool(flag.item())
        if step % self.cfg.save_every == 0 or step == self.last or by_time:
            self.t = time.monotonic()
            return True
        return False


@_one_run_at_a_time
def train(workdir: str | Path, cfg: TrainConfig, resume: bool = False, out_dir: str | Path | None = None,
          progress: bool = False, rt: Runtime | None = None) -> dict:
    """Train one translator; returns the training report (also written to ``train_report.json``).

    Three parts, as torchvision's reference ``train.py``: set-up (run folder, runtime, data, models,
    resume), the loop (:func:`_loop`) and the export (:func:`_export`). ``rt``: the command's Runtime
    (default: resolved from ``cfg``'s device, precision and channels_last); the report states it.
    """
    workdir = Path(workdir)
    run_dir = run_folder(workdir, cfg.task, out_dir).root
    rt = (rt or Runtime.resolve(cfg.device, cfg.precision, cfg.channels_last)).start_distributed()
    data = TrainingSet(workdir, cfg.task, cfg.size, cfg.jitter, cfg.mask_markers)
    existing = _prepare_run_dir(run_dir, cfg, resume, rt.main)
    if data.markers is not None and rt.main:  # written at the start, so a long run shows it at once
        from .markers import write_records

        write_records(TranslatorFolder(run_dir).markers, data.markers)
    nets = _place_models(cfg, rt)
    model = CycleGAN(nets, cfg, rt)
    per_step = cfg.batch_size * rt.world
    steps_per_epoch = data.steps_per_epoch(cfg.loop, per_step)
    total_steps = steps_per_epoch * (cfg.epochs_constant + cfg.epochs_decay)
    last = min(total_steps, cfg.max_steps) if cfg.max_steps else total_steps
    step = load_checkpoint(existing, model.checkpointed(), model.opt, model.sched, model.pools, rt.device)["step"] \
        if existing else 0
    t_start, first = time.perf_counter(), step
    step, losses = _loop(model, data, cfg, rt, run_dir, step, last, steps_per_epoch, progress)
    elapsed = time.perf_counter() - t_start
    report = {"task": cfg.task, "preset": cfg.preset, "steps": step, "total_steps": total_steps,
              "steps_per_epoch": steps_per_epoch, "finished": step >= total_steps, "world_size": rt.world,
              "device": str(rt.device), "precision": rt.precision, "channels_last": rt.channels_last,
              "seconds": round(elapsed, 2), "seconds_per_step": round(elapsed / max(step - first, 1), 4),
              "last_losses": losses, "train_images": {k: len(v) for k, v in data.ids.items()}}
    report = keep_timing(report, TranslatorFolder(run_dir).report, step - first)  # a no-op resume keeps the real time
    if data.markers is not None:
        from .markers import summary

        report["markers"] = dict(summary(data.markers), file=TranslatorFolder(run_dir).markers.name)
    if rt.main:
        _export(run_dir, model.published(), cfg, report, data)
    if rt.world > 1:
        torch.distributed.barrier()
    return report


def _loop(model: CycleGAN, data: TrainingSet, cfg: TrainConfig, rt: Runtime, run_dir: Path, step: int, last: int,
          steps_per_epoch: int, progress: bool) -> tuple[int, dict[str, float]]:
    """Steps ``step`` .. ``last``, with sample grids, the loss log and checkpoints; returns the step reached
    and the newest losses."""
    from ...core.progress import bar as progress_bar

    per_step = cfg.batch_size * rt.world
    log = LossLog(TranslatorFolder(run_dir).losses, cfg.log_every, step, enabled=rt.main)
    clock = _SaveClock(cfg, rt, last)
    # four fixed source images (centre crop), the same in every sample grid of the run
    off = (data.load - cfg.size) // 2
    fixed = (data.images["A"][:4, :, off:off + cfg.size, off:off + cfg.size].float() / 127.5 - 1).to(rt.device)
    bar = progress_bar(total=last, initial=step, desc=f"train {cfg.task}", unit="it", enabled=progress and rt.main)
    try:
        while step < last:
            epoch, it = divmod(step, steps_per_epoch)
            a, b = data.batch(epoch, it * per_step + rt.rank * cfg.batch_size, cfg.batch_size, cfg.seed, step, cfg.flip,
                              cfg.loop)
            a, b = a.to(rt.device, non_blocking=True), b.to(rt.device, non_blocking=True)
            if rt.channels_last:
                a, b = a.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last)
            losses = model.step(a, b, step)
            step += 1
            if it == steps_per_epoch - 1:
                for s in model.sched.values():
                    s.step()
            log.add(step, epoch, model.opt["G"].param_groups[0]["lr"], losses, per_step)
            bar.update(1)
            if rt.main and (step % cfg.sample_every == 0 or step == last):
                _write_grid(TranslatorFolder(run_dir).sample_grid(step), sample_rows(model.published(), fixed))
            if clock.due(step):
                newest = log.flush()
                bar.set_postfix({"G": f"{newest.get('G_A', 0) + newest.get('G_B', 0):.3f}",
                                 "cyc": f"{newest.get('cycle_A', 0):.3f}"}, refresh=False)
                if rt.main:
                    save_checkpoint(run_dir, step, step // steps_per_epoch, model.checkpointed(), model.opt, model.sched,
                                    model.pools, {"config": to_dict(cfg), "code_version": __version__},
                                    cfg.keep_checkpoints)
                if rt.world > 1:
                    torch.distributed.barrier()
        return step, log.flush()
    finally:
        bar.close()
        log.close()


def _export(run_dir: Path, nets: dict[str, nn.Module], cfg: TrainConfig, report: dict, data: TrainingSet) -> None:
    """The published generator (G_A), the private reverse one, ``train_report.json`` and the model card."""
    run = TranslatorFolder(run_dir)
    ckpt = latest_checkpoint(run_dir)
    extra = {"task": cfg.task, "step": report["steps"], "code_version": __version__,
             "checkpoint": ckpt.name if ckpt else None, "translates": {"from": cfg.task.split("-")[0], "to": "covid"}}
    info = export_generator(nets["G_A"], run.generator, cfg.arch(), extra)
    export_generator(nets["G_B"], run.reverse_generator, cfg.arch(),
                     dict(extra, translates={"from": "covid", "to": cfg.task.split("-")[0]}))
    report["translator_id"] = translator_id(cfg.task, info)
    report["generator_sha256"] = info["sha256"]
    write_json(run.report, report)
    from .card import render_translator_card

    render_translator_card(run_dir, cfg, report, data.ids, data.licence_inputs)
