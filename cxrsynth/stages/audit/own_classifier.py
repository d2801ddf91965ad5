"""The benchmark classifier that the default audit embeds with: only this work folder's own.

``--embedding auto`` (the default, so also ``cxrsynth release``) picks up
``WORKDIR/benchmark/runs/<task>/real/seed-0/model.safetensors`` with no option given, so being there is no
reason to trust a file. A model is used only when it is the one this work folder's benchmark wrote:

- ``WORKDIR/benchmark/inputs.json`` reads and was made from the split audited (its assignment sha256);
- the cell's ``result.json`` reads and carries the key (``cell_key``) those inputs give for that cell;
- ``result.json`` records the model's sha256 (``model_sha256``) and the file has it;
- the file's architecture is the run's model and a torchvision or ``timm:`` name (``classifiers.file_arch``).
  A ``package.module:factory`` model is never run from here: that code is named by files, not by the user.

Anything else is skipped with one line saying why, and the audit goes on with the pixel embedding: a stray
or planted file must not stop (or steer) the default audit. ``--embedding classifier:PATH`` is the way to
use a classifier from elsewhere; its architecture is checked in the same way.
"""

from __future__ import annotations

from pathlib import Path

from ...artifacts.benchmark_run import accepted_cell_keys
from ...core.errors import CxrsynthError
from ...core.layout import BenchmarkFolder
from ...core.paths import read_json, sha256_file


def own_classifier(folder: BenchmarkFolder, assignment_sha256: str | None) -> tuple[Path | None, list[str]]:
    """The first of the benchmark run ``folder``'s seed-0 real-arm classifiers that passes every check
    for the split ``assignment_sha256`` (the audit's), or None; and one line per file skipped, saying
    why. The pipeline passes the work folder's own benchmark folder."""
    notes = []
    for path in folder.models("real", 0):
        why = _not_own(path, folder, assignment_sha256)
        if why is None:
            return path, notes
        notes.append(f"not using {path} as an audit embedding: {why}")
    return None, notes


def _read_dict(path: Path) -> dict | None:
    try:
        data = read_json(path)
    except (CxrsynthError, OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _not_own(path: Path, folder: BenchmarkFolder, assignment_sha256: str | None) -> str | None:
    """Why ``path`` is not this benchmark's own classifier of the split ``assignment_sha256`` (None: it is)."""
    from ...measure.classifiers import file_arch

    inputs = _read_dict(folder.root / "inputs.json")
    if inputs is None:
        return "no readable benchmark/inputs.json beside it"
    if not assignment_sha256 or inputs.get("split_assignment_sha256") != assignment_sha256:
        return "the benchmark was not run on this work folder's split"
    result = _read_dict(path.parent / "result.json")
    if result is None:
        return "no readable result.json beside it"
    task, arm, seed = path.parts[-4], path.parts[-3], int(path.parts[-2].removeprefix("seed-"))
    if result.get("cell_key") not in accepted_cell_keys(inputs, task, arm, seed):
        return "its result.json does not carry the key of this benchmark's inputs"
    if not result.get("model_sha256"):
        return "its result.json records no model sha256 (rerun the benchmark to record it)"
    if sha256_file(path) != result["model_sha256"]:
        return "the file is not the model its result.json records (sha256 differs)"
    try:
        arch = file_arch(path)
    except CxrsynthError as exc:
        return exc.one_line()
    model = (inputs.get("config") or {}).get("model") if isinstance(inputs.get("config"), dict) else None
    if arch != model:
        return f"its architecture ({arch}) is not the benchmark's model ({model})"
    return None
