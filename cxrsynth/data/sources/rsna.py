"""RSNA Pneumonia Detection Challenge: ``stage_2_train_labels.csv`` (one row per box, so an image with
three boxes has three rows), ``stage_2_detailed_class_info.csv``, ``stage_2_train_images/<patientId>.dcm``,
and, when present, ``stage_2_train_images_dicom_headers.csv`` (sex, age, view without the DICOMs).

'normal' follows the paper: ``Target`` 0, which includes 'No Lung Opacity / Not Normal'
(``normal: target0``); ``normal: class-normal`` keeps only class 'Normal'. 'pneumonia' is ``Target`` 1.
The ``patientId`` is an image id, not a person (RSNA re-encoded NIH images under fresh ids); the
record keeps it as the patient id because nothing better is published, and ingest merges it with an
NIH patient when the same pixels are found in both.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..records import Record, make_record_id
from .base import Problem, SourceScan, norm_sex, parse_age, path_problem, read_csv_rows, scan_metadata

NAME = "rsna"
LICENSE = "RSNA Pneumonia Detection Challenge terms (Kaggle); pixels from NIH ChestX-ray14 (CC0)"
IMAGE_DIR = "stage_2_train_images"


@dataclass(frozen=True)
class RsnaConfig:
    normal: Literal["target0", "class-normal"] = "target0"


def detect(root: Path) -> bool:
    return (root / "stage_2_train_labels.csv").is_file()


def _headers(root: Path, collection: str, problems: list[Problem]) -> dict[str, dict[str, str]]:
    path = root / "stage_2_train_images_dicom_headers.csv"
    if not path.is_file():
        return {}
    _, rows = read_csv_rows(path, collection)
    problems += rows.problems
    return {r.get("PatientID", ""): r for r in rows if r is not None}


def _header_from_dicom(path: Path) -> dict[str, str]:
    import pydicom

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    except Exception:  # decoding later reports the file properly
        return {}
    return {"PatientSex": str(ds.get("PatientSex", "")), "PatientAge": str(ds.get("PatientAge", "")),
            "ViewPosition": str(ds.get("ViewPosition", ""))}


def read(root: Path, cfg: RsnaConfig, collection: str) -> SourceScan:
    labels_path = root / "stage_2_train_labels.csv"
    scan, rows = scan_metadata(root, labels_path, collection, {"patientId", "Target"})
    classes: dict[str, str] = {}
    class_path = root / "stage_2_detailed_class_info.csv"
    if class_path.is_file():
        _, crow = read_csv_rows(class_path, collection)
        scan.problems += crow.problems
        classes = {r["patientId"]: r["class"] for r in crow if r is not None}
    elif cfg.normal == "class-normal":
        from ...core.errors import BadInputError

        raise BadInputError("normal: class-normal needs the class file", class_path)

    by_image: dict[str, list[int]] = defaultdict(list)
    target: dict[str, str] = {}
    for i, row in enumerate(rows):
        if row is None:  # wrong number of fields: already a problem
            continue
        pid, t = row["patientId"], row["Target"]
        if not pid or t not in ("0", "1"):
            scan.problems.append(Problem(collection, str(labels_path), f"bad row (patientId {pid!r}, Target {t!r})", i))
            continue
        if target.setdefault(pid, t) != t:
            scan.problems.append(Problem(collection, str(labels_path), f"patientId {pid} has Target 0 and 1", i))
            continue
        by_image[pid].append(i)
        scan.listed.add(f"{IMAGE_DIR}/{pid}.dcm")
    headers = _headers(root, collection, scan.problems)
    for pid, row_ids in by_image.items():
        t = target[pid]
        cls = classes.get(pid)
        if t == "1":
            label = "pneumonia"
        elif cfg.normal == "class-normal" and cls != "Normal":
            scan.excluded[f"class {cls} (normal: class-normal)"] += 1
            continue
        else:
            label = "normal"
        rel = f"{IMAGE_DIR}/{pid}.dcm"
        head = headers.get(pid)
        if head is None and path_problem(root, rel) is None and (root / rel).is_file():
            head = _header_from_dicom(root / rel)
        head = head or {}
        scan.records.append(Record(
            record_id=make_record_id(NAME, pid), source=NAME, collection=collection, source_root=str(root),
            source_path=rel, image_key=pid, patient_id=pid, label=label,
            view=head.get("ViewPosition") or None, sex=norm_sex(head.get("PatientSex")),
            age=parse_age(head.get("PatientAge")), license=LICENSE,
            finding=f"Target {t}" + (f" / {cls}" if cls else ""), rows=row_ids,
        ))
    n_boxes = sum(len(v) for v in by_image.values()) - len(by_image)
    scan.notes.append(f"{len(rows)} label rows for {len(by_image)} images ({n_boxes} extra rows are further boxes)")
    return scan
