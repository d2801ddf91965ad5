"""Validating what we write against the JSON Schemas in ``manifests/``.

Every manifest and report is validated before it is written, so a file on disk always matches its
schema; ``cxrsynth verify`` and the tests use the same function on files read back.
"""

from __future__ import annotations

import functools
import json

import jsonschema

from .errors import DataNotFoundError, SchemaError
from .paths import SCHEMA_DIR


@functools.lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    path = SCHEMA_DIR / f"{name}.schema.json"
    if not path.is_file():
        raise DataNotFoundError("JSON Schema not found", path)
    schema = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


@functools.lru_cache(maxsize=None)
def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema(name))


def validate(obj: object, name: str, where: object = None) -> None:
    """Raise :class:`SchemaError` naming the first failing field."""
    validator = _validator(name)
    errors = sorted(validator.iter_errors(json.loads(json.dumps(obj, default=str))), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        field = "/".join(str(p) for p in err.path) or "(top level)"
        raise SchemaError(f"{name} does not match its schema at {field}: {err.message}", where or name)
