"""A non-editable install works: the wheel carries the JSON Schemas and card templates."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installed_elsewhere_verifies_a_release(built, tmp_path):
    """Build the wheel from a copy of the source tree, install it (no deps: they are this venv's) into a
    folder of its own, and run `cxrsynth verify` from there, far from the repository."""
    _, rel, _ = built
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "demo-out", "build", "*.egg-info",
                                                             "__pycache__", "_data", "bench", "tests"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("cxrsynth-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "cxrsynth/_data/manifests/release_manifest.schema.json" in names
    assert "cxrsynth/_data/cards/dataset_card.md" in names and "cxrsynth/_data/cards/translator_card.md" in names
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    shutil.rmtree(src)  # nothing may be read from a source tree
    env = dict(os.environ, PYTHONPATH=str(site))
    where = subprocess.run([sys.executable, "-c", "import cxrsynth.core.paths as p; print(p.__file__); print(p.SCHEMA_DIR)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, check=True).stdout.split()
    assert where[0].startswith(str(site)) and where[1] == str(site / "cxrsynth" / "_data" / "manifests")
    res = subprocess.run([sys.executable, "-m", "cxrsynth.cli", "verify", str(rel)], capture_output=True, text=True,
                         env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip().endswith(": OK")
