"""Finite or refused: training stops at the first non-finite loss, and no checkpoint or exported generator
holds a non-finite weight.

``--set lr=.inf`` once trained for a step and exported a translator whose 7.8 M parameters were all NaN or
infinite, with exit 0. The options are now checked (``config.finite``), but a run can still diverge on its
own (a learning rate that is finite but far too large, a bad batch), so the numbers are checked where they
are produced:

- the losses when the loss log copies them to the host (every ``log_every`` steps and before every
  checkpoint), so no step pays for a device synchronisation of its own; the first bad row is named by step
  and loss, even when the check runs a few steps later;
- the weights when a checkpoint or the generator is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from ...core.errors import NonFiniteError

ADVICE = "nothing was saved from it; lower the learning rate (--set lr=...) or check the data, then train again"


def stop_at_non_finite_loss(steps: Sequence[int], keys: Sequence[str], values: torch.Tensor, where: Path) -> None:
    """``values`` (rows x keys, on the host): the losses of ``steps``. Raise at the first non-finite one."""
    bad = ~torch.isfinite(values)
    if not bool(bad.any()):
        return
    row = int(bad.any(1).nonzero()[0])
    col = int(bad[row].nonzero()[0])
    raise NonFiniteError(f"training stopped at step {steps[row]}: the loss {keys[col]} is {values[row, col].item()}",
                         where, ADVICE)


def refuse_non_finite_weights(tensors: Mapping[str, torch.Tensor], where: Path) -> None:
    """Refuse to write ``tensors`` (a checkpoint's or an export's) when any holds NaN or infinity."""
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise NonFiniteError(f"{len(bad)} tensors hold NaN or infinite values (first: {bad[0]}); not written",
                             where, ADVICE)
