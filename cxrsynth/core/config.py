"""Typed, frozen configuration: dataclass defaults, then a YAML/JSON file, then ``key=value`` overrides.

Each stage defines its own frozen dataclass next to the code that uses it (``IngestConfig`` in
``ingest.py``, ``TrainConfig`` in ``translate/train.py``, ...). This module only knows how to build one:
unknown keys and wrong types fail at once with the key named, and the resolved config is what gets
saved beside every output (:func:`to_dict`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

from .errors import ConfigError

T = TypeVar("T")


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def load_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file not found", path)
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError("config file does not parse", path, str(exc).splitlines()[0]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("config file must hold a mapping", path)
    return data


def parse_overrides(items: typing.Iterable[str]) -> dict:
    """``["train.lr=1e-4", "seed=3"]`` -> nested dict; values parsed as YAML scalars."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError("override must look like key=value", item)
        key, raw = item.split("=", 1)
        node, last = _dotted_slot(out, key.strip())
        try:
            node[last] = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as exc:  # e.g. a !!python tag, which safe_load refuses (nothing runs)
            raise ConfigError("override value does not parse", item, str(exc).splitlines()[0]) from exc
    return out


def nest(given: dict[str, Any] | None) -> dict:
    """Typed values by dotted key (``{"fit.max_epochs": 3}``, from command-line options) -> a nested
    dict, leaving out what was not given (``None``). No string round trip: a value keeps its type."""
    out: dict = {}
    for key, value in (given or {}).items():
        if value is None:
            continue
        node, last = _dotted_slot(out, key)
        node[last] = value
    return out


def _dotted_slot(out: dict, key: str) -> tuple[dict, str]:
    """The dict inside ``out`` that a dotted ``key`` (``fit.lr``) ends in, made as needed, and its last part."""
    parts = key.split(".")
    node = out
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    return node, parts[-1]


def _scalar(text: str) -> Any:
    """One item of a comma-separated list, parsed as a YAML scalar (``0.6`` -> 0.6, ``g_nc`` -> 'g_nc')."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (int, float, str, bool)) else text


def finite(name: str, value: int | float, hint: str | None = None) -> None:
    """Refuse NaN and +-infinity, naming the field. A range check alone lets one of them through:
    ``inf`` is "above 0" and "at least 1", and NaN fails every comparison, so ``value < low`` is False."""
    try:
        ok = math.isfinite(value)
    except OverflowError:  # an int too large for a float
        ok = False
    if not ok:
        raise ConfigError(f"{name} must be a finite number", value, hint)


def at_least(name: str, value: int | float, low: int | float, hint: str | None = None) -> None:
    """Refuse a config number below ``low`` (or not finite), naming the field; each stage's
    ``__post_init__`` uses it, so that 0 or a negative number never silently means something else (no
    limit, the default)."""
    finite(name, value, hint)
    if value < low:
        raise ConfigError(f"{name} must be at least {low}", value, hint)


def positive(name: str, value: int | float, hint: str | None = None) -> None:
    """Refuse a config number that is not above 0 or not finite (learning rates, weights that must act):
    ``lr=.inf`` trained a translator made of NaN."""
    finite(name, value, hint)
    if not value > 0:
        raise ConfigError(f"{name} must be above 0", value, hint)


def between(name: str, value: int | float, low: int | float, high: int | float, hint: str | None = None) -> None:
    """Refuse a config number outside ``[low, high]`` or not finite (shares, fractions)."""
    finite(name, value, hint)
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}", value, hint)


def merge(base: dict, extra: dict) -> dict:
    """``extra`` over ``base``, nested mappings merged key by key."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{key} must be one of {list(get_args(tp))}", value)
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0] if errors else ConfigError(f"{key} has the wrong type", value)
    if origin in (tuple, list):
        args = get_args(tp)
        inner = args[0] if args else Any
        if isinstance(value, str):
            # `--set fractions=0.6,0.2,0.2` arrives as one string: each item of a number list is a
            # YAML scalar, as it would be in the bracket form `[0.6, 0.2, 0.2]`; text stays text.
            items = [v.strip() for v in value.split(",") if v.strip()]
            value = items if inner is str else [_scalar(v) for v in items]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list", value)
        items = [_coerce(v, inner, key) for v in value]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping", value)
        return build(tp, value, _prefix=key + ".")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false", value)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            finite(key, value)  # every float option: NaN and infinity are never a setting
            return float(value)
        raise ConfigError(f"{key} must be a number", value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be an integer", value)
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key} must be a string", value)
    return value


def build(cls: type[T], data: dict | None = None, _prefix: str = "") -> T:
    """Make ``cls`` from a (possibly nested) dict, rejecting unknown keys and wrong types."""
    data = data or {}
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key {_prefix}{unknown[0]}", unknown[0], f"known keys: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], _prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def resolve(cls: type[T], file: str | Path | None = None, overrides: typing.Iterable[str] = (),
            base: dict | None = None, presets: dict[str, dict] | None = None, prefix: str = "",
            given: dict[str, Any] | None = None) -> T:
    """Defaults <- preset <- ``base`` <- config ``file`` <- ``overrides`` <- ``given``; returns the frozen
    dataclass. ``given`` holds the command line's own options, typed, by dotted key (see :func:`nest`).

    With ``presets``, the merged data's ``preset`` key (or the class default) names a layer of defaults
    that sits under everything given explicitly: ``preset=paper`` plus ``batch_size=8`` is the paper
    recipe at batch 8. ``prefix`` (``train.``) is put before the keys named in errors, for a config
    that is one section of a larger tree.
    """
    data: dict = dict(base or {})
    if file:
        data = merge(data, load_file(file))
    data = merge(merge(data, parse_overrides(overrides)), nest(given))
    if presets is not None:
        name = data.get("preset", getattr(cls, "preset", None))
        if name not in presets:
            raise ConfigError(f"unknown {prefix}preset", name, f"known presets: {sorted(presets)}")
        data = merge(presets[name], data)
    return build(cls, data, _prefix=prefix)
