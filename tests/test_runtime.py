"""One Runtime per process: device, numerics and ranks resolved in one place (cxrsynth/core/runtime.py)."""

from __future__ import annotations

import pytest
import torch

from cxrsynth.core.errors import ConfigError
from cxrsynth.core.runtime import Ranks, Runtime

pytestmark = pytest.mark.no_data


def test_ranks_from_torchrun_environment(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert Ranks.from_env() == Ranks(0, 1, 0) and Ranks.from_env().main
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert Ranks.from_env() == Ranks(3, 4, 1) and not Ranks.from_env().main


@pytest.mark.parametrize("precision, dtype, name", [("fp32", None, "fp32"), ("bf16", torch.bfloat16, "bf16")])
def test_resolve_on_the_cpu(precision, dtype, name):
    rt = Runtime.resolve("cpu", precision, None, Ranks(1, 2, 0))
    assert (rt.device, rt.amp_dtype, rt.precision, rt.channels_last) == (torch.device("cpu"), dtype, name, False)
    assert (rt.rank, rt.world, rt.main) == (1, 2, False)
    assert Runtime.resolve("cpu", "fp32", True, Ranks()).channels_last  # an explicit choice is kept


def test_a_bad_device_is_a_config_error():
    with pytest.raises(ConfigError, match="not a device name"):
        Runtime.resolve("gpu0", "fp32", None, Ranks())


def test_runtime_is_frozen():
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        Runtime(torch.device("cpu")).rank = 1
