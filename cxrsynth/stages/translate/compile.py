"""``compile: auto | on | off``: torch.compile (inductor) for the translator networks, where it pays.

Why and where ``auto`` turns it on (decided from measurements, not by hope):

- **Generation on the CPU: on, for runs long enough to repay the compile.** The compiled bf16 generator
  forward measured 1.26x faster than eager bf16 on the 2-core AMD EPYC CI machine (0.325 -> 0.257 s per
  256 px image, issue 14), and this file's smoke run agreed in direction (see ``bench/bench_speed.py``).
  Compiling costs tens of seconds per process on a 2-core CPU (inductor writes and builds C++ kernels;
  the on-disk inductor cache makes later processes cheaper), so at ~0.07 s saved per image it only pays
  from about :data:`AUTO_MIN_IMAGES` images per generator onwards; shorter runs (tests, ``--limit``
  looks) stay eager. The count is the config's whole count, not one rank's share, so that every rank of
  a ``--world N`` run makes the same choice (compiled pixels may differ from eager ones by a grey level).
- **Training: whichever measured faster.** Under ``auto`` a training run compiles only where
  ``bench/bench_speed.py`` measured its workload (preset, size, batch, precision, memory format) faster
  compiled on this machine (``compile_choice.py``); unmeasured workloads stay eager. The step compiles
  forward *and* backward graphs of four networks and recompiles the discriminators for their
  frozen/trainable phases; on the 2-core AMD EPYC it was 7% faster for the canonical step and slower
  for the ``paper`` update, so no fixed rule fits.
- **CUDA: off under ``auto``** (not yet measured with a GPU at hand: ``bench/gpu_check.sh`` has the
  section that measures it). With ``compile=on`` on CUDA the mode is ``reduce-overhead``, i.e. CUDA
  graphs, which is what a launch-bound batch-1 step needs; every step then starts with
  :func:`begin_step` and compiled outputs are cloned so that nothing outlives its graph's memory. CUDA
  graphs are never used on the CPU (there is no launch overhead to remove).

Guarantees:

- a module is compiled **in place** by giving it a compiled ``forward``: its ``state_dict`` keeps the
  plain keys (no ``_orig_mod.`` prefix), so checkpoints and the exported generator are byte-identical
  with or without compile, and a checkpoint written with ``compile=on`` resumes with ``compile=off``;
- a module is compiled once per object (calling :func:`maybe_compile` again is a no-op), and dynamo's
  own cache plus inductor's on-disk cache keep the cost to once per process;
- no compiler (or any inductor failure at the first call) never crashes: the module falls back to eager
  with one line on stderr;
- the compiled output matches eager within bf16 tolerance (``tests/test_compile.py``).
"""

from __future__ import annotations

import shutil
import sys
from typing import Callable, Literal

import torch
from torch import nn

from ...core.errors import ConfigError

CompileMode = Literal["auto", "on", "off"]
Stage = Literal["train", "generate"]

#: Under ``auto``, generation on the CPU compiles only when one generator translates at least this many
#: images: tens of seconds of compile on a 2-core CPU over ~0.07 s saved per 256 px image.
AUTO_MIN_IMAGES = 1000

_ATTR = "_cxrsynth_compiled"  # set on a module compiled by maybe_compile: its mode
_warned = False


def compile_mode(value: str | bool) -> str:
    """Normalise a config value: YAML reads ``on``/``off`` as booleans, so ``--set compile=on`` arrives as
    ``True``; both spellings mean the same here."""
    if value is True:
        return "on"
    if value is False:
        return "off"
    if value not in ("auto", "on", "off"):
        raise ConfigError("compile must be one of ['auto', 'on', 'off']", value)
    return value


def wanted(mode: str, device: torch.device, stage: Stage, images: int | None = None, workload=None) -> bool:
    """Whether ``mode`` compiles ``stage`` on ``device`` (``images``: how many one generator translates;
    ``workload``: the training step's :class:`~.compile_choice.Workload`, looked up in the measurements)."""
    mode = compile_mode(mode)
    if mode != "auto":
        return mode == "on"
    if stage == "train":
        from .compile_choice import compiled_is_faster

        return workload is not None and bool(compiled_is_faster(device, workload))
    return device.type == "cpu" and (images or 0) >= AUTO_MIN_IMAGES


