"""Dependencies by use: optional packages are extras, a missing one is one line naming it, and the core
wheel alone (a fresh venv, no extras) verifies a release and loads it with ``cxrsynth.load``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
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
    """A fresh venv gets the wheel and its core dependencies only (pip resolves them from the machine's
    package index), and none of the extras; ``cxrsynth verify`` and ``cxrsynth.load`` work there."""
    workdir, rel, _ = built
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "demo-out", "build", "*.egg-info",
                                                             "__pycache__", "bench", "tests"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("cxrsynth-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    try:
        _verify_and_load_in(venv, wheel, workdir, rel, tmp_path)
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # about 6 GB (torch's CUDA wheels): not kept among pytest's temp dirs


def _verify_and_load_in(venv: Path, wheel: Path, workdir: Path, rel: Path, tmp_path: Path) -> None:
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing from the source tree
    res = subprocess.run([str(py), "-m", "pip", "install", "-q", f"{wheel}", "torch==2.14.1", "torchvision==0.29.1"],
                         capture_output=True, text=True, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    for module in extras.EXTRAS:
        assert subprocess.run([str(py), "-c", f"import {module}"], capture_output=True, env=env).returncode != 0, module
    ok = subprocess.run([str(venv / "bin" / "cxrsynth"), "verify", str(rel)], capture_output=True, text=True,
                        cwd=tmp_path, env=env)
    assert ok.returncode == 0 and ok.stdout.strip().endswith(": OK"), ok.stdout + ok.stderr
    code = (f"import cxrsynth; ds = cxrsynth.load('normal-covid', 'real+g_nc', workdir={str(workdir)!r}, "
            f"release={str(rel)!r}, size=32); print(len(ds), ds.origins.count('synthetic'), tuple(ds[len(ds)-1][0].shape))")
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    n, n_syn, shape = out.stdout.split(maxsplit=2)
    assert int(n_syn) > 0 and int(n) > int(n_syn) and shape.strip() == "(1, 32, 32)"
