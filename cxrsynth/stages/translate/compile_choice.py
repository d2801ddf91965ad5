"""What ``compile: auto`` does for training: whichever of eager and compiled measured faster here.

Why a record and not a rule: whether inductor beats eager for a training step depends on the machine,
the recipe and the image size (on the 2-core AMD EPYC it was 7% faster for the canonical step and 23%
slower for the ``paper`` update at 128 px), so no fixed rule is right everywhere. ``bench/bench_speed.py``
times both for each (preset, size, batch, precision, memory format) it runs and writes the result here
with :func:`record`; a training run under ``auto`` then compiles only if its own workload was measured
faster compiled on this machine (the processor's name, the device type and the torch version all match).
Nothing measured means eager, which is what ``auto`` did before any measurement existed.

The record is one JSON file, ``$CXRSYNTH_COMPILE_RECORD`` or ``~/.cache/cxrsynth/compile-speed.json``;
it is never part of a run (a run may resume under another ``compile`` value; ``compile.py``).
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ...core.paths import write_json

RECORD_ENV = "CXRSYNTH_COMPILE_RECORD"


@dataclass(frozen=True)
class Workload:
    """What a training step's speed depends on, besides the machine."""

    preset: str
    size: int
    batch: int
    precision: str  # fp32 | bf16 | fp16: the autocast dtype in use
    channels_last: bool

    def key(self) -> str:
        return "|".join(str(v) for v in asdict(self).values())


def record_path() -> Path:
    return Path(os.environ.get(RECORD_ENV) or Path.home() / ".cache" / "cxrsynth" / "compile-speed.json")


def machine(device: torch.device) -> str:
    """The processor (or GPU) by name, with the device type and torch version: a record holds only where
    all three are the same."""
    name = None
    if device.type == "cuda" and torch.cuda.is_available():
        name = torch.cuda.get_device_name(device)
    else:
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
    return f"{name or platform.processor() or platform.machine()}|{device.type}|{torch.__version__}"


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: as if nothing were measured
        return {}
    return data if isinstance(data, dict) else {}


def record(device: torch.device, work: Workload, eager_s: float, compiled_s: float, path: Path | None = None) -> Path:
    """Keep the seconds per step of both modes for ``work`` on this machine (replacing an older pair)."""
    path = path or record_path()
    data = _read(path)
    data.setdefault(machine(device), {})[work.key()] = {"eager_s": round(eager_s, 4), "compiled_s": round(compiled_s, 4)}
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_json(path, data)


def compiled_is_faster(device: torch.device, work: Workload, path: Path | None = None) -> bool | None:
    """True / False where ``work`` was measured on this machine; None where it never was."""
    got = _read(path or record_path()).get(machine(device), {}).get(work.key())
    if not isinstance(got, dict) or not {"eager_s", "compiled_s"} <= got.keys():
        return None
    return float(got["compiled_s"]) < float(got["eager_s"])
