"""Classifiers: shared by the benchmark (which trains them) and the audit (which embeds images with one).

A convolutional trunk with the paper's head (global average pooling, one dense layer of
2 units, softmax), taking 1-channel images repeated to 3 channels.

The trunk is named by ``model``:

- a torchvision classifier name (``vgg16``, ``resnet50``, ``densenet121``, ...);
- ``timm:NAME``: a timm model (``timm.list_models()``), built without its classifier; its weights come
  from a local file only (``init`` PATH), never from the network;
- ``package.module:factory``: a function taking no arguments and returning an ``nn.Module`` that maps
  (B, 3, H, W) images to feature maps (B, C, h, w), tokens (B, N, C) or features (B, C). This imports
  ``package.module`` and calls ``factory``: it runs that code, so it is taken only from the command line or
  a config file the user gave, never from a file being loaded (:func:`build_from_file` refuses it).

``init`` for torchvision models: ``random``; ``imagenet`` (torchvision's weights from the local torch hub cache,
``$TORCH_HOME/hub/checkpoints/<file>``: nothing is downloaded, and a missing file is a clear error
naming the file, where to put it and where to get it); or a path to a checkpoint (safetensors, or a
state dict read with ``torch.load(weights_only=True)``) of the same architecture. timm and factory models take ``random`` or a checkpoint path: either a
cxrsynth classifier (keys ``stem.*`` / ``head.*``) or the model's own state dict (its classifier keys
are left out).
"""

from __future__ import annotations

import importlib
import pickle
import re
from pathlib import Path

import torch
import torchvision
from torch import nn

from ..core.errors import CheckpointError, ConfigError
from ..core.extras import require

ACCEPTED = ("a torchvision classifier name (vgg16, resnet50, densenet121, ...: torchvision.models.list_models()), "
            "timm:NAME (timm.list_models()), or package.module:factory (a function returning an nn.Module; "
            "it is imported and run)")
# What a checkpoint file may name as its architecture: a torchvision name or timm:NAME, never code to import.
FILE_ARCH = re.compile(r"[A-Za-z0-9_]+|timm:[A-Za-z0-9_.-]+")


class GlobalPool(nn.Module):
    """Global average pooling of feature maps (B, C, h, w) or tokens (B, N, C); features (B, C) pass."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            return x.mean((2, 3))
        if x.ndim == 3:
            return x.mean(1)
        return x.flatten(1)


class ForwardFeatures(nn.Module):
    """A timm model's ``forward_features`` as a module (the trunk without pooling and classifier)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)


