"""A benchmark folder's own files read back without trusting them: ``inputs.json`` and each cell's
``result.json``.

Both are plain JSON in a folder a person can edit, copy half of, or fill from another version. A file
that is not JSON, not an object, or lacks what a finished cell writes must give one line naming the
file (``--status``, a rerun), never a traceback and never a "done" cell whose numbers are missing: a
result that is not a finished cell's is reported and the cell is run again.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...core.errors import BadInputError, ConfigError, DataNotFoundError

#: What every finished cell's result.json holds (``run.run_one`` writes them all, then the file last).
FINISHED_FIELDS = {"task": str, "arm": str, "seed": int, "threshold": (int, float), "test": dict,
                   "test_scores": list, "test_labels": list, "model_sha256": str}


def _read_object(path: Path, what: str) -> dict:
    """``path`` parsed as a JSON object; :class:`BadInputError` naming ``what`` and the problem."""
    try:
        data = json.loads(path.read_text())
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{what} is not text", path, str(exc)) from exc
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{what} is not JSON", path, f"{exc.msg} at line {exc.lineno}") from exc
    except RecursionError:
        raise BadInputError(f"{what} is not readable JSON", path, "nested too deeply") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{what} is not a JSON object", path, f"it holds a {type(data).__name__}")
    return data


def read_inputs(out_dir: Path) -> dict:
    """``out_dir/inputs.json``, checked to be what ``run.run_inputs`` writes: an object whose ``config``
    is an object. Raises :class:`DataNotFoundError` when there is none, :class:`BadInputError` naming
    the file otherwise."""
    path = out_dir / "inputs.json"
    if not path.is_file():
        raise DataNotFoundError("no benchmark in this folder", path, "give the --out folder of a `cxrsynth benchmark` run")
    inputs = _read_object(path, "the benchmark's inputs.json")
    if not isinstance(inputs.get("config"), dict):
        raise BadInputError("the benchmark's inputs.json has no config object", path,
                            "it was not written by `cxrsynth benchmark`; rerun the benchmark into a new --out")
    return inputs


def inputs_config(inputs: dict, out_dir: Path, cls):
    """The run's config rebuilt from ``inputs`` (:func:`read_inputs`); a config this version cannot
    read is one line naming the file."""
    from ...core.config import build

    try:
        return build(cls, inputs["config"])
    except ConfigError as exc:
        raise BadInputError("the benchmark's inputs.json holds a config this version cannot read",
                            out_dir / "inputs.json", exc.one_line()) from exc


def result_problem(run_dir: Path, key: str | tuple[str, ...] | None, cell: tuple[str, str, int]) -> str | None:
    """Why ``run_dir/result.json`` is not the finished result of ``cell`` (task, arm, seed), or ``None``
    when it is: it reads as an object, holds every :data:`FINISHED_FIELDS` entry with its type, names
    this cell, and carries ``key`` (or one of several: ``--status`` also accepts a cell's key from before
    the grid's extent left it; a result without a key was written before keys were recorded; the
    folder's inputs.json claim covers it). A missing file is "no result yet"."""
    path = run_dir / "result.json"
    if not path.is_file():
        return "no result yet"
    try:
        res = _read_object(path, "result.json")
    except BadInputError as exc:
        return exc.what + (f": {exc.hint}" if exc.hint else "")
    except OSError as exc:
        return f"result.json does not read: {exc.strerror or exc}"
    missing = [f for f, tp in FINISHED_FIELDS.items() if not isinstance(res.get(f), tp) or isinstance(res.get(f), bool)]
    if missing:
        return f"result.json lacks what a finished cell writes ({', '.join(missing)})"
    if not isinstance(res["test"].get("auroc"), (int, float)):
        return "result.json lacks the test AUROC"
    if (res["task"], res["arm"], res["seed"]) != tuple(cell):
        return f"result.json is another cell's ({res['task']}/{res['arm']}/seed-{res['seed']})"
    keys = (key,) if isinstance(key, str) else tuple(key or ())
    if keys and res.get("cell_key") not in (None, *keys):
        return "result.json was made from other inputs (its cell_key differs)"
    return None


def finished_cells(out_dir: Path) -> list[Path]:
    """The cell folders under ``out_dir/runs`` whose result.json is a finished result of the cell its
    folder names (whatever inputs made it). A folder holding none of these has nothing to reuse, so
    a failed start (a bad ``--init``, a missing release) never blocks the next run into it."""
    out = []
    for path in sorted((out_dir / "runs").glob("*/*/seed-*/result.json")):
        task, arm, seed = path.parent.parent.parent.name, path.parent.parent.name, path.parent.name[5:]
        if seed.isdigit() and result_problem(path.parent, None, (task, arm, int(seed))) is None:
            out.append(path.parent)
    return out
