"""Dependencies by use: optional packages are extras, a missing one is one line naming it, and the core
wheel alone (a fresh venv, no extras) verifies a release and loads it with ``cxrsynth.load``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from PIL import Image

from cxrsynth.core import extras
from cxrsynth.core.extras import MissingExtraError, require
from cxrsynth.data.images import load_canonical
from cxrsynth.stages.load.loader import ArmDataset

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CXRSYNTH_SAMPLE_DATA", REPO.parent / "shared" / "data"))


def test_every_optional_import_is_an_extra_and_not_core():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = " ".join(meta["dependencies"])
    optional = meta["optional-dependencies"]
    for module, (dist, extra) in extras.EXTRAS.items():
        assert dist not in core, f"{dist} is an extra ({extra}), not a core dependency"
        assert any(d.startswith(dist) for d in optional[extra]), (dist, extra)
    assert "torchmetrics" not in core and not any("torchmetrics" in d for ds in optional.values() for d in ds)
    assert not any("<" in d for d in meta["dependencies"] if d.startswith("torch")), "torch has a floor, not a cap"


def test_a_missing_extra_is_one_line_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    with pytest.raises(MissingExtraError) as err:
        require("timm", "--model timm:resnet18")
    assert str(err.value) == ('--model timm:resnet18 needs the optional package timm (not installed); '
                              'pip install "cxrsynth[bench]"')
    from cxrsynth.measure.classifiers import build

    with pytest.raises(MissingExtraError, match=r'cxrsynth\[bench\]'):
        build("timm:resnet18")


def test_a_missing_submitit_names_the_cluster_extra_and_the_serial_launcher(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "submitit", None)
    from cxrsynth.launch import Launcher

    with pytest.raises(MissingExtraError, match=r'cxrsynth\[cluster\]", or use --launcher serial'):
        Launcher(kind="local").executor(tmp_path / "logs")


def test_synthetic_and_real_images_are_resized_the_same_way(tmp_path):
    """The loader once resized synthetic rows bicubic and real files bilinear: a real-vs-synthetic difference of
    its own making. The same picture now gives the same pixels through either path."""
    src = next((DATA / "nih-chestxray14-sample" / "images").glob("*.png"))
    full = load_canonical(src, 256)
    path = tmp_path / "real.png"
    Image.fromarray(full).save(path)
    ds = ArmDataset([(str(path), 0)], [[{"image": Image.fromarray(full)}]], size=96)
    real, synthetic = ds[0][0].numpy(), ds[1][0].numpy()
    assert real.shape == synthetic.shape == (1, 96, 96)
    assert np.array_equal(real, synthetic)


@pytest.mark.slow
def test_core_wheel_alone_verifies_and_loads_a_release(built, tmp_path):
    """A fresh venv gets the wheel (``--no-deps``) and sees, of this venv's installed packages, only those its
    core requirements reach (read from the wheel's own METADATA, followed through every dependency), none of
    the extras; ``pip check`` finds every requirement met, and ``cxrsynth verify`` and ``cxrsynth.load`` work
    there. Installing torch and the rest afresh took 118 s of the suite (unpacking ~6 GB of wheels); a view of
    links gives the same isolation: a module the core needs but does not declare is not importable there."""
    workdir, rel, _ = built
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "demo-out", "build", "*.egg-info",
                                                             "__pycache__", "bench", "tests"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("cxrsynth-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    core = _core_closure(_wheel_requirements(wheel))
    assert {"torch", "torchvision", "numpy", "datasets"} <= core and not core & {"cxrsynth", "timm", "submitit"}
    view = _site_view(core, tmp_path / "core-site")
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "core-view.pth").write_text(f"{view}\n")
    _verify_and_load_in(venv, wheel, workdir, rel, tmp_path)


def _verify_and_load_in(venv: Path, wheel: Path, workdir: Path, rel: Path, tmp_path: Path) -> None:
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing from the source tree
    pip = [sys.executable, "-m", "pip", "--python", str(py)]
    res = subprocess.run([*pip, "install", "-q", "--no-deps", str(wheel)], capture_output=True, text=True,
                         cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    check = subprocess.run([*pip, "check"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert check.returncode == 0, check.stdout + check.stderr  # every core requirement met by the view
    for module in extras.EXTRAS:
        assert subprocess.run([str(py), "-c", f"import {module}"], capture_output=True, env=env).returncode != 0, module
    ok = subprocess.run([str(venv / "bin" / "cxrsynth"), "verify", str(rel)], capture_output=True, text=True,
                        cwd=tmp_path, env=env)
    assert ok.returncode == 0 and ok.stdout.strip().endswith(": OK"), ok.stdout + ok.stderr
    code = (f"import cxrsynth; ds = cxrsynth.load('normal-covid', 'real+g_nc', workdir={str(workdir)!r}, "
            f"release={str(rel)!r}, size=32); print(len(ds), ds.origins.count('synthetic'), sep='\\n'); "
            f"print(tuple(ds[len(ds)-1][0].shape), cxrsynth.__file__, sep='\\n')")
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    n, n_syn, shape, where = out.stdout.splitlines()
    assert int(n_syn) > 0 and int(n) > int(n_syn) and shape == "(1, 32, 32)"
    assert where.startswith(str(venv)), where  # the wheel's copy, not the source tree


def _wheel_requirements(wheel: Path) -> list[str]:
    """The core requirements the wheel declares (``Requires-Dist`` lines without an extra marker)."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    reqs = [Requirement(line.split(":", 1)[1].strip()) for line in lines if line.startswith("Requires-Dist:")]
    return [str(r) for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]


def _core_closure(requirements: list[str]) -> set[str]:
    """Every installed distribution those requirements reach, followed through each one's own requirements
    (with the extras asked for, such as ``fsspec[http]``); canonical names."""
    seen: set[tuple[str, str]] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        for extra in ("", *sorted(req.extras)):
            key = (canonicalize_name(req.name), extra)
            if key in seen:
                continue
            seen.add(key)
            for dep in metadata.requires(req.name) or []:
                dep_req = Requirement(dep)
                if dep_req.marker is None or dep_req.marker.evaluate({"extra": extra}):
                    todo.append(dep_req)
    return {name for name, _ in seen}


def _site_view(dists: set[str], view: Path) -> Path:
    """A folder of links to the files of ``dists`` only, in this venv's site-packages. A top-level folder that
    other distributions share (a namespace such as ``nvidia/``) is made real and linked one level down."""
    owners: dict[str, set[str]] = {}
    entries: dict[str, set[tuple[str, ...]]] = {}
    roots: dict[str, Path] = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        for f in dist.files or []:
            parts = Path(f).parts
            if not parts or parts[0] in ("..", "__pycache__"):
                continue  # scripts in bin/, bytecode of single-module packages
            owners.setdefault(parts[0], set()).add(name)
            if name in dists:
                entries.setdefault(name, set()).add(parts[:2])
                roots[parts[0]] = Path(dist.locate_file(parts[0])).parent
    view.mkdir()
    for name in sorted(dists):
        for parts in sorted(entries.get(name, ())):
            top = parts[0]
            if owners[top] <= dists or len(parts) == 1:
                if not (view / top).exists():
                    (view / top).symlink_to(roots[top] / top)
            else:
                (view / top).mkdir(exist_ok=True)
                if not (view / top / parts[1]).exists():
                    (view / top / parts[1]).symlink_to(roots[top] / top / parts[1])
    return view