class GrayToRGB(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


class Classifier(nn.Module):
    """``stem`` (3 -> feature maps) -> global average pooling -> ``head`` (Linear to 2 logits)."""

    def __init__(self, arch: str, stem: nn.Module, channels: int, cam_layer: nn.Module):
        super().__init__()
        self.arch = arch
        self.gray = GrayToRGB()
        self.stem = stem
        self.pool = GlobalPool()
        self.head = nn.Linear(channels, 2)
        # Kept out of the module tree: it is a layer of ``stem`` already (and would be saved twice).
        object.__setattr__(self, "_cam_layer", cam_layer)

    @property
    def cam_layer(self) -> nn.Module:
        """The layer Grad-CAM reads: the last convolution for VGG (as the paper's Fig. 1, block5_conv3) and
        for timm / factory models, ``layer4[-1]`` for ResNet, ``features[-1]`` for DenseNet (None: no conv)."""
        return self._cam_layer

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stem(self.gray(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _stem(arch: str, net: nn.Module) -> tuple[nn.Module, int, nn.Module]:
    """The convolutional trunk of a torchvision classifier, its channel count and Grad-CAM layer."""
    if arch.startswith("vgg"):
        return net.features, net.classifier[0].in_features // 49, last_conv(net.features)
    if arch.startswith("densenet"):
        trunk = nn.Sequential(net.features, nn.ReLU(inplace=False))
        return trunk, net.classifier.in_features, net.features[-1]
    if hasattr(net, "fc") and isinstance(net.fc, nn.Linear):  # resnet, resnext, wide_resnet, regnet, googlenet...
        children = dict(net.named_children())
        keep = [m for n, m in children.items() if n not in ("fc", "avgpool", "dropout", "aux1", "aux2", "AuxLogits")]
        trunk = nn.Sequential(*keep)
        last = net.layer4[-1] if hasattr(net, "layer4") else [m for m in trunk.modules() if isinstance(m, nn.Conv2d)][-1]
        return trunk, net.fc.in_features, last
    if hasattr(net, "features") and hasattr(net, "classifier"):  # mobilenet, efficientnet, convnext...
        lin = [m for m in net.classifier.modules() if isinstance(m, nn.Linear)][0]
        return net.features, lin.in_features, net.features[-1]
    raise ConfigError("this torchvision model has no shape the benchmark knows", arch,
                      "use a CNN with .features/.classifier or .fc (vgg, resnet, densenet, mobilenet, efficientnet...)")


def last_conv(module: nn.Module) -> nn.Module | None:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None


def imagenet_state_dict(arch: str) -> dict:
    """torchvision's ImageNet weights for ``arch`` from the local cache only."""
    from torch.hub import get_dir

    weights = torchvision.models.get_model_weights(arch).DEFAULT
    fname = weights.url.rsplit("/", 1)[-1]
    cached = Path(get_dir()) / "checkpoints" / fname
    if not cached.is_file():
        raise CheckpointError(f"ImageNet weights for {arch} are not in the local torch cache", cached,
                              f"download {weights.url} and place it at that path, or use --init random")
    return torch.load(cached, map_location="cpu", weights_only=True)


def load_state_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint not found", path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors and torch raise several types
        raise CheckpointError("checkpoint is not a readable safetensors file or state dict", path,
                              why_unreadable(exc)) from exc
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise CheckpointError("checkpoint does not hold a state dict", path)
    return sd


def why_unreadable(exc: Exception) -> str:
    """Why a checkpoint did not load, in a few words. A refused pickle is named as such, without torch's
    advice to retry with ``weights_only=False``: that advice, next to an untrusted file, is how code gets run."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if isinstance(exc, pickle.UnpicklingError):
        detail = next((ln for ln in lines[1:] if "weights_only" not in ln and "torch.load" not in ln), "")
        return "a pickle that holds more than tensors, refused unread (loading it could run code)" + \
            (f": {detail[:160]}" if detail else "")
    first = lines[0] if lines else ""
    return f"{type(exc).__name__}: {'' if 'weights_only' in first else first[:200]}".rstrip(": ")


def file_metadata(path: str | Path) -> dict[str, str]:
    """A classifier safetensors file's metadata, read without its tensors; a CheckpointError naming the file
    when it is missing or not a readable safetensors file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError("classifier checkpoint not found", path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except Exception as exc:  # safetensors raises its own error type (not exported under a stable name)
        raise CheckpointError("classifier checkpoint is not a readable safetensors file", path,
                              f"{why_unreadable(exc)}; use a model.safetensors written by `cxrsynth benchmark`") from exc


def file_arch(path: str | Path) -> str:
    """The architecture a cxrsynth classifier safetensors file names in its metadata, checked: only a
    torchvision name or ``timm:NAME``. A file never chooses code to run, so ``package.module:factory`` in
    a file is refused unread (give such a model on the command line or in your config instead)."""
    arch = file_metadata(path).get("arch")
    if not arch:
        raise CheckpointError("classifier checkpoint has no architecture in its metadata", path,
                              "use a model.safetensors written by `cxrsynth benchmark`")
    if not FILE_ARCH.fullmatch(arch):
        raise CheckpointError("a checkpoint file may name only a torchvision or timm: architecture, never code to run",
                              path, f"its metadata names {arch[:80]!r}; a package.module:factory model is taken "
                              "only from the command line or your config file")
    return arch


def file_image_size(path: str | Path, metadata: dict[str, str] | None = None) -> int | None:
    """The image side a cxrsynth classifier file says it was trained at (metadata ``image_size``, written
    by `cxrsynth benchmark` since the fifteenth session), or None for a file that does not say. ``metadata``:
    the file's, when the caller has read it already."""
    value = (file_metadata(path) if metadata is None else metadata).get("image_size", "")
    if not value:
        return None
    if not value.isdigit() or not 16 <= int(value) <= 8192:
        raise CheckpointError("classifier checkpoint names an impossible image size", path,
                              f"its metadata says image_size={value[:20]!r}; expected a whole number of pixels, 16-8192")
    return int(value)


def build_from_file(path: str | Path) -> Classifier:
    """The classifier saved in a cxrsynth safetensors file, its architecture read (and checked) from the
    file's metadata by :func:`file_arch`: nothing named by the file is imported or called."""
    return build(file_arch(path), str(path))


def _timm_trunk(name: str) -> tuple[nn.Module, str | None]:
    timm = require("timm", f"--model timm:{name}")

    try:
        net = timm.create_model(name, pretrained=False, num_classes=0)
    except RuntimeError as exc:  # timm: "Unknown model (NAME)"
        raise ConfigError("unknown timm model", f"timm:{name}", f"accepted: {ACCEPTED}") from exc
    return net, (net.pretrained_cfg or {}).get("classifier")


def factory_model(spec: str) -> nn.Module:
    """What ``package.module:factory`` returns (imported and called: it runs that code), checked to be an nn.Module."""
    mod_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError("cannot import the model factory", spec, f"{type(exc).__name__}: {exc}; accepted: {ACCEPTED}") from exc
    if not callable(factory):
        raise ConfigError("the model factory is not a function", spec,
                          f"{attr} is a {type(factory).__name__}; name a function returning an nn.Module")
    net = factory()
    if not isinstance(net, nn.Module):
        raise ConfigError("the model factory did not return an nn.Module", spec, f"it returned {type(net).__name__}")
    return net


def load_checked(module: nn.Module, sd: dict, path: str | Path, arch: str,
                 may_miss: tuple[str, ...] = ()) -> None:
    """Load ``sd`` into ``module``, or raise one :class:`CheckpointError` naming what does not fit.

    torch's ``load_state_dict`` raises a ``RuntimeError`` listing every size mismatch, even with
    ``strict=False``; here the first mismatched tensor is named with both shapes, then missing and
    unexpected keys are counted. ``may_miss``: key prefixes that may be absent (a head the caller adds).
    """
    own = module.state_dict()
    bad = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in sd.items()
           if k in own and hasattr(v, "shape") and tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        k, theirs, ours = bad[0]
        more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
        raise CheckpointError("checkpoint tensors do not fit the architecture", path,
                              f"{k} is {list(theirs)} in the file, {list(ours)} in {arch}{more}")
    missing, unexpected = module.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.startswith(may_miss)] if may_miss else missing
    if missing or unexpected:
        first = (missing or unexpected)[0]
        raise CheckpointError("checkpoint does not fit the architecture", path,
                              f"{len(missing)} missing, {len(unexpected)} unexpected keys for {arch} "
                              f"(e.g. {first})")


def final_linear(net: nn.Module) -> str | None:
    """The name of a torchvision classifier's output layer (``fc``, ``classifier.6``, ``heads.head``...):
    its last ``nn.Linear``, which comes after any auxiliary heads in every torchvision model."""
    names = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    return names[-1] if names else None


def _load_trunk(net: nn.Module, init: str, arch: str, skip: str | None) -> None:
    """A plain state dict of the trunk's own architecture; ``skip``: the prefix of its classifier keys."""
    sd = load_state_file(init)
    if skip:
        sd = {k: v for k, v in sd.items() if not k.startswith(f"{skip}.")}
    load_checked(net, sd, init, arch)


def _build_other(arch: str, init: str) -> Classifier:
    """``timm:NAME`` and ``package.module:factory`` models."""
    if init == "imagenet":
        raise ConfigError("--init imagenet reads torchvision's cache; other models take weights from a local file",
                          arch, "use --init PATH (a state dict or safetensors of the model) or --init random")
    if arch.startswith("timm:"):
        net, skip = _timm_trunk(arch[5:])
        trunk = ForwardFeatures(net)
    else:
        net, skip = factory_model(arch), None
        trunk = net
    own = init not in ("random",) and any(k.startswith(("stem.", "head.")) for k in load_state_file(init))
    if init != "random" and not own:
        _load_trunk(net, init, arch, skip)
    with torch.no_grad():
        was = trunk.training
        out = GlobalPool()(trunk.eval()(torch.zeros(1, 3, 64, 64)))
        trunk.train(was)
    model = Classifier(arch, trunk, out.shape[1], last_conv(trunk))
    if own:
        load_checked(model, load_state_file(init), init, arch)
    return model


def build(arch: str, init: str = "random") -> Classifier:
    """The classifier named by ``arch`` (see the module docstring), initialised by ``init``."""
    if ":" in arch:
        return _build_other(arch, init)
    try:
        net = torchvision.models.get_model(arch, weights=None)
    except ValueError as exc:
        raise ConfigError("unknown model", arch, f"accepted: {ACCEPTED}") from exc
    if init == "imagenet":
        net.load_state_dict(imagenet_state_dict(arch))
    stem, channels, cam = _stem(arch, net)
    model = Classifier(arch, stem, channels, cam)
    if init not in ("random", "imagenet"):
        sd = load_state_file(init)
        if any(k.startswith(("stem.", "head.")) for k in sd):  # a cxrsynth classifier
            load_checked(model, sd, init, arch, may_miss=("head.",))
        else:  # a plain torchvision state dict: the trunk only
            full = torchvision.models.get_model(arch, weights=None)
            # Its classifier (ImageNet's 1000 classes, or a fine-tune's 1 or 2) is replaced by the
            # benchmark's head, so it is not loaded: a 2-class fc no longer fails on its size (N09).
            out = final_linear(full)
            trunk_sd = {k: v for k, v in sd.items() if not (out and k.startswith(f"{out}."))}
            load_checked(full, trunk_sd, init, arch, may_miss=(f"{out}.",) if out else ())
            stem, channels, cam = _stem(arch, full)
            model = Classifier(arch, stem, channels, cam)
    return model
