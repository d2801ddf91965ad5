"""``cxrsynth generate``: apply trained translators to every image the plan names, resumably.

Reads ``plan.json``, ``records.parquet`` and ``translators/<task>/generator.safetensors`` (or
``--generator TASK=PATH``). Writes, per config (``g_nc``, ``g_pc``), shards of ``shard_size`` images:

- ``generated/<config>/shard-XXXXX/<id>.png``: 8-bit grayscale PNGs; ``<id>`` is opaque (an HMAC of
  the source record id under a secret kept in ``generated/private/``), so it reveals nothing;
- ``generated/<config>/shard-XXXXX/provenance.jsonl``: one public record per image (translator id
  and checkpoint sha256, source split, seed, code version, time, PNG sha256), each validated against
  ``manifests/provenance.schema.json``;
- ``generated/private/<config>/shard-XXXXX.jsonl``: the synthetic id -> source record mapping (never
  published);
- ``generated/<config>/shard-XXXXX.done.json``: written last; a shard with a valid marker is checked
  and skipped on a rerun, any other is redone from scratch in a temporary folder and renamed in.

Several processes (``torchrun``, or ``--rank/--world``) split the shards round-robin. One run holds a
lock on ``generated/`` (``locks.py``): a second run on the same work folder stops at once, naming the
first one's pid; the ranks of one ``--world N`` run share it, and each rank holds its own. Decoding
runs in DataLoader workers and PNG encoding in a thread pool, so the model stays busy.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from .. import __version__
from ..artifacts import GeneratedSet, shard_name
from ..core.config import at_least, to_dict
from ..core.errors import ConfigError
from ..data.images import encode_png, load_canonical
from ..core.layout import WorkLayout
from ..core.locks import hold
from ..core.paths import atomic_write, read_json, sha256_file, write_json
from ..data.records import read_records
from ..core.runtime import Ranks, Runtime
from ..core.schemas import validate
from .translate.checkpoint import load_generator
from .translate.checkpoint import translator_id as translator_name
from .translate.compile import compile_mode, is_compiled, maybe_compile
from ..core.vocab import CONFIG_TASK, CONFIGS



def output_mode(output: str, arch: dict) -> str:
    """The mapping one translator's images get: ``output`` unless auto, then the authors' min-max for
    the ``paper`` preset and clamp otherwise."""
    if output != "auto":
        return output
    return "minmax" if arch.get("preset") == "paper" else "clamp"


@dataclass(frozen=True)
class GenerateConfig:
    configs: tuple[str, ...] = CONFIGS
    shard_size: int = 1000
    batch_size: int = 8
    workers: int = 1  # DataLoader decoding processes; 0 = decode in this process
    encoders: int = 2  # PNG-encoding threads
    limit: int | None = None  # translate only the first N planned images per config (quick looks)
    seed: int = 0  # recorded in provenance; the forward pass itself is deterministic
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 where native (see device.py)
    channels_last: bool | None = None
    # How tanh outputs become pixels: clamp (y + 1) * 127.5, or minmax, the authors' mapping (their
    # scipy.misc.imsave stretched each image to its own min..max); auto: minmax for a translator trained
    # with the paper preset (it reproduces the authors' images), clamp for any other (output_mode)
    output: Literal["auto", "clamp", "minmax"] = "auto"
    # torch.compile of the generator (translate/compile.py): auto = on for the CPU when a config has at
    # least AUTO_MIN_IMAGES images to make (1.26x measured, minus tens of seconds of compile)
    compile: Literal["auto", "on", "off"] | bool = "auto"

    def __post_init__(self):
        object.__setattr__(self, "compile", compile_mode(self.compile))  # YAML reads on/off as booleans
        bad = set(self.configs) - set(CONFIG_TASK)
        if bad:
            raise ConfigError("unknown config", sorted(bad), f"known: {sorted(CONFIG_TASK)}")
        if not self.configs:
            raise ConfigError("configs must name at least one config", self.configs, f"known: {sorted(CONFIG_TASK)}")
        # 0 or a negative number would silently mean something else (no limit, "all but the last N").
        for name in ("shard_size", "batch_size", "encoders"):
            at_least(name, getattr(self, name), 1)
        at_least("workers", self.workers, 0)
        at_least("seed", self.seed, 0)
        if self.limit is not None:
            at_least("limit", self.limit, 1, "leave it out to generate every planned image")


def check_ranks(rank: int, world: int) -> None:
    """``0 <= rank < world``: a rank outside the world would exit 0 having made nothing."""
    if world < 1:
        raise ConfigError("world (the number of processes) must be at least 1", world)
    if not 0 <= rank < world:
        raise ConfigError(f"rank must be between 0 and world - 1 = {world - 1}", rank)


class _Sources(torch.utils.data.Dataset):
    def __init__(self, paths: list[str], size: int):
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        arr = load_canonical(self.paths[i], self.size)
        return torch.from_numpy(arr).unsqueeze(0)  # uint8, scaled on the device


def opaque_id(secret: bytes, config: str, record_id: str) -> str:
    return hmac.new(secret, f"{config}:{record_id}".encode(), hashlib.sha256).hexdigest()[:20]


def _secret(gen: GeneratedSet) -> bytes:
    path = gen.secret_path
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".id_secret.tmp-{os.getpid()}")
        tmp.write_text(secrets.token_hex(32))
        try:
            # a hard link never replaces: ranks starting together all end up with the first secret
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return bytes.fromhex(path.read_text().strip())


def shard_key(checkpoint_sha256: str, record_ids: list[str], translator: str | None = None,
              output: str = "clamp") -> str:
    """What a shard is made of: the translator file, the exact source records in order, (when given) the
    translator id its provenance carries, so that a shard under another id is redone, and the output mapping."""
    head = [checkpoint_sha256] + ([f"translator:{translator}"] if translator else []) \
        + ([f"output={output}"] if output != "clamp" else [])
    return hashlib.sha256("\n".join([*head, *record_ids]).encode()).hexdigest()


@dataclass(frozen=True)
class Translator:
    """A loaded generator and what the provenance of its images says about it."""

    net: torch.nn.Module
    info: dict  # generator.json: arch and sha256 of the file
    translator_id: str
    size: int  # the image side it was trained at


@dataclass(frozen=True)
class ShardJob:
    """One shard to make: ``record_ids`` of ``config`` into ``generated/<config>/<name>``, and the
    ``key`` (:func:`shard_key`) its marker records, so that a rerun knows what it was made from."""

    config: str
    name: str
    record_ids: list[str]
    key: str


@dataclass(frozen=True)
class _Run:
    """What every shard of one generate run shares."""

    gen: GeneratedSet
    by_id: dict
    secret: bytes
    cfg: GenerateConfig
    rt: Runtime


def translate_batch(net: torch.nn.Module, batch: torch.Tensor, device: torch.device,
                    amp: torch.dtype | None, channels_last: bool, output: str = "clamp") -> np.ndarray:
    """uint8 (N,1,H,W) -> uint8 (N,H,W) through the generator; ``output`` as in :class:`GenerateConfig`."""
    x = batch.to(device, non_blocking=True).float().div_(127.5).sub_(1.0)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    ctx = torch.autocast(device.type, dtype=amp) if amp is not None else nullcontext()
    with torch.inference_mode():
        with ctx:
            y = net(x)
        y = y.float().clamp_(-1, 1)
        if output == "minmax":
            lo = y.amin(dim=(1, 2, 3), keepdim=True)
            span = (y.amax(dim=(1, 2, 3), keepdim=True) - lo).clamp_min_(1e-12)
            y = ((y - lo) / span * 255).round_().to(torch.uint8)
        else:
            y = ((y + 1) * 127.5).round_().to(torch.uint8)
    return y[:, 0].cpu().numpy()


def generate(workdir: str | Path, cfg: GenerateConfig = GenerateConfig(), generators: dict[str, str] | None = None,
             rank: int | None = None, world: int | None = None, progress: bool = False) -> dict:
    """Generate every planned image this process is responsible for; returns the report.

    Raises :class:`~cxrsynth.core.errors.LockedError` when another run holds the work folder.
    """
    workdir = Path(workdir)
    out = WorkLayout(workdir).generated
    env = Ranks.from_env()
    ranks = Ranks(env.rank if rank is None else rank, env.world if world is None else world, env.local)
    check_ranks(ranks.rank, ranks.world)
    rank, world = ranks.rank, ranks.world
    with contextlib.ExitStack() as locks:
        # One run at a time per work folder; the ranks of one run share the folder lock and each
        # holds its own rank lock, so two processes never make the same shard.
        what = f"the generated images folder {out}"
        locks.enter_context(hold(out, "generate", what, shared=world > 1))
        if world > 1:
            locks.enter_context(hold(out, f"generate-rank{rank}", f"{what} (rank {rank})"))
        rt = Runtime.resolve(cfg.device, cfg.precision, cfg.channels_last, ranks)
        return _generate(workdir, out, cfg, generators, rt, progress)


def _generate(workdir: Path, out: Path, cfg: GenerateConfig, generators: dict[str, str] | None, rt: Runtime,
              progress: bool) -> dict:
    from ..core.progress import bar as progress_bar

    layout = WorkLayout(workdir)
    plan = read_json(layout.plan)
    by_id = {r.record_id: r for r in read_records(layout.records)}
    device, rank, world = rt.device, rt.rank, rt.world
    gen = GeneratedSet(out)
    run = _Run(gen, by_id, _secret(gen), cfg, rt)
    report: dict = {"kind": "cxrsynth.generate_report", "code_version": __version__, "config": to_dict(cfg),
                    "rank": rank, "world": world, "device": str(device), "configs": {}}
    for config in cfg.configs:
        task = CONFIG_TASK[config]
        gpath = Path((generators or {}).get(task) or layout.translator(task).generator)
        net, info = load_generator(gpath, device)
        if rt.channels_last:
            net = net.to(memory_format=torch.channels_last)
        size = int(info["arch"].get("size", 256))
        translator_id = translator_name(task, info)
        tr = Translator(net, info, translator_id, size)
        output = output_mode(cfg.output, info["arch"])
        planned = plan["tasks"][task]["translate"]["record_ids"]
        available = [i for i in planned if i in by_id and by_id[i].has_pixels]
        usable = available if cfg.limit is None else available[: cfg.limit]
        shards = [usable[i:i + cfg.shard_size] for i in range(0, len(usable), cfg.shard_size)]
        mine = [k for k in range(len(shards)) if k % world == rank]
        # auto decides on the config's whole count, so that every rank of a run decides alike
        maybe_compile(net, cfg.compile, device, "generate", len(usable), fixed_batch=True)
        if rank == 0:
            # The shards that make up this config now; older shards past the end are left alone but
            # are not part of it (package reads this file).
            write_json(gen.layout_path(config), {"shards": len(shards), "shard_size": cfg.shard_size,
                                                      "images": len(usable), "checkpoint_sha256": info["sha256"]})
        stats = {"planned": len(planned), "label_only_skipped": len(planned) - len(available),
                 "to_generate": len(usable), "shards": len(shards), "shards_mine": len(mine),
                 "shards_skipped_done": 0, "generated": 0, "translator_id": translator_id,
                 "checkpoint_sha256": info["sha256"], "size": size, "compiled": is_compiled(net), "output": output}
        t0 = time.perf_counter()
        bar = progress_bar(total=sum(len(shards[k]) for k in mine), desc=f"generate {config}", unit="img", enabled=progress)
        for k in mine:
            name = shard_name(k)
            key = shard_key(info["sha256"], shards[k], translator_id, output)
            if gen.shard_is_done(config, name, key):
                stats["shards_skipped_done"] += 1
                bar.update(len(shards[k]))
                continue
            gen.marker(config, name).unlink(missing_ok=True)
            n = _run_shard(ShardJob(config, name, shards[k], key), tr, run, bar)
            stats["generated"] += n
        bar.close()
        secs = time.perf_counter() - t0
        stats["seconds"] = round(secs, 3)
        stats["images_per_second"] = round(stats["generated"] / secs, 3) if stats["generated"] else None
        report["configs"][config] = stats
    write_json(gen.report_path(rank, world), report)
    return report


def _run_shard(job: ShardJob, tr: Translator, run: _Run, bar) -> int:
    """Make one shard in a temporary folder (pid-named), rename it into place, then write its private
    mapping and, last, its marker; returns the number of images made."""
    gen, config, name, ids, cfg, by_id = run.gen, job.config, job.name, job.record_ids, run.cfg, run.by_id
    device = run.rt.device
    shard_dir = gen.shard_dir(config, name)
    for stale in gen.config_dir(config).glob(f".{name}.tmp-*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = gen.config_dir(config) / f".{name}.tmp-{os.getpid()}"
    tmp.mkdir(parents=True)
    loader = torch.utils.data.DataLoader(
        _Sources([str(by_id[i].path) for i in ids], tr.size), batch_size=cfg.batch_size, shuffle=False,
        num_workers=cfg.workers, pin_memory=device.type == "cuda", persistent_workers=False,
        prefetch_factor=4 if cfg.workers > 0 else None)
    prov_lines, mapping = [], []
    pos = 0

    def write_png(args):
        sid, arr = args
        data = encode_png(arr)
        (tmp / f"{sid}.png").write_bytes(data)
        return hashlib.sha256(data).hexdigest()

    with ThreadPoolExecutor(max_workers=max(1, cfg.encoders)) as pool:
        pending = []
        for batch in loader:
            arrs = translate_batch(tr.net, batch, device, run.rt.amp_dtype, run.rt.channels_last,
                                   output_mode(cfg.output, tr.info["arch"]))
            rids = ids[pos:pos + len(arrs)]
            pos += len(arrs)
            sids = [opaque_id(run.secret, config, r) for r in rids]
            pending.append((rids, sids, pool.map(write_png, list(zip(sids, arrs)))))
            bar.update(len(arrs))
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for rids, sids, shas in pending:
            for rid, sid, sha in zip(rids, sids, shas):
                rec = {"id": sid, "config": config, "file": f"{config}/{name}/{sid}.png",
                       "label": "covid", "source_label": by_id[rid].label, "translator_id": tr.translator_id,
                       "checkpoint_sha256": tr.info["sha256"], "source_split": "train", "seed": cfg.seed,
                       "code_version": __version__, "created": created, "png_sha256": sha,
                       "width": tr.size, "height": tr.size}
                validate(rec, "provenance", where=f"{config}/{name}")
                prov_lines.append(json.dumps(rec, sort_keys=True))
                mapping.append(json.dumps({"id": sid, "config": config, "record_id": rid,
                                           "source_collection": by_id[rid].collection}))
    (tmp / "provenance.jsonl").write_text("\n".join(prov_lines) + "\n")
    if shard_dir.exists():
        shutil.rmtree(shard_dir)
    os.replace(tmp, shard_dir)
    with atomic_write(gen.private_mapping(config, name)) as fh:
        fh.write("\n".join(mapping) + "\n")
    write_json(gen.marker(config, name), {"count": len(prov_lines), "key": job.key,
               "provenance_sha256": sha256_file(shard_dir / "provenance.jsonl")})
    return len(prov_lines)


def planned_shards(workdir: Path, cfg) -> int:
    """An upper bound on the shards of the largest config ``generate`` would make (label-only records are
    counted; a rank left without a shard does nothing): one job per shard by default."""
    plan = read_json(WorkLayout(Path(workdir)).plan)

    sizes = [len(plan["tasks"][CONFIG_TASK[c]]["translate"]["record_ids"]) for c in cfg.configs]
    sizes = [min(n, cfg.limit) if cfg.limit else n for n in sizes]
    return max(1, max(-(-n // cfg.shard_size) for n in sizes))
