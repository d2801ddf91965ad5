"""Checkpoints that resume exactly and load without pickles.

A checkpoint is a folder ``step-XXXXXXXX/`` with ``tensors.safetensors`` (the four networks, both Adam
states, the image pools and torch's RNG state) and ``state.json`` (epoch, step, scheduler state,
optimizer hyper-parameters, the resolved config and the sha256 of the tensor file). It is written into a
temporary folder and renamed into place, and ``latest.json`` is replaced last, so a kill at any moment
leaves the previous checkpoint intact. Loading checks the checksum first.

The released translator is a separate, weights-only file: ``generator.safetensors`` (G_A) with its
``generator.json`` (architecture and checksum); the reverse generator is kept in ``private/``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import CheckpointError
from ..paths import read_json, sha256_file, write_json


def _optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            t = v if torch.is_tensor(v) else torch.tensor(v)
            tensors[f"{prefix}.state.{pid}.{k}"] = t.detach().cpu().contiguous()
    return tensors, {"param_groups": sd["param_groups"]}


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict, prefix: str, meta: dict) -> None:
    state: dict = {}
    head = f"{prefix}.state."
    for key, t in tensors.items():
        if key.startswith(head):
            pid, name = key[len(head):].split(".", 1)
            state.setdefault(int(pid), {})[name] = t
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(run_dir: Path, step: int, epoch: int, nets: dict[str, nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer], schedulers: dict, pools: dict,
                    extra_state: dict, keep: int = 2) -> Path:
    ckpt_root = Path(run_dir) / "checkpoints"
    final = ckpt_root / f"step-{step:08d}"
    if ckpt_root.is_dir():
        for stale in ckpt_root.glob(".step-*.tmp-*"):  # left by a killed run
            shutil.rmtree(stale, ignore_errors=True)
    tmp = ckpt_root / f".step-{step:08d}.tmp-{os.getpid()}"
    tmp.mkdir(parents=True)
    tensors: dict[str, torch.Tensor] = {}
    for name, net in nets.items():
        for k, v in _unwrap(net).state_dict().items():
            tensors[f"net.{name}.{k}"] = v.detach().float().cpu().contiguous()
    opt_meta = {}
    for name, opt in optimizers.items():
        t, meta = _optimizer_tensors(opt, f"opt.{name}")
        tensors.update(t)
        opt_meta[name] = meta
    for name, pool in pools.items():
        tensors.update(pool.state_tensors(f"pool.{name}"))
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(tensors, str(tmp / "tensors.safetensors"))
    state = {
        "step": step, "epoch": epoch, "optimizers": opt_meta,
        "schedulers": {k: s.state_dict() for k, s in schedulers.items()},  # lr_lambdas: None for plain functions
        "tensors_sha256": sha256_file(tmp / "tensors.safetensors"), **extra_state,
    }
    write_json(tmp / "state.json", state)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    write_json(ckpt_root / "latest.json", {"step": step, "path": final.name})
    for old in sorted(ckpt_root.glob("step-*"))[:-max(keep, 1)]:  # names sort by step
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = Path(run_dir) / "checkpoints" / "latest.json"
    if not pointer.is_file():
        return None
    path = pointer.parent / read_json(pointer)["path"]
    return path if path.is_dir() else None


def load_checkpoint(path: Path, nets: dict[str, nn.Module], optimizers: dict, schedulers: dict, pools: dict,
                    device: torch.device) -> dict:
    """Restore everything saved by :func:`save_checkpoint`; returns ``state.json``."""
    state = read_json(path / "state.json")
    tfile = path / "tensors.safetensors"
    if not tfile.is_file() or sha256_file(tfile) != state.get("tensors_sha256"):
        raise CheckpointError("checkpoint tensors are missing or do not match their checksum", tfile,
                              "delete this checkpoint folder to fall back to the previous one")
    tensors = load_file(str(tfile))
    for name, net in nets.items():
        head = f"net.{name}."
        _unwrap(net).load_state_dict({k[len(head):]: v for k, v in tensors.items() if k.startswith(head)})
    for name, opt in optimizers.items():
        _load_optimizer(opt, tensors, f"opt.{name}", state["optimizers"][name])
    for name, sched in schedulers.items():
        sched.load_state_dict(dict(state["schedulers"][name]))
    for name, pool in pools.items():
        pool.load_tensors(tensors, f"pool.{name}", device)
    torch.set_rng_state(tensors["rng.torch"])
    return state


def _unwrap(net: nn.Module) -> nn.Module:
    return net.module if hasattr(net, "module") else net


def export_generator(net: nn.Module, path: Path, arch: dict, extra: dict | None = None) -> dict:
    """Write a weights-only generator (safetensors) and its JSON description; returns the description."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    sd = {k: v.detach().float().cpu().contiguous() for k, v in _unwrap(net).state_dict().items()}
    save_file(sd, str(tmp), metadata={"format": "pt", "arch": json.dumps(arch)})
    os.replace(tmp, path)
    info = {"file": path.name, "sha256": sha256_file(path), "arch": arch, **(extra or {})}
    write_json(path.with_suffix(".json"), info)
    return info


def load_generator(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Load a generator exported by :func:`export_generator`, checking its checksum when described."""
    from .networks import build_generator

    path = Path(path)
    if path.is_dir():
        path = path / "generator.safetensors"
    if not path.is_file():
        raise CheckpointError("generator file not found", path, "train one with `cxrsynth train` or pass --generator")
    desc_path = path.with_suffix(".json")
    info = read_json(desc_path) if desc_path.is_file() else {}
    sha = sha256_file(path)
    if info.get("sha256") and info["sha256"] != sha:
        raise CheckpointError("generator does not match the checksum in its description", path)
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            arch = json.loads((fh.metadata() or {}).get("arch", "{}")) or info.get("arch", {})
        sd = load_file(str(path))
    except Exception as exc:
        raise CheckpointError("not a readable safetensors generator", path, str(exc)) from exc
    try:
        net = build_generator(arch)
        net.load_state_dict(sd)
    except ValueError as exc:
        raise CheckpointError("generator has an unknown architecture", path, str(exc)) from exc
    except RuntimeError as exc:
        raise CheckpointError("generator weights do not fit the architecture", path, str(exc).splitlines()[0]) from exc
    info.setdefault("sha256", sha)
    info.setdefault("arch", arch)
    return net.to(device).eval(), info
