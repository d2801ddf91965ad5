"""The audit's classifier embedding sees images at the size its classifier was trained at: a CNN's pooled
features depend on scale, so a 128 px benchmark classifier auditing a 256 px release must not be shown 256 px
images (the fifteenth session found its KIDs off by 1.3x to 40x that way)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from cxrsynth.core.errors import CheckpointError
from cxrsynth.data.images import resize_square
from cxrsynth.measure.classifiers import build, file_image_size
from cxrsynth.stages.audit.embed import ClassifierEmbedding, embed
from cxrsynth.stages.benchmark.run import _save_model


@pytest.mark.no_data
def test_a_classifier_embeds_images_at_the_size_it_was_trained_at(tmp_path):
    torch.manual_seed(0)
    model = build("resnet18")
    _save_model(model, tmp_path / "sized.safetensors", "resnet18", 32)
    _save_model(model, tmp_path / "unsized.safetensors", "resnet18")  # as files written before the metadata
    assert file_image_size(tmp_path / "sized.safetensors") == 32 and file_image_size(tmp_path / "unsized.safetensors") is None
    # two metadata keys are written in sorted order: safetensors' own order varies between processes, which
    # gave one cell's model two sha256s (a SLURM job's and the serial run's) before the header was sorted
    raw = (tmp_path / "sized.safetensors").read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")], object_pairs_hook=list)
    assert header[0] == ("__metadata__", [("arch", "resnet18"), ("image_size", "32")])

    # smooth 64 px images, and the 32 px copies the loader would have trained the classifier on
    rng = np.random.default_rng(0)
    big = np.stack([resize_square(Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)), 64) for _ in range(6)])
    small = np.stack([resize_square(Image.fromarray(b), 32) for b in big])
    sized, unsized = ClassifierEmbedding(tmp_path / "sized.safetensors"), ClassifierEmbedding(tmp_path / "unsized.safetensors")
    assert sized.name.endswith("(sized.safetensors, at 32 px)") and unsized.name.endswith("(unsized.safetensors)")

    at_size = embed(sized, small)
    assert np.allclose(embed(unsized, small), at_size, atol=1e-6)  # at the trained size nothing is resized
    resized_gap = np.abs(embed(sized, big) - at_size).mean()
    unresized_gap = np.abs(embed(unsized, big) - at_size).mean()
    assert resized_gap < 0.25 * unresized_gap, (resized_gap, unresized_gap)

    # a file may only state a plausible whole number
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp_path / "odd.safetensors"), metadata={"arch": "resnet18", "image_size": "12; rm -rf"})
    with pytest.raises(CheckpointError, match=r"impossible image size.*odd\.safetensors"):
        ClassifierEmbedding(tmp_path / "odd.safetensors")
