"""A plain labelled folder, for anyone else's data: ``<root>/<label>/<file>``.

Label folder names are matched case-insensitively to normal / pneumonia / covid (aliases below).
Patients: from an optional ``<root>/metadata.csv`` with columns ``file_name`` (relative to root) and
``patient_id``; without it every image counts as its own patient, which the ingest report says, since
a patient-level split is then only image-level.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..images import DICOM_SUFFIXES, IMAGE_SUFFIXES
from ..records import Record, make_record_id
from .base import Problem, SourceScan, read_csv_rows, require_columns

NAME = "imagefolder"
ALIASES = {
    "normal": "normal", "no finding": "normal", "no_finding": "normal", "healthy": "normal",
    "pneumonia": "pneumonia", "covid": "covid", "covid-19": "covid", "covid19": "covid", "covid_19": "covid",
}


@dataclass(frozen=True)
class ImageFolderConfig:
    license: str | None = None


def detect(root: Path) -> bool:
    return any(p.is_dir() and p.name.lower() in ALIASES for p in root.iterdir())


def read(root: Path, cfg: ImageFolderConfig, collection: str) -> SourceScan:
    scan = SourceScan(root=None)  # every file is listed, so there is nothing unreferenced to look for
    patients: dict[str, str] = {}
    meta = root / "metadata.csv"
    if meta.is_file():
        header, rows = read_csv_rows(meta, collection)
        require_columns(meta, header, {"file_name", "patient_id"})
        scan.problems += rows.problems
        patients = {r["file_name"]: r["patient_id"] for r in rows if r is not None}
    else:
        scan.notes.append("no metadata.csv: each image is its own patient, so splits are image-level")
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        label = ALIASES.get(sub.name.lower())
        if label is None:
            scan.excluded[f"folder {sub.name} is not a known label"] += 1
            continue
        for i, path in enumerate(sorted(p for p in sub.rglob("*") if p.is_file())):
            scan.rows_read += 1
            rel = path.relative_to(root).as_posix()
            if path.suffix.lower() not in IMAGE_SUFFIXES | DICOM_SUFFIXES:
                scan.problems.append(Problem(collection, str(path), "not an image file (by suffix)"))
                continue
            scan.records.append(Record(
                record_id=make_record_id(f"{NAME}:{root.name}", rel), source=NAME, collection=collection,
                source_root=str(root), source_path=rel, image_key=rel,
                patient_id=patients.get(rel, rel), label=label, license=cfg.license, finding=sub.name, rows=[i],
            ))
    return scan
