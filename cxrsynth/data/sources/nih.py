"""NIH ChestX-ray14: ``Data_Entry_2017.csv`` + ``images/<Image Index>``.

'No Finding' -> normal; 'Pneumonia' -> pneumonia, either whenever it is among the labels
(``pneumonia: any``, default) or only when alone (``only``). Adults only by default
(``min_age`` 18); views PA and AP. One patient (``Patient ID``) has many images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..records import Record, make_record_id
from .base import Problem, SourceScan, norm_sex, parse_age, scan_metadata

NAME = "nih"
LICENSE = "CC0 1.0 (NIH Clinical Center, no restrictions); cite Wang et al. CVPR 2017"


@dataclass(frozen=True)
class NihConfig:
    pneumonia: Literal["any", "only"] = "any"
    min_age: float | None = 18.0
    views: tuple[str, ...] = ("PA", "AP")


def detect(root: Path) -> bool:
    return (root / "Data_Entry_2017.csv").is_file() or (root / "Data_Entry_2017_v2020.csv").is_file()


def label_of(findings: str, rule: str) -> str | None:
    labels = [x.strip() for x in findings.split("|")]
    if labels == ["No Finding"]:
        return "normal"
    if "Pneumonia" in labels and (rule == "any" or labels == ["Pneumonia"]):
        return "pneumonia"
    return None


def read(root: Path, cfg: NihConfig, collection: str) -> SourceScan:
    meta = root / "Data_Entry_2017.csv"
    if not meta.is_file():
        meta = root / "Data_Entry_2017_v2020.csv"
    scan, rows = scan_metadata(root, meta, collection, {"Image Index", "Finding Labels", "Patient ID", "Patient Age", "View Position"})
    seen: set[str] = set()
    for i, row in enumerate(rows):
        if row is None:  # wrong number of fields: already a problem
            continue
        key = row["Image Index"]
        scan.listed.add(f"images/{key}")
        label = label_of(row["Finding Labels"], cfg.pneumonia)
        if label is None:
            scan.excluded["finding not used"] += 1
            continue
        age = parse_age(row["Patient Age"])
        if cfg.min_age is not None and (age is None or age < cfg.min_age):
            scan.excluded[f"age below {cfg.min_age:g} or unknown"] += 1
            continue
        view = row["View Position"]
        if view not in cfg.views:
            scan.excluded[f"view {view or '(blank)'}"] += 1
            continue
        if not key or key in seen:
            scan.problems.append(Problem(collection, str(meta), f"bad or repeated Image Index {key!r}", i))
            continue
        seen.add(key)
        scan.records.append(Record(
            record_id=make_record_id(NAME, key), source=NAME, collection=collection, source_root=str(root),
            source_path=f"images/{key}", image_key=key, patient_id=str(row["Patient ID"]).lstrip("0") or "0",
            label=label, view=view, sex=norm_sex(row.get("Patient Gender")), age=age, license=LICENSE,
            finding=row["Finding Labels"], rows=[i],
        ))
    return scan
