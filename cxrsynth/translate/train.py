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
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..config import to_dict
from ..device import autocast_dtype, pick_device, use_channels_last
from ..errors import ConfigError, DataNotFoundError
from ..images import load_canonical
from ..paths import read_json, write_json
from ..records import read_records
from .checkpoint import export_generator, latest_checkpoint, load_checkpoint, save_checkpoint
from .losses import GANLoss
from .networks import PatchDiscriminator, ResnetGenerator, default_blocks, init_weights
from .pool import ImagePool

TASKS = ("normal-covid", "pneumonia-covid")


@dataclass(frozen=True)
class TrainConfig:
    """Defaults follow the canonical CycleGAN; see README for what differs (no flips, 1 channel)."""

    task: Literal["normal-covid", "pneumonia-covid"] = "normal-covid"
    size: int = 256
    blocks: int | None = None  # residual blocks; default 9 at >= 256 px, 6 below
    base: int = 64  # generator and discriminator width
    gan_loss: Literal["lsgan", "vanilla"] = "lsgan"  # vanilla = the paper's log-likelihood loss
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
    seed: int = 0
    max_steps: int | None = None  # stop early (quick runs, tests); the schedule still assumes the epochs above
    save_every: int = 200  # steps between checkpoints (and one at every epoch end)
    sample_every: int = 200  # steps between sample grids
    keep_checkpoints: int = 2
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 where native (see device.py)
    channels_last: bool | None = None  # None: on for CUDA

    def __post_init__(self):
        if self.size % 4:
            raise ConfigError("size must be a multiple of 4", self.size)
        if self.batch_size < 1 or self.epochs_constant + self.epochs_decay < 1:
            raise ConfigError("batch_size and the number of epochs must be positive", (self.batch_size,))

    @property
    def n_blocks(self) -> int:
        return self.blocks if self.blocks is not None else default_blocks(self.size)

    def arch(self) -> dict:
        return {"name": "resnet_generator", "in_channels": 1, "out_channels": 1, "base": self.base,
                "blocks": self.n_blocks, "size": self.size}


@dataclass
class Runtime:
    """Where and how this process runs; never written into the config."""

    device: torch.device
    rank: int = 0
    world: int = 1
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def seeded(*keys: int) -> torch.Generator:
    """A torch generator determined by ``keys`` alone (seed, step, purpose ...)."""
    state = int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(state)


