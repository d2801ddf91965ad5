"""Who imports whom: no stage reaches into another's internals, and no two modules import each other.

Function-local imports count too: they hide a cycle from Python's import machinery, not from a reader.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.no_data

PACKAGE = Path(__file__).resolve().parent.parent / "cxrsynth"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every cxrsynth module ``path`` imports, anywhere in it, as dotted names."""
    here = _module(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            out.add(name)
            out |= {f"{name}.{a.name}" for a in node.names}  # `from . import privacy`
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {m for m in out if m in MODULES and m != _module(path)}


MODULES = {_module(p) for p in PACKAGE.rglob("*.py")}
GRAPH = {_module(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_no_two_modules_import_each_other():
    pairs = sorted((a, b) for a, deps in GRAPH.items() for b in deps
                   if a < b and a in GRAPH.get(b, set()) and not (a == "cxrsynth" or b == "cxrsynth"))
    assert pairs == []


def test_card_and_package_do_not_import_each_other():
    assert "cxrsynth.stages.release.package" not in GRAPH["cxrsynth.stages.release.card"]
    assert "cxrsynth.stages.release.card" not in GRAPH["cxrsynth.stages.release.package"]


def test_the_audit_does_not_import_the_benchmark():
    audit = {m: deps for m, deps in GRAPH.items() if m.startswith("cxrsynth.stages.audit")}
    assert {m: sorted(d for d in deps if d.startswith("cxrsynth.stages.benchmark")) for m, deps in audit.items()} == \
        {m: [] for m in audit}


def test_the_release_orchestrator_sits_above_packaging():
    """release/ holds the packaging stages; nothing in it runs the whole pipeline."""
    assert not (PACKAGE / "stages" / "release" / "pipeline.py").exists()
    assert not any("cxrsynth.pipeline" in deps for m, deps in GRAPH.items() if m != "cxrsynth.cli")


def test_no_fixed_temporary_names():
    """Temporary files carry the pid (paths.atomic_path): a fixed ``.tmp`` name is shared by every rank."""
    import re

    fixed = re.compile(r"""\.tmp["'.]""")
    found = [f"{p.name}:{n}" for p in PACKAGE.rglob("*.py")
             for n, line in enumerate(p.read_text().splitlines(), 1) if fixed.search(line)]
    assert found == []


def test_atomic_path_renames_on_success_only(tmp_path):
    from cxrsynth.core.paths import atomic_path

    target = tmp_path / "sub" / "model.safetensors"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and str(os.getpid()) in tmp.name
        tmp.write_bytes(b"weights")
    assert target.read_bytes() == b"weights"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"weights" and sorted(p.name for p in target.parent.iterdir()) == [target.name]


#: The layers, bottom first (README, Layout). A module may import its own layer and those below it.
LAYERS = ["core", "data", "measure", "artifacts", "launch", "stages", "top"]


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "top"


def test_modules_import_only_their_own_layer_and_those_below():
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() if m != "cxrsynth" for d in deps
                    if d != "cxrsynth" and rank[_layer(d)] > rank[_layer(m)])
    assert upward == []


def test_layer_of_a_module():
    assert [_layer(m) for m in ("cxrsynth.core.paths", "cxrsynth.stages.audit.run", "cxrsynth.launch",
                                "cxrsynth.pipeline", "cxrsynth.cli")] == ["core", "stages", "launch", "top", "top"]
