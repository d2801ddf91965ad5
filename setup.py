"""Packaging hook: ship the JSON Schemas (``manifests/``) and card templates (``cards/``) inside the package.

They live at the top of the repository, where contributors edit them; a wheel or a non-editable install
has no repository, so ``build_py`` copies both into ``cxrsynth/_data/`` of the build, and
``cxrsynth.core.paths.resource_dir`` looks there first. Everything else is in ``pyproject.toml``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class build_py_with_data(build_py):
    def run(self):
        super().run()
        for name, pattern in (("manifests", "*.schema.json"), ("cards", "*.md")):
            dst = Path(self.build_lib) / "cxrsynth" / "_data" / name
            dst.mkdir(parents=True, exist_ok=True)
            for src in sorted((HERE / name).glob(pattern)):
                shutil.copy2(src, dst / src.name)


setup(cmdclass={"build_py": build_py_with_data})