def make_runtime(cfg: TrainConfig) -> Runtime:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    dev = pick_device(cfg.device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Runtime(dev, rank, world, autocast_dtype(cfg.precision, dev), use_channels_last(cfg.channels_last, dev))


class TrainingSet:
    """The plan's two balanced image sets, decoded once and held in memory as uint8."""

    def __init__(self, workdir: Path, task: str, size: int, jitter: bool):
        plan = read_json(workdir / "plan.json")
        if task not in plan["tasks"]:
            raise ConfigError("task not in plan", task)
        tt = plan["tasks"][task]["translator_train"]
        by_id = {r.record_id: r for r in read_records(workdir / "records.parquet")}
        self.ids = {"A": tt["source"], "B": tt["covid"]}
        # what the translator learns from, for its model card's licence (the records' own licences)
        self.licence_inputs = {"covid": [by_id[r].license for r in tt["covid"] if r in by_id],
                               "sources": sorted({by_id[r].source for r in tt["source"] if r in by_id})}
        load = round(size * 286 / 256) if jitter else size
        self.size, self.load = size, load
        self.images = {}
        for dom, ids in self.ids.items():
            if not ids:
                raise DataNotFoundError(f"the plan has no {'source' if dom == 'A' else 'covid'} images with pixels for {task}",
                                        workdir / "plan.json", "ingest folders with image files, then split and plan again")
            arrs = []
            for rid in ids:
                rec = by_id.get(rid)
                if rec is None or not rec.has_pixels:
                    raise DataNotFoundError("planned training image has no pixels", rid)
                arrs.append(load_canonical(rec.path, load))
            self.images[dom] = torch.from_numpy(np.stack(arrs)).unsqueeze(1)  # N,1,H,W uint8

    def __len__(self) -> int:
        return max(len(self.images["A"]), len(self.images["B"]))

    def batch(self, epoch: int, index: int, count: int, seed: int, step: int, flip: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Items ``index .. index+count`` of epoch ``epoch``: A in a seeded order, B drawn at random."""
        n = len(self)
        nA, nB = len(self.images["A"]), len(self.images["B"])
        perm = torch.randperm(nA, generator=seeded(seed, epoch, 1))
        rand_b = torch.randint(0, nB, (n,), generator=seeded(seed, epoch, 2))
        idx = [(int(perm[i % nA]), int(rand_b[i])) for i in range(index, index + count)]
        g = seeded(seed, step, index, 3)
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
                mask = torch.rand(len(imgs), generator=g) < 0.5
                imgs[mask] = imgs[mask].flip(-1)
            out.append(imgs)
        return out[0], out[1]


def build_models(cfg: TrainConfig) -> dict[str, nn.Module]:
    nets = {
        "G_A": ResnetGenerator(1, 1, cfg.base, cfg.n_blocks), "G_B": ResnetGenerator(1, 1, cfg.base, cfg.n_blocks),
        "D_A": PatchDiscriminator(1, cfg.base), "D_B": PatchDiscriminator(1, cfg.base),
    }
    for i, net in enumerate(nets.values()):
        init_weights(net, 0.02, seeded(cfg.seed, 0, 100 + i))
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
        self.gan = GANLoss(cfg.gan_loss)
        self.l1 = nn.L1Loss()
        self.pools = {"A": ImagePool(cfg.pool_size), "B": ImagePool(cfg.pool_size)}
        g_params = list(nets["G_A"].parameters()) + list(nets["G_B"].parameters())
        d_params = list(nets["D_A"].parameters()) + list(nets["D_B"].parameters())
        self.opt = {"G": torch.optim.Adam(g_params, lr=cfg.lr, betas=(cfg.beta1, 0.999)),
                    "D": torch.optim.Adam(d_params, lr=cfg.lr, betas=(cfg.beta1, 0.999))}

        def rule(epoch: int) -> float:
            return 1.0 - max(0, epoch + 1 - cfg.epochs_constant) / float(cfg.epochs_decay + 1)

        self.sched = {k: torch.optim.lr_scheduler.LambdaLR(o, rule) for k, o in self.opt.items()}

    def autocast(self):
        if self.rt.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.rt.device.type, dtype=self.rt.amp_dtype)

    def step(self, real_A: torch.Tensor, real_B: torch.Tensor, step: int) -> dict[str, float]:
        n, c = self.nets, self.cfg
        lam, lam_idt = c.lambda_cycle, c.lambda_identity * c.lambda_cycle
        # Generators. The discriminators are called through their inner module: they get no gradients
        # here, and a DDP wrapper would otherwise wait for a reduction that never comes.
        _set_grad([n["D_A"], n["D_B"]], False)
        self.opt["G"].zero_grad(set_to_none=True)
        with self.autocast():
            fake_B = n["G_A"](real_A)
            rec_A = n["G_B"](fake_B)
            fake_A = n["G_B"](real_B)
            rec_B = n["G_A"](fake_A)
            loss_G_A = self.gan(_inner(n["D_A"])(fake_B), True)
            loss_G_B = self.gan(_inner(n["D_B"])(fake_A), True)
            loss_cyc_A = self.l1(rec_A.float(), real_A) * lam
            loss_cyc_B = self.l1(rec_B.float(), real_B) * lam
            loss_idt_A = loss_idt_B = torch.zeros((), device=real_A.device)
            if lam_idt > 0:
                loss_idt_A = self.l1(n["G_A"](real_B).float(), real_B) * lam_idt
                loss_idt_B = self.l1(n["G_B"](real_A).float(), real_A) * lam_idt
            loss_G = loss_G_A + loss_G_B + loss_cyc_A + loss_cyc_B + loss_idt_A + loss_idt_B
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
            loss_D_A = 0.5 * (self.gan(n["D_A"](real_B), True) + self.gan(n["D_A"](pool_B), False))
            loss_D_B = 0.5 * (self.gan(n["D_B"](real_A), True) + self.gan(n["D_B"](pool_A), False))
        (loss_D_A + loss_D_B).backward()
        self.opt["D"].step()
        losses = {"G_A": loss_G_A, "G_B": loss_G_B, "cycle_A": loss_cyc_A, "cycle_B": loss_cyc_B,
                  "idt_A": loss_idt_A, "idt_B": loss_idt_B, "D_A": loss_D_A, "D_B": loss_D_B}
        return {k: float(v.detach()) for k, v in losses.items()}


@torch.no_grad()
def sample_rows(nets: dict[str, nn.Module], real_A: torch.Tensor) -> list[torch.Tensor]:
    """Source, translated and reconstructed images of a fixed batch, for the sample grid."""
    fake_B = _inner(nets["G_A"])(real_A)
    return [real_A, fake_B, _inner(nets["G_B"])(fake_B)]


def _write_grid(path: Path, rows: list[torch.Tensor]) -> None:
    from PIL import Image

    grid = torch.cat([torch.cat(list(r[:4, 0].float().cpu()), dim=1) for r in rows], dim=0)
    arr = ((grid.clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(arr, mode="L").save(tmp, format="PNG")
    os.replace(tmp, path)


def _rewrite_csv(path: Path, upto_step: int) -> None:
    """On resume: drop log rows written after the checkpoint, so the log has each step once."""
    if not path.is_file():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return
    keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= upto_step]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows(keep)
    os.replace(tmp, path)


def train(workdir: str | Path, cfg: TrainConfig, resume: bool = False, out_dir: str | Path | None = None,
          progress: bool = False) -> dict:
    """Train one translator; returns the training report (also written to ``train_report.json``)."""
    from tqdm import tqdm

    workdir = Path(workdir)
    run_dir = Path(out_dir) if out_dir else workdir / "translators" / cfg.task
    rt = make_runtime(cfg)
    data = TrainingSet(workdir, cfg.task, cfg.size, cfg.jitter)
    existing = latest_checkpoint(run_dir)
    if existing and not resume:
        raise ConfigError("this run folder already has checkpoints", existing,
                          "pass --resume to continue it, or choose another --out")
    if rt.main:
        saved_cfg = run_dir / "config.json"
        if resume and saved_cfg.is_file():
            old = read_json(saved_cfg)
            diff = {k for k in ("task", "size", "base", "blocks", "seed", "batch_size", "gan_loss")
                    if old.get(k) != to_dict(cfg).get(k)}
            if diff:
                raise ConfigError("--resume with a config that changes the run", sorted(diff), "resume with the saved config.json")
        write_json(saved_cfg, to_dict(cfg))
    nets = build_models(cfg)
    for k, net in nets.items():
        net.to(rt.device)
        if rt.channels_last:
            net.to(memory_format=torch.channels_last)
    if rt.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [rt.device.index] if rt.device.type == "cuda" else None
        nets = {k: DDP(v, device_ids=ids, broadcast_buffers=False) for k, v in nets.items()}
    model = CycleGAN(nets, cfg, rt)
    per_step = cfg.batch_size * rt.world
    steps_per_epoch = max(1, len(data) // per_step)
    total_steps = steps_per_epoch * (cfg.epochs_constant + cfg.epochs_decay)
    last = min(total_steps, cfg.max_steps) if cfg.max_steps else total_steps
    step = 0
    if resume and existing:
        state = load_checkpoint(existing, nets, model.opt, model.sched, model.pools, rt.device)
        step = state["step"]
    log_path = run_dir / "losses.csv"
    if rt.main:
        _rewrite_csv(log_path, step)
    writer_fh = open(log_path, "a", newline="") if rt.main else None
    writer = csv.writer(writer_fh) if writer_fh else None
    if writer and log_path.stat().st_size == 0:
        writer.writerow(["step", "epoch", "lr", "G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B", "images_per_s"])
    tb = None
    if rt.main:
        try:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(str(run_dir / "tensorboard"))
        except Exception:  # tensorboard is optional
            tb = None
    # four fixed source images (centre crop), the same in every sample grid of the run
    off = (data.load - cfg.size) // 2
    fixed = (data.images["A"][:4, :, off:off + cfg.size, off:off + cfg.size].float() / 127.5 - 1).to(rt.device)
    bar = tqdm(total=last, initial=step, desc=f"train {cfg.task}", unit="it", disable=not (progress and rt.main))
    t_start, steps_done, losses = time.perf_counter(), 0, {}
    try:
        while step < last:
            epoch, it = divmod(step, steps_per_epoch)
            t0 = time.perf_counter()
            a, b = data.batch(epoch, it * per_step + rt.rank * cfg.batch_size, cfg.batch_size, cfg.seed, step, cfg.flip)
            a, b = a.to(rt.device, non_blocking=True), b.to(rt.device, non_blocking=True)
            if rt.channels_last:
                a, b = a.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last)
            losses = model.step(a, b, step)
            step += 1
            steps_done += 1
            if it == steps_per_epoch - 1:
                for s in model.sched.values():
                    s.step()
            ips = per_step / max(time.perf_counter() - t0, 1e-9)
            if writer:
                lr = model.opt["G"].param_groups[0]["lr"]
                writer.writerow([step, epoch, f"{lr:.3e}"] + [f"{losses[k]:.5f}" for k in
                                ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B")] + [f"{ips:.3f}"])
                if tb:
                    for k, v in losses.items():
                        tb.add_scalar(f"loss/{k}", v, step)
            bar.set_postfix({"G": f"{losses['G_A'] + losses['G_B']:.3f}", "cyc": f"{losses['cycle_A']:.3f}",
                             "D": f"{losses['D_A'] + losses['D_B']:.3f}", "img/s": f"{ips:.2f}"}, refresh=False)
            bar.update(1)
            at_epoch_end = it == steps_per_epoch - 1
            if rt.main and (step % cfg.sample_every == 0 or step == last):
                _write_grid(run_dir / "samples" / f"step-{step:08d}.png", sample_rows(nets, fixed))
            if step % cfg.save_every == 0 or at_epoch_end or step == last:
                if writer_fh:
                    writer_fh.flush()
                if rt.main:
                    save_checkpoint(run_dir, step, step // steps_per_epoch, nets, model.opt, model.sched,
                                    model.pools, {"config": to_dict(cfg), "code_version": __version__},
                                    cfg.keep_checkpoints)
                if rt.world > 1:
                    torch.distributed.barrier()
    finally:
        bar.close()
        if writer_fh:
            writer_fh.close()
        if tb:
            tb.close()
    elapsed = time.perf_counter() - t_start
    report = {"task": cfg.task, "steps": step, "total_steps": total_steps, "steps_per_epoch": steps_per_epoch,
              "finished": step >= total_steps, "world_size": rt.world, "device": str(rt.device),
              "precision": str(rt.amp_dtype or "fp32"), "channels_last": rt.channels_last,
              "seconds": round(elapsed, 2), "seconds_per_step": round(elapsed / max(steps_done, 1), 4),
              "last_losses": losses, "train_images": {k: len(v) for k, v in data.ids.items()}}
    if rt.main:
        arch = cfg.arch()
        ckpt = latest_checkpoint(run_dir)
        extra = {"task": cfg.task, "step": step, "code_version": __version__,
                 "checkpoint": ckpt.name if ckpt else None, "translates": {"from": cfg.task.split("-")[0], "to": "covid"}}
        info = export_generator(nets["G_A"], run_dir / "generator.safetensors", arch, extra)
        export_generator(nets["G_B"], run_dir / "private" / "reverse_generator.safetensors", arch,
                         dict(extra, translates={"from": "covid", "to": cfg.task.split("-")[0]}))
        report["translator_id"] = f"{cfg.task}-{info['sha256'][:12]}"
        report["generator_sha256"] = info["sha256"]
        write_json(run_dir / "train_report.json", report)
        from ..cards import render_translator_card

        render_translator_card(run_dir, cfg, report, data.ids, data.licence_inputs)
    if rt.world > 1:
        torch.distributed.barrier()
    return report
