"""Optional dependencies, grouped by use (``pip install "cxrsynth[bench]"`` etc.).

The core install is what loading, verifying, ingesting, training, generating, packaging and auditing need.
Packages only some users want live in extras, so that someone who wants ``cxrsynth.load`` or ``verify`` does
not install OpenCV (through grad-cam) or a job scheduler's client:

- ``bench``: grad-cam (the benchmark's Grad-CAM figures) and timm (``--model timm:NAME``);
- ``audit``: torch-fidelity (Inception FID/KID, with weights from a local file);
- ``cluster``: submitit (``--launcher local|slurm``).

:func:`require` imports one of them, or raises one line naming the extra to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from .errors import ConfigError

#: import name -> (distribution on PyPI, extra that brings it)
EXTRAS: dict[str, tuple[str, str]] = {
    "pytorch_grad_cam": ("grad-cam", "bench"),
    "timm": ("timm", "bench"),
    "torch_fidelity": ("torch-fidelity", "audit"),
    "submitit": ("submitit", "cluster"),
}


class MissingExtraError(ConfigError):
    """An optional package that this use needs is not installed."""


def available(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    return importlib.util.find_spec(module) is not None


def require(module: str, what: str, alternative: str | None = None) -> ModuleType:
    """``module`` imported, or :class:`MissingExtraError`: ``<what> needs <dist> (not installed); pip install
    "cxrsynth[extra]"`` (plus ``alternative``, a way to do without it, where there is one)."""
    dist, extra = EXTRAS[module]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = f'pip install "cxrsynth[{extra}]"' + (f", or {alternative}" if alternative else "")
        raise MissingExtraError(f"{what} needs the optional package {dist}", "not installed", hint) from exc
