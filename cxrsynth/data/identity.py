"""Patient identity across RSNA and NIH ChestX-ray14.

RSNA's ``patientId`` is an image id: the challenge re-encoded NIH ChestX-ray14 images under fresh
UUIDs, so one NIH patient can hide behind several RSNA ids, and a split on ``patientId`` is a split per
image. Ingest links an RSNA image to its NIH patient only when the NIH copy is itself ingested (found
by content). Two published files link them without pixels:

- RSNA's ``pneumonia-challenge-dataset-mappings_2018.json``: a JSON list of
  ``{"subset_img_id": <RSNA patientId>, "img_id": <NIH Image Index>, ...}``; the first 8 digits of the
  NIH file name are the NIH patient id;
- NIH's ``Data_Entry_2017.csv`` (``Image Index``, ``Patient ID``): the patient of every NIH image. With
  the RSNA mapping it gives each linked image's patient from NIH's own table (else the file name's
  digits); alone it links the NIH images it lists, which ingest has already matched by content.

Only the grouping changes: an RSNA image keeps its own RSNA label (the challenge's reading), whatever
the NIH labels of its patient's other images are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import BadInputError
from ..stages.ingest import _UnionFind
from .records import Record
from .sources.base import read_csv_rows, require_columns

RSNA_MAPPING = "pneumonia-challenge-dataset-mappings_2018.json"


@dataclass
class Identity:
    """``rsna_image``: RSNA patientId -> NIH Image Index; ``nih_patient``: NIH Image Index -> Patient ID."""

    rsna_image: dict[str, str] = field(default_factory=dict)
    nih_patient: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def nih_patient_of(self, rsna_id: str) -> str | None:
        image = self.rsna_image.get(rsna_id)
        if image is None:
            return None
        pid = self.nih_patient.get(image) or image.split("_", 1)[0]
        return _norm(pid)


def _norm(pid: str) -> str:
    """NIH patient ids as the NIH reader keeps them: digits without leading zeros."""
    return str(pid).strip().lstrip("0") or "0"


def _read_rsna_mapping(path: Path) -> dict[str, str]:
    try:
        rows = json.loads(path.read_text())
    except RecursionError as exc:  # a deeply nested list: json gives up on the stack, not on the syntax
        raise BadInputError("RSNA mapping file is not readable JSON", path, "nested too deeply") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError("RSNA mapping file is not readable JSON", path, str(exc).splitlines()[0]) from exc
    if not isinstance(rows, list):
        raise BadInputError("RSNA mapping file must hold a JSON list of {subset_img_id, img_id}", path)
    out = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not row.get("subset_img_id") or not row.get("img_id"):
            raise BadInputError(f"RSNA mapping entry {i} lacks subset_img_id or img_id", path)
        out[str(row["subset_img_id"])] = str(row["img_id"])
    return out


def _read_data_entry(path: Path) -> dict[str, str]:
    header, rows = read_csv_rows(path)
    require_columns(path, header, {"Image Index", "Patient ID"})
    if rows.problems:  # a row left out would put that image's patient apart from its other images
        raise BadInputError("patient mapping file has a malformed row", path, rows.problems[0].reason)
    return {r["Image Index"]: r["Patient ID"] for r in rows if r["Image Index"]}


def load_identity(paths) -> Identity:
    """Read any of the two files (told apart by suffix: ``.json`` RSNA mapping, ``.csv`` NIH Data_Entry)."""
    ident = Identity()
    for p in paths or ():
        path = Path(p)
        if not path.is_file():
            raise BadInputError("patient mapping file not found", path)
        if path.suffix.lower() == ".json":
            ident.rsna_image.update(_read_rsna_mapping(path))
        elif path.suffix.lower() == ".csv":
            ident.nih_patient.update(_read_data_entry(path))
        else:
            raise BadInputError("patient mapping must be RSNA's .json mapping or NIH's Data_Entry_2017.csv", path)
        ident.files.append(path.name)
    return ident


def default_group(r: Record) -> str:
    """Ingest's patient unit of a record (duplicates across sources merged), before any patient map."""
    return r.patient_group or f"{r.source}:{r.patient_id}"


def patient_groups(records: list[Record], identity: Identity | None) -> tuple[dict[str, str], dict]:
    """record_id -> the unit of the split (ingest's ``patient_group``, joined across RSNA and NIH by
    ``identity``), and a report of how RSNA was grouped."""
    base = {r.record_id: default_group(r) for r in records}
    rsna = [r for r in records if r.source == "rsna"]
    report = {"rsna_records": len(rsna), "files": list(identity.files) if identity else [], "rsna_linked": 0,
              "rsna": "per image" if rsna else "no RSNA records"}
    if identity is None or not (identity.rsna_image or identity.nih_patient):
        return base, report
    uf = _UnionFind()
    for r in records:
        uf.find(base[r.record_id])
        if r.source == "nih":
            uf.union(base[r.record_id], f"nih-patient:{_norm(r.patient_id)}")
    linked = 0
    for r in rsna:
        pid = identity.nih_patient_of(r.image_key)
        if pid is not None:
            uf.union(base[r.record_id], f"nih-patient:{pid}")
            linked += 1
    report.update({"rsna_linked": linked, "rsna": "by NIH patient" if linked else "per image"})
    return {k: uf.find(v) for k, v in base.items()}, report
