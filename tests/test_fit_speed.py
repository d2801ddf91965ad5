"""Classifier training speed-ups keep the results: the same batches as before, a lossless uint8 cache,
deterministic mixed precision, and clear errors for a precision the device lacks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cxrsynth.measure.classifiers import Classifier
from cxrsynth.stages.benchmark.fit import FitConfig, decode_once, fit
from cxrsynth.core.config import resolve
from cxrsynth.core.errors import ConfigError

pytestmark = pytest.mark.no_data


def _data(n: int = 20, size: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=g).float() / 255
    return torch.utils.data.TensorDataset(x, torch.arange(n) % 2)


def _model() -> Classifier:
    torch.manual_seed(0)
    stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    return Classifier("tiny", stem, 4, stem[0])


def test_decode_once_is_lossless_uint8_or_float():
    ds = _data()
    images, labels = decode_once(ds)
    assert images.dtype == torch.uint8 and torch.equal(images.float() / 255, ds.tensors[0])
    assert torch.equal(labels, ds.tensors[1])
    odd = torch.utils.data.TensorDataset(ds.tensors[0] * 0.5, ds.tensors[1])  # not k / 255: kept as float
    assert decode_once(odd)[0].dtype == torch.float32


def test_batches_are_the_ones_a_shuffling_loader_over_the_items_draws():
    ds = _data()
    items = torch.utils.data.DataLoader(ds, batch_size=6, shuffle=True, generator=torch.Generator().manual_seed(3))
    index = torch.utils.data.DataLoader(range(len(ds)), batch_size=6, shuffle=True,
                                        generator=torch.Generator().manual_seed(3))
    assert [y.tolist() for _, y in items] == [ds.tensors[1][i].tolist() for i in index]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fit_is_deterministic_for_a_seed(precision):
    runs = []
    for _ in range(2):
        model = _model()
        hist = fit(model, _data(), _data(6, seed=1), FitConfig(max_epochs=2, batch_size=8, precision=precision), 0, "cpu")
        runs.append(([h["train_loss"] for h in hist["history"]], [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


def test_precision_option():
    assert FitConfig().precision == "auto"
    with pytest.raises(ConfigError, match="precision"):
        resolve(FitConfig, overrides=["precision=int8"])
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        fit(_model(), _data(), _data(6), FitConfig(max_epochs=1, precision="fp16"), 0, "cpu")
