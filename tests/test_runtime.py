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


@pytest.mark.xdist_group("rigorous")  # numba compiles UMAP once per process: where the rigorous tests did
def test_umap_leaves_torch_on_the_threads_it_had(tmp_path):
    """numba's OpenMP layer (UMAP in the benchmark's figures) put torch back on numba's thread count (every
    core) when it finished: after one figure a process set to one thread trained on two, 20-100 times slower
    beside a second busy process. The count asked for here differs from numba's own, so the test fails on any
    machine if the figure does not give torch its count back."""
    import numba
    import numpy as np

    from cxrsynth.core.runtime import torch_threads
    from cxrsynth.stages.benchmark.figures import umap_features

    asked = numba.config.NUMBA_NUM_THREADS + 1
    x = np.random.RandomState(0).randn(30, 8)
    with torch_threads(asked):
        umap_features(tmp_path / "umap.png", "normal-covid", {"real": (x, np.repeat([0, 1, 2], 10))})
        assert torch.get_num_threads() == asked
    with torch_threads(1):
        with pytest.raises(RuntimeError), torch_threads(asked):  # given back on an error too
            raise RuntimeError
        assert torch.get_num_threads() == 1
