"""Source readers, one module per upstream format, listed here by hand (no discovery by file name).

Each module has ``NAME``, a frozen config dataclass, ``detect(root) -> bool`` and
``read(root, cfg, collection) -> SourceScan``. ``detect`` is tried in the order below.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import BadInputError, DataNotFoundError
from . import covid_collection, imagefolder, nih, rsna

READERS = {m.NAME: m for m in (covid_collection, nih, rsna, imagefolder)}


def detect_format(root: Path) -> str:
    if not root.is_dir():
        raise DataNotFoundError("source folder not found", root)
    for name, module in READERS.items():
        if module.detect(root):
            return name
    raise BadInputError(
        "cannot tell the source format of this folder", root,
        "expected metadata.csv (COVID-19 collection), Data_Entry_2017.csv (NIH), stage_2_train_labels.csv "
        "(RSNA) or label sub-folders (normal/, pneumonia/, covid/)",
    )
