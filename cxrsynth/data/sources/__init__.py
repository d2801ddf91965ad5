"""Source readers, one module per upstream format, listed here by hand (no discovery by file name).

Each module has ``NAME``, a frozen config dataclass, ``detect(root) -> bool`` and
``read(root, cfg, collection) -> SourceScan``. ``detect`` is tried in the order below. A module with
``EXTERNAL = True`` (the Hannover repository) is an external test set: ingest leaves its rows out of
the record table, and ``benchmark --external`` scores it.
"""

from __future__ import annotations

from pathlib import Path

from ...core.errors import BadInputError, DataNotFoundError
from . import covid_collection
from . import hannover
from . import imagefolder
from . import nih
from . import rsna

READERS = {m.NAME: m for m in (covid_collection, nih, rsna, hannover, imagefolder)}


def detect_format(root: Path) -> str:
    if not root.is_dir():
        raise DataNotFoundError("source folder not found", root)
    for name, module in READERS.items():
        if module.detect(root):
            return name
    raise BadInputError(
        "cannot tell the source format of this folder", root,
        "expected metadata.csv (COVID-19 collection), Data_Entry_2017.csv (NIH), stage_2_train_labels.csv "
        "(RSNA), data.csv + png/ (Hannover COVID-19 Image Repository) or label sub-folders (normal/, pneumonia/, covid/)",
    )


def is_external(fmt: str) -> bool:
    """Whether a format is an external test set by default (never ingested for training)."""
    return bool(getattr(READERS.get(fmt), "EXTERNAL", False))
