"""One translator run folder (``translators/<task>/`` or any ``train --out``) as a value.

``translate/train.py`` writes the folder (``core/layout.py``'s :class:`TranslatorFolder` names its files);
every other stage learns about a run only through :class:`TranslatorRun`: the release describes the
translator it packaged, the pipeline decides whether a run is finished, generate finds the generator
file and the audit the private reverse generator, and none of them knows what the files are called.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.layout import TranslatorFolder, translator_folder
from ..core.paths import read_json


def _read(path: Path) -> dict:
    return read_json(path) if path.is_file() else {}


@dataclass(frozen=True)
class TranslatorRun:
    """What a finished (or stopped) translator run says about itself. Missing files read as ``{}``.

    ``generator``: the published A -> COVID-19 generator file; ``info`` its description
    (``generator.json``: architecture, sha256), ``report`` the training report (steps, total_steps,
    finished, translator id), ``config`` the resolved TrainConfig.
    """

    folder: TranslatorFolder
    generator: Path
    info: dict
    report: dict
    config: dict

    @classmethod
    def read(cls, path: str | Path) -> TranslatorRun:
        """The run folder ``path``, or the run of the generator file ``path`` (its description is the
        ``.json`` beside it, as ``checkpoint.export_generator`` writes it)."""
        path = Path(path)
        folder = translator_folder(path)
        generator = folder.generator if path.is_dir() else path
        return cls(folder, generator, _read(generator.with_suffix(".json")), _read(folder.report), _read(folder.config))

    @property
    def exported(self) -> bool:
        """A generator and a training report exist (training reached its export at least once)."""
        return self.generator.is_file() and bool(self.report)

    def finished(self, max_steps: int | None = None) -> bool:
        """Exported, and trained to its planned steps (or to ``max_steps`` when that is fewer)."""
        if not self.exported:
            return False
        total = self.report["total_steps"]
        return self.report["steps"] >= (min(total, max_steps) if max_steps else total)

    @property
    def sha256(self) -> str | None:
        """The stamp: the generator file's sha256, as its description records it."""
        return self.info.get("sha256")

    @property
    def translator_id(self) -> str | None:
        return self.report.get("translator_id")

    def made(self, sha256: str) -> bool:
        """Whether this run's generator is the one with checksum ``sha256``."""
        return self.sha256 == sha256

    @property
    def reverse_generator(self) -> Path | None:
        """The private COVID-19 -> A generator (the audit's inverse-recovery test), or None when the run
        has none (a generator file given alone, or a run that never exported)."""
        path = self.folder.reverse_generator
        return path if path.is_file() else None


def describe_run(path: str | Path) -> TranslatorRun:
    """:meth:`TranslatorRun.read` (the name the stages used before the class moved here)."""
    return TranslatorRun.read(path)
