"""Choosing the device, the autocast dtype and the memory format, the same way for every stage.

``precision: auto`` means bf16 autocast where the hardware does bf16 natively (CUDA; CPUs with
AVX512-BF16 / AMX, as oneDNN reports), fp32 elsewhere: on this project's 2-core CI CPU bf16 autocast
halves the training step (6.4 -> 3.1 s at 256 px, bench/bench_translate.py). ``fp32`` keeps the
canonical numerics. ``channels_last`` is on by default on CUDA only; on the CPU it measured slower.
"""

from __future__ import annotations

import os

import torch

from .errors import ConfigError


def pick_device(spec: str = "auto", local: int | None = None) -> torch.device:
    """The device named by ``spec``; ``auto`` and a bare ``cuda`` mean the GPU of local rank ``local``
    (default: ``$LOCAL_RANK``, as torchrun sets it)."""
    local = int(os.environ.get("LOCAL_RANK", "0")) if local is None else local
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local)
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError as exc:
        raise ConfigError("not a device name", spec, "use auto, cpu, cuda, cuda:N or mps") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device cuda asked for, but torch sees no CUDA GPU", spec)
        if dev.index is None:
            dev = torch.device("cuda", local)
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device mps asked for, but torch sees no Apple GPU", spec)
    return dev


def cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()):
        return torch.bfloat16
    return None


def use_channels_last(flag: bool | None, device: torch.device) -> bool:
    return flag if flag is not None else device.type == "cuda"
