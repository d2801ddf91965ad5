"""Helpers shared by the bench scripts (run as ``python bench/<script>.py``)."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

from cxrsynth.core.paths import sample_data_dir


def replicated_nih(dst: Path, copies: int) -> Path:
    """An NIH-format folder holding each sample image ``copies`` times under new names (hard links).

    The honest stand-in for a release-sized run when only 1,000 real images are at hand: the pixels
    are real, and every script that uses it says how many times they repeat.
    """
    src = sample_data_dir() / "nih-chestxray14-sample"
    (dst / "images").mkdir(parents=True)
    with open(src / "Data_Entry_2017.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    out = [rows[0]]
    for k in range(copies):
        for r in rows[1:]:
            if not (src / "images" / r[0]).is_file():
                continue
            name = r[0] if k == 0 else f"{r[0][:-4]}_copy{k}.png"
            try:
                os.link(src / "images" / r[0], dst / "images" / name)
            except OSError:  # another file system: copy instead
                shutil.copy(src / "images" / r[0], dst / "images" / name)
            out.append([name] + r[1:])
    with open(dst / "Data_Entry_2017.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(out)
    return dst
