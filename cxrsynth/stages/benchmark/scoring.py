"""Someone else's trained classifier, made scoreable: its head checked, its input prepared.

The benchmark's own classifiers (``cxrsynth.measure.classifiers.Classifier``) take 1-channel images in [0, 1]
and end in 2 softmax logits, COVID-19 at index 1. A classifier trained elsewhere differs in three ways,
and scoring it as if it did not gives numbers that look fine and mean nothing (issue 21: a plain
torchvision state dict was scored with a random 2-unit head, AUROC 0.359, without a word):

- **its head**: 1 logit (sigmoid, the usual binary fine-tune) or 2 logits (softmax; which one is
  COVID-19 is ``positive_index``). Anything else (ImageNet's 1000 classes, a missing head) is refused,
  naming what was found, since no positive class can be read from it;
- **its input range** (``normalize``): ``none`` = [0, 1] (the paper's 1/255 scaling, what the benchmark
  trains with); ``imagenet`` = ImageNet mean / std per channel (torchvision and timm fine-tunes);
  ``xrv`` = torchxrayvision's [-1024, 1024];
- **its channels**: 1 or 3, read from its first convolution unless given; grey images are repeated to 3.

:class:`ScoringModel` wraps such a network so that ``features`` are its own logits and ``head`` turns
them into two logits with COVID-19 at index 1 (for one logit z: [0, z], whose softmax is sigmoid(z)).
So the benchmark's ``predict`` and controls score it exactly as they score their own models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torchvision
from torch import nn

from ...measure.classifiers import Classifier, build, factory_model, final_linear, last_conv, load_checked, load_state_file
from ...core.errors import CheckpointError, ConfigError

Normalize = Literal["none", "imagenet", "xrv"]
NORMALIZE = ("none", "imagenet", "xrv")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# One grey channel under ImageNet normalisation: the mean of the three channels' statistics.
IMAGENET_GREY = (sum(IMAGENET_MEAN) / 3, sum(IMAGENET_STD) / 3)
XRV_RANGE = 1024.0  # torchxrayvision: pixels in [-1024, 1024]


class Prepare(nn.Module):
    """Images (B, 1, H, W) in [0, 1] -> what the network expects: ``channels`` and ``normalize``."""

    def __init__(self, channels: int, normalize: Normalize):
        super().__init__()
        if normalize not in NORMALIZE:
            raise ConfigError("unknown normalize", normalize, f"use one of {', '.join(NORMALIZE)}")
        self.channels, self.normalize = channels, normalize
        if normalize == "imagenet":
            mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((IMAGENET_GREY[0],), (IMAGENET_GREY[1],))
            self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels != x.shape[1]:
            x = x.expand(-1, self.channels, -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
        if self.normalize == "imagenet":
            return (x - self.mean) / self.std
        if self.normalize == "xrv":
            return x * (2 * XRV_RANGE) - XRV_RANGE
        return x


class ScoringModel(nn.Module):
    """A classifier with 1 (sigmoid) or 2 (softmax) logits, seen the way the benchmark scores models:
    ``head(features(x))`` are two logits with COVID-19 at index 1."""

    def __init__(self, net: nn.Module, outputs: int, positive_index: int, channels: int, normalize: Normalize):
        super().__init__()
        self.prepare, self.net = Prepare(channels, normalize), net
        self.outputs, self.positive_index = outputs, positive_index
        object.__setattr__(self, "_cam_layer", last_conv(net))  # a layer of net already; not registered twice

    @property
    def cam_layer(self) -> nn.Module | None:
        return self._cam_layer

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The network's own logits (its pooled features are inside it)."""
        out = self.net(self.prepare(x))
        if isinstance(out, (tuple, list)):  # e.g. a model that also returns auxiliary outputs
            out = out[0]
        return out.reshape(out.shape[0], -1).float()

    def head(self, z: torch.Tensor) -> torch.Tensor:
        if z.shape[1] != self.outputs:
            raise CheckpointError(f"the model gave {z.shape[1]} outputs per image; expected {self.outputs}",
                                  type(self.net).__name__)
        if self.outputs == 1:
            return torch.cat([torch.zeros_like(z), z], 1)  # softmax([0, z])[1] == sigmoid(z)
        return torch.stack([z[:, 1 - self.positive_index], z[:, self.positive_index]], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def describe(self) -> str:
        return ("1 logit (sigmoid)" if self.outputs == 1
                else f"2 logits (softmax), COVID-19 at index {self.positive_index}")


def head_outputs(n: int, where: str, path: str | Path) -> int:
    """``n`` outputs of the layer ``where``, if it is a binary head; else the refusal naming it."""
    if n not in (1, 2):
        raise CheckpointError(f"{where} has {n} outputs; expected 1 (sigmoid) or 2 (softmax) outputs", path,
                              "this is not a binary COVID-19 classifier (an ImageNet checkpoint has 1000); "
                              "fine-tune it first, or train it with `cxrsynth benchmark --init`")
    return n


def _positive(outputs: int, positive_index: int | None) -> int:
    if positive_index is None:
        return 1
    if outputs == 1:
        raise ConfigError("--positive-index goes with a 2-logit head; this one has 1 logit (sigmoid)", positive_index)
    if positive_index not in (0, 1):
        raise ConfigError("--positive-index must be 0 or 1", positive_index)
    return positive_index


def input_channels(net: nn.Module) -> int:
    """The channels a network reads: its first convolution's, else 3."""
    conv = next((m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Conv1d))), None)
    return conv.in_channels if conv is not None else 3


