"""COVID-19 Image Data Collection (Cohen et al.): ``metadata.csv`` + ``images/``.

Headers change across its history: the 2020 files have flat findings (``COVID-19``,
``COVID-19, ARDS``) and a trailing empty column; today's have hierarchical findings
(``Pneumonia/Viral/COVID-19``) and extra columns. A row is COVID-19 when ``COVID-19`` is the last path
element or one of the comma-separated findings.

Filters (``mode``):
- ``default``: modality X-ray, views in ``views`` (PA, AP, AP Supine);
- ``paper``: what the original code kept: ``finding == "COVID-19"`` exactly and modality not CT, any
  view (laterals included), after its ``dropna()`` on finding / view / modality / filename (a row with
  any of them blank is left out).
Only COVID-19 rows become records; every other row is counted in ``excluded`` by reason.

``licenses`` is an allow-list of the ``license`` column's values (case-insensitive; a blank licence is
written "no licence stated"): COVID-19 rows under any other licence are counted in ``excluded`` as
``licence not allowed: <licence>``, and the release card reports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..records import Record, make_record_id
from .base import Problem, SourceScan, norm_sex, parse_age, scan_metadata

NAME = "covid-collection"
PAPER_DROPNA = ("finding", "view", "modality", "filename")  # the columns the original code's dropna() read


@dataclass(frozen=True)
class CovidCollectionConfig:
    mode: Literal["default", "paper"] = "default"
    views: tuple[str, ...] = ("PA", "AP", "AP Supine")
    licenses: tuple[str, ...] | None = None  # allow-list; None keeps every licence


def detect(root: Path) -> bool:
    meta = root / "metadata.csv"
    if not meta.is_file():
        return False
    with open(meta, encoding="utf-8-sig", errors="replace") as fh:  # bad bytes: read_csv_rows names the line
        return "finding" in fh.readline()


def is_covid(finding: str) -> bool:
    last = finding.split("/")[-1]
    return any(part.strip().upper() == "COVID-19" for part in last.split(","))


def read(root: Path, cfg: CovidCollectionConfig, collection: str) -> SourceScan:
    meta = root / "metadata.csv"
    scan, rows = scan_metadata(root, meta, collection, {"patientid", "finding", "modality", "view", "filename"})
    seen: set[str] = set()
    for i, row in enumerate(rows):
        if row is None:  # wrong number of fields: already a problem
            continue
        finding, modality, view = row["finding"], row["modality"], row["view"]
        if row["filename"]:
            scan.listed.add(f"{row.get('folder') or 'images'}/{row['filename']}")
        if cfg.mode == "paper":
            if finding != "COVID-19":
                scan.excluded[f"finding {finding or '(blank)'}"] += 1
                continue
            if modality.upper() == "CT":
                scan.excluded["modality CT"] += 1
                continue
            blank = [c for c in PAPER_DROPNA if not row[c]]
            if blank:
                scan.excluded[f"blank {blank[0]} (paper: the original's dropna)"] += 1
                continue
        else:
            if not is_covid(finding):
                scan.excluded[f"finding {finding or '(blank)'}"] += 1
                continue
            if modality != "X-ray":
                scan.excluded[f"modality {modality or '(blank)'}"] += 1
                continue
            if view not in cfg.views:
                scan.excluded[f"view {view or '(blank)'}"] += 1
                continue
        licence = (row.get("license") or "").strip() or "no licence stated"
        if cfg.licenses is not None and licence.lower() not in {x.strip().lower() for x in cfg.licenses}:
            scan.excluded[f"licence not allowed: {licence}"] += 1
            continue
        filename = row["filename"]
        if not filename:
            scan.problems.append(Problem(collection, str(meta), "row has no filename", i))
            continue
        if filename in seen:
            scan.problems.append(Problem(collection, str(meta), f"filename {filename} listed twice", i))
            continue
        seen.add(filename)
        folder = row.get("folder") or "images"
        scan.records.append(Record(
            record_id=make_record_id(NAME, filename), source=NAME, collection=collection,
            source_root=str(root), source_path=f"{folder}/{filename}", image_key=filename,
            patient_id=str(row["patientid"]), label="covid", view=view or None,
            sex=norm_sex(row.get("sex")), age=parse_age(row.get("age")),
            license=row.get("license") or None, finding=finding, rows=[i],
        ))
    return scan