def _say_once(why: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        print(f"cxrsynth: torch.compile unavailable ({why}); running eager", file=sys.stderr)


def compiler_missing(device: torch.device) -> str | None:
    """Why inductor cannot build kernels for ``device`` here, or None. Cheap: checked before a compile
    that would otherwise fail only after minutes of tracing."""
    if device.type == "cpu":
        from torch._inductor import config

        names = config.cpp.cxx if isinstance(config.cpp.cxx, (list, tuple)) else (config.cpp.cxx,)
        if not any(n and shutil.which(n) for n in names if n) and not any(shutil.which(n) for n in ("g++", "c++", "clang++")):
            return "no C++ compiler on PATH"
    elif device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return "triton is not installed"
    return None


def _errors() -> tuple[type[BaseException], ...]:
    """The exceptions a failed compile raises (inductor's, dynamo's wrapper, a missing compiler)."""
    out: list[type[BaseException]] = []
    try:
        from torch._dynamo.exc import BackendCompilerFailed

        out.append(BackendCompilerFailed)
    except ImportError:
        pass
    try:
        from torch._inductor import exc

        out += [getattr(exc, n) for n in ("InductorError", "CppCompileError") if hasattr(exc, n)]
    except ImportError:
        pass
    return tuple(out) or (RuntimeError,)


def _pad_batch(x: torch.Tensor, batch: int) -> torch.Tensor:
    """``x`` zero-padded along its first dimension to ``batch``, with the same strides (so the same memory
    format, which the compiled graph's guards check): the batch dimension is the outermost one."""
    with torch.inference_mode(x.is_inference()):  # an inference tensor only if x is one (a guard too)
        out = x.new_empty_strided((batch, *x.shape[1:]), x.stride())
        out[:x.shape[0]] = x
        out[x.shape[0]:] = 0
    return out


def maybe_compile(net: nn.Module, mode: str, device: torch.device, stage: Stage, images: int | None = None,
                  fixed_batch: bool = False, workload=None) -> nn.Module:
    """``net`` with a compiled ``forward`` when :func:`wanted` says so; ``net`` unchanged otherwise.

    ``fixed_batch``: a smaller batch (the last of a shard) is zero-padded to the largest batch seen and
    its outputs cut back, so that it reuses the compiled graph instead of paying a second compile (the
    networks treat every image of a batch independently). Returns ``net`` itself in every case.
    """
    if getattr(net, _ATTR, None) is not None or not wanted(mode, device, stage, images, workload):
        return net
    why = compiler_missing(device)
    if why:
        _say_once(why)
        return net
    cuda_graphs = device.type == "cuda"
    compiled = torch.compile(net.forward, mode="reduce-overhead" if cuda_graphs else None)
    errors = _errors()
    largest = [0]

    def forward(*args, **kwargs):
        x = args[0] if args else None
        cut = None
        if fixed_batch and torch.is_tensor(x):
            largest[0] = max(largest[0], x.shape[0])
            if x.shape[0] < largest[0]:
                cut, args = x.shape[0], (_pad_batch(x, largest[0]), *args[1:])
        try:
            y = compiled(*args, **kwargs)
        except errors as exc:  # a compile failure surfaces at the first call: fall back for good
            _say_once(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''}")
            del net.forward
            object.__setattr__(net, _ATTR, None)
            y = net(*args, **kwargs)
        if cuda_graphs and torch.is_tensor(y):
            y = y.clone()  # a CUDA graph's outputs are overwritten by its next replay
        return y[:cut] if cut is not None else y

    net.forward = forward
    object.__setattr__(net, _ATTR, "reduce-overhead" if cuda_graphs else "default")
    return net


def is_compiled(net: nn.Module) -> bool:
    return getattr(net, _ATTR, None) is not None


def begin_step(nets) -> None:
    """Mark a new training iteration for CUDA graphs (cudagraph trees), when any of ``nets`` uses them."""
    if any(getattr(n.module if hasattr(n, "module") else n, _ATTR, None) == "reduce-overhead" for n in nets):
        torch.compiler.cudagraph_mark_step_begin()


def eager() -> Callable:
    """A context in which compiled modules run their eager code (rare calls, e.g. sample grids, that would
    otherwise each cost a recompile for their own batch size)."""
    return torch.compiler.set_stance("force_eager")
