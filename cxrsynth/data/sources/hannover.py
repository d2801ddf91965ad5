"""COVID-19 Image Repository of Hannover Medical School: ``data.csv`` + ``png/<image_id>.png``.

Chest radiographs from one hospital's clinical routine (not publication figures), every one of a
COVID-19 patient: the only set here that comes from somewhere else than the training sources. It is
therefore **external by default** (``EXTERNAL``): ``cxrsynth ingest`` leaves its rows out of the record
table (counted in ``excluded``), so it never reaches a split, and ``benchmark --external NAME=DIR``
recognises the layout and scores every model on it. With positives only it measures sensitivity, not
specificity or AUROC.

Columns used: ``patient_id``, ``image_id`` (the file name without ``.png``), ``projection`` (``ap``,
``pa``; kept as given, upper-cased), ``modality`` (``CR``/``DX``: radiographs; any other is excluded),
``sex`` (``m``, ``f``, or the German ``w``) and ``age`` (redacted upstream, so usually blank). A row
without a patient or image id, with an image id that is not a plain file name, or repeating an image id
is reported as a problem and skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..records import Record, make_record_id
from .base import Problem, SourceScan, norm_sex, parse_age, scan_metadata

NAME = "hannover"
EXTERNAL = True  # never trained on: ingest leaves it out, the benchmark scores it as an external set
LICENSE = "CC BY 3.0 (Hannover Medical School, Institute for Diagnostic and Interventional Radiology)"
IMAGE_DIR = "png"
RADIOGRAPHS = ("CR", "DX")
_PLAIN_ID = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class HannoverConfig:
    projections: tuple[str, ...] | None = None  # e.g. ("PA",); None keeps every projection as given


def detect(root: Path) -> bool:
    meta = root / "data.csv"
    if not meta.is_file() or not (root / IMAGE_DIR).is_dir():
        return False
    with open(meta, encoding="utf-8-sig", errors="replace") as fh:
        head = {h.strip() for h in fh.readline().split(",")}
    return {"patient_id", "image_id", "projection"} <= head


def _sex(raw: str | None) -> str | None:
    return "F" if (raw or "").strip().lower() == "w" else norm_sex(raw)


def read(root: Path, cfg: HannoverConfig, collection: str) -> SourceScan:
    meta = root / "data.csv"
    scan, rows = scan_metadata(root, meta, collection, {"patient_id", "image_id", "projection"})
    keep = None if cfg.projections is None else {p.upper() for p in cfg.projections}
    seen: set[str] = set()
    for i, row in enumerate(rows):
        if row is None:  # wrong number of fields: already a problem
            continue
        image_id, patient = row["image_id"], row["patient_id"]
        if not image_id or not patient:
            scan.problems.append(Problem(collection, str(meta), "row has no image_id or no patient_id; row left out", i))
            continue
        if not _PLAIN_ID.fullmatch(image_id) or image_id in (".", ".."):
            scan.problems.append(Problem(collection, str(meta), f"image_id {image_id!r} is not a plain file name; "
                                                                "row left out", i))
            continue
        rel = f"{IMAGE_DIR}/{image_id}.png"
        scan.listed.add(rel)
        if image_id in seen:
            scan.problems.append(Problem(collection, str(meta), f"image_id {image_id} listed twice; row left out", i))
            continue
        seen.add(image_id)
        modality = (row.get("modality") or "").upper()
        if modality and modality not in RADIOGRAPHS:
            scan.excluded[f"modality {modality}"] += 1
            continue
        view = (row["projection"] or "").strip().upper() or None
        if keep is not None and view not in keep:
            scan.excluded[f"projection {view or '(blank)'}"] += 1
            continue
        scan.records.append(Record(
            record_id=make_record_id(NAME, image_id), source=NAME, collection=collection, source_root=str(root),
            source_path=rel, image_key=image_id, patient_id=patient, label="covid", view=view,
            sex=_sex(row.get("sex")), age=parse_age(row.get("age")), license=LICENSE, finding="COVID-19", rows=[i],
        ))
    return scan
