"""Checkpoints that resume exactly and load without pickles.

A checkpoint is a folder ``step-XXXXXXXX/`` with ``tensors.safetensors`` (the four networks, both Adam
states, the image pools and torch's RNG state) and ``state.json`` (epoch, step, scheduler state,
optimizer hyper-parameters, the resolved config and the sha256 of the tensor file). It is written into a
temporary folder and renamed into place, and ``latest.json`` is replaced last, so a kill at any moment
leaves the previous checkpoint intact. Loading checks the checksum first.

Recovery: :func:`latest_checkpoint` returns the newest checkpoint whose tensors match their checksum. A
missing or damaged ``latest.json``, or a damaged newest folder, falls back to the next intact one and
says so on stderr; rotation then never deletes a checkpoint newer than the one just written (a damaged
one is overwritten when the run reaches its step again, not removed before).

The released translator is a separate, weights-only file: ``generator.safetensors`` (G_A) with its
``generator.json`` (architecture and checksum); the reverse generator is kept in ``private/``. The file
is byte-identical for identical weights and architecture (safetensors writes its metadata in hash-map
order, which varies from call to call; :func:`~cxrsynth.core.safetensors_bytes.canonical_safetensors` rewrites the header with sorted
keys), and the translator id is a hash of the tensors themselves (:func:`tensors_sha256`), so the same
weights never publish under two ids nor regenerate finished images.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save, save_file
from torch import nn

from ...core.errors import CheckpointError, CxrsynthError
from ...core.layout import TranslatorFolder
from ...core.paths import atomic_write, read_json, sha256_file, write_json
from ...core.safetensors_bytes import canonical_safetensors
from .finite import refuse_non_finite_weights


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
    tensors: dict[str, torch.Tensor] = {}
    for name, net in nets.items():
        for k, v in _unwrap(net).state_dict().items():
            tensors[f"net.{name}.{k}"] = v.detach().float().cpu().contiguous()
    refuse_non_finite_weights(tensors, final)
    tmp.mkdir(parents=True)
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
    # Keep the newest ``keep`` up to this step; never touch one past it (a resumed run may have fallen
    # back over a damaged newer folder, which it overwrites when it gets there).
    older = [p for p in _step_folders(ckpt_root) if _step_of(p) <= step]
    for old in older[:-max(keep, 1)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


_STEP_DIR = re.compile(r"step-(\d{8})")


def _step_of(path: Path) -> int:
    return int(_STEP_DIR.fullmatch(path.name).group(1))


def _step_folders(ckpt_root: Path) -> list[Path]:
    """``step-XXXXXXXX`` folders, oldest first."""
    if not ckpt_root.is_dir():
        return []
    return sorted((p for p in ckpt_root.iterdir() if _STEP_DIR.fullmatch(p.name) and p.is_dir()), key=_step_of)


def checkpoint_problem(path: Path) -> str | None:
    """Why the checkpoint folder ``path`` cannot be resumed from, or ``None`` when it is intact."""
    try:
        state = read_json(path / "state.json")
        tfile = path / "tensors.safetensors"
        if not isinstance(state, dict) or not isinstance(state.get("step"), int):
            return "state.json has no step"
        if not tfile.is_file():
            return "tensors.safetensors is missing"
        if sha256_file(tfile) != state.get("tensors_sha256"):
            return "its tensors do not match their checksum"
    except (OSError, ValueError, CxrsynthError) as exc:  # read_json: DataNotFoundError when missing
        return f"state.json is missing or unreadable ({exc.__class__.__name__})"
    return None


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest intact checkpoint of a run, or ``None`` when there is none.

    ``latest.json`` names the newest one, but a kill between renaming a folder and updating the pointer,
    a deleted folder or a damaged file must not send ``--resume`` back to step 0: every ``step-*``
    folder is a candidate, newest first, and the first whose tensors match their checksum wins. When
    that is not the one ``latest.json`` names, or newer folders are skipped, it says so on stderr.
    Raises :class:`CheckpointError` when there are checkpoints but none is intact.
    """
    ckpt_root = Path(run_dir) / "checkpoints"
    pointer = ckpt_root / "latest.json"
    named = None
    if pointer.is_file():
        try:
            named = str(read_json(pointer)["path"])
        except (OSError, ValueError, KeyError, TypeError):
            print(f"cxrsynth: {pointer} is unreadable; looking for the newest intact checkpoint", file=sys.stderr)
    skipped = []
    for path in reversed(_step_folders(ckpt_root)):
        problem = checkpoint_problem(path)
        if problem:
            skipped.append(f"{path.name} ({problem})")
            continue
        if skipped or (named is not None and named != path.name):
            why = "; ".join(skipped) if skipped else f"latest.json names {named}, but this is the newest intact one"
            print(f"cxrsynth: resuming from {path} instead: {why}", file=sys.stderr)
        return path
    if skipped:
        # Starting again from step 0 over damaged checkpoints is a choice for a person, not a default.
        raise CheckpointError(f"no intact checkpoint in this run: {'; '.join(skipped)}", ckpt_root,
                              "move the damaged step-* folders aside (or the whole checkpoints folder to start over)")
    return None


def load_checkpoint(path: Path, nets: dict[str, nn.Module], optimizers: dict, schedulers: dict, pools: dict,
                    device: torch.device) -> dict:
    """Restore everything saved by :func:`save_checkpoint`; returns ``state.json``."""
    state = read_json(path / "state.json")
    tfile = path / "tensors.safetensors"
    if not tfile.is_file() or sha256_file(tfile) != state.get("tensors_sha256"):
        raise CheckpointError("checkpoint tensors are missing or do not match their checksum", tfile,
                              "rerun with --resume: it starts from the newest intact checkpoint and says which")
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


def tensors_sha256(sd: dict[str, torch.Tensor]) -> str:
    """A hash of the weights alone: every tensor's name, dtype, shape and bytes, in name order.

    Independent of the file's metadata and layout, so it names the weights wherever they are stored.
    """
    h = hashlib.sha256()
    for name in sorted(sd):
        t = sd[name].detach().cpu().contiguous()
        h.update(f"{name}|{str(t.dtype).removeprefix('torch.')}|{list(t.shape)}\n".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def translator_id(task: str, info: dict) -> str:
    """``<task>-<first 12 hex of the tensors' hash>``: the public name of a translator's weights."""
    digest = info.get("tensors_sha256") or info["sha256"]
    return f"{task}-{digest[:12]}"


def export_generator(net: nn.Module, path: Path, arch: dict, extra: dict | None = None) -> dict:
    """Write a weights-only generator (safetensors) and its JSON description; returns the description.

    The file is byte-identical for identical weights and ``arch``. The description holds ``sha256``
    (of the file) and ``tensors_sha256`` (of the weights, see :func:`translator_id`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().float().cpu().contiguous() for k, v in _unwrap(net).state_dict().items()}
    refuse_non_finite_weights(sd, path)
    data = canonical_safetensors(save(sd, metadata={"format": "pt", "arch": json.dumps(arch, sort_keys=True)}))
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    info = {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "tensors_sha256": tensors_sha256(sd),
            "arch": arch, **(extra or {})}
    write_json(path.with_suffix(".json"), info)
    return info


def load_generator(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Load a generator exported by :func:`export_generator`, checking its checksum when described."""
    from .networks import build_generator

    path = Path(path)
    if path.is_dir():
        path = TranslatorFolder(path).generator
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
    info["tensors_sha256"] = tensors_sha256(sd)  # recomputed: the description may predate the field
    return net.to(device).eval(), info
