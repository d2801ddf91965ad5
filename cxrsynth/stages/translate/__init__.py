"""CycleGAN translators: networks, losses, the image pool, training with exact resume, checkpoints.

Other stages learn about a translator run only through :func:`describe_run`, never by reading the run
folder's files themselves: the release describes the translator it packaged, the release pipeline
decides whether a run is finished, and neither needs to know what the files are called.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...core.layout import TranslatorFolder, translator_folder
from ...core.paths import read_json


@dataclass(frozen=True)
class TranslatorRun:
    """What a finished (or stopped) translator run says about itself. Missing files read as ``{}``.

    ``info`` is the generator's description (``generator.json``: architecture, sha256), ``report`` the
    training report (steps, total_steps, finished, translator id), ``config`` the resolved TrainConfig.
    """

    folder: TranslatorFolder
    generator: Path
    info: dict
    report: dict
    config: dict

    @property
    def exported(self) -> bool:
        """A generator and a training report exist (training reached its export at least once)."""
        return self.generator.is_file() and bool(self.report)

    def made(self, sha256: str) -> bool:
        """Whether this run's generator is the one with checksum ``sha256``."""
        return self.info.get("sha256") == sha256


def _read(path: Path) -> dict:
    return read_json(path) if path.is_file() else {}


def describe_run(path: str | Path) -> TranslatorRun:
    """The run folder ``path``, or the run of the generator file ``path`` (its description is the
    ``.json`` beside it, as ``checkpoint.export_generator`` writes it)."""
    path = Path(path)
    folder = translator_folder(path)
    generator = folder.generator if path.is_dir() else path
    return TranslatorRun(folder, generator, _read(generator.with_suffix(".json")), _read(folder.report),
                         _read(folder.config))