def from_module(net: nn.Module, normalize: Normalize = "none", positive_index: int | None = None,
                channels: int | None = None, image_size: int = 64) -> ScoringModel | Classifier:
    """An ``nn.Module`` given in Python. A cxrsynth :class:`Classifier` is used as it is (its input
    is [0, 1] by construction); any other module must map (B, channels, H, W) to 1 or 2 logits, which
    is checked on a blank image before any data is read."""
    if isinstance(net, ScoringModel):
        return net
    if isinstance(net, Classifier) and normalize == "none" and positive_index in (None, 1):
        return net
    if not isinstance(net, nn.Module):
        raise ConfigError("evaluate() takes an nn.Module or a checkpoint path", type(net).__name__)
    channels = channels or input_channels(net)
    was = net.training
    where = next(net.parameters(), torch.zeros(0)).device  # a model given on a GPU is probed there
    try:
        with torch.no_grad():
            out = net.eval()(torch.zeros(1, channels, image_size, image_size, device=where))
    except RuntimeError as exc:  # wrong channels, a size the model cannot take...
        raise ConfigError(f"the model does not run on a blank {channels}-channel {image_size} px image",
                          type(net).__name__, f"{str(exc).splitlines()[0][:200]}; give the channels and image size "
                          "it was trained with") from exc
    finally:
        net.train(was)
    out = out[0] if isinstance(out, (tuple, list)) else out
    n = out.reshape(1, -1).shape[1]
    head_outputs(n, f"the model's output {list(out.shape)}", type(net).__name__)
    return ScoringModel(net, n, _positive(n, positive_index), channels, normalize)


def from_file(arch: str, path: str | Path, normalize: Normalize = "none", positive_index: int | None = None,
              image_size: int = 64) -> ScoringModel | Classifier:
    """The classifier in a checkpoint file, its head checked.

    - a cxrsynth classifier (keys ``stem.*`` / ``head.*``, as ``cxrsynth benchmark`` writes): built by
      :func:`cxrsynth.measure.classifiers.build`; it must hold its head;
    - a torchvision ``arch``'s own state dict: the full model, its output layer sized by the file;
    - ``timm:NAME``: the timm model with the file's number of classes;
    - ``package.module:factory``: the factory's model must give 1 or 2 logits itself.
    """
    sd = load_state_file(path)
    if any(k.startswith(("stem.", "head.")) for k in sd):
        if "head.weight" not in sd:
            raise CheckpointError("this cxrsynth classifier checkpoint has no head (head.weight)", path,
                                  "it would be scored with a random head; give the model.safetensors of a finished run")
        head_outputs(sd["head.weight"].shape[0], "head", path)
        if sd["head.weight"].shape[0] == 1:
            raise CheckpointError("a cxrsynth classifier has a 2-logit head; this one has 1", path)
        return from_module(build(arch, str(path)), normalize, positive_index)
    if arch.startswith("timm:"):
        net = _timm_full(arch[5:], sd, path)
    elif ":" in arch:
        net = factory_model(arch)  # the whole classifier here; from_module checks its output
    else:
        net = _torchvision_full(arch, sd, path)
    load_checked(net, sd, path, arch)
    return from_module(net, normalize, positive_index, image_size=image_size)


def _resize_head(net: nn.Module, name: str, outputs: int) -> None:
    parent, _, leaf = name.rpartition(".")
    owner = net.get_submodule(parent) if parent else net
    old = getattr(owner, leaf)
    setattr(owner, leaf, nn.Linear(old.in_features, outputs, bias=old.bias is not None))


def _torchvision_full(arch: str, sd: dict, path) -> nn.Module:
    try:
        net = torchvision.models.get_model(arch, weights=None)
    except ValueError as exc:
        raise ConfigError("unknown model", arch, "give --model: the torchvision name, timm:NAME or "
                          "package.module:factory the checkpoint was trained as") from exc
    out = final_linear(net)
    key = f"{out}.weight"
    if out is None or key not in sd:
        raise CheckpointError(f"the checkpoint has no classifier head ({key} missing)", path,
                              f"it would be scored with a random head; is --model {arch} the architecture it was trained as?")
    _resize_head(net, out, head_outputs(sd[key].shape[0], out, path))
    return net


def _timm_full(name: str, sd: dict, path) -> nn.Module:
    import timm

    try:
        probe = timm.create_model(name, pretrained=False)
    except RuntimeError as exc:  # timm: "Unknown model (NAME)"
        raise ConfigError("unknown timm model", f"timm:{name}") from exc
    cls = (probe.pretrained_cfg or {}).get("classifier") or final_linear(probe)
    key = f"{cls}.weight"
    if key not in sd:
        raise CheckpointError(f"the checkpoint has no classifier head ({key} missing)", path,
                              "it would be scored with a random head")
    return timm.create_model(name, pretrained=False, num_classes=head_outputs(sd[key].shape[0], cls, path))

