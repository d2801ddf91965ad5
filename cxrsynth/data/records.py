"""The Record: one real X-ray image as cxrsynth knows it, and the parquet table that holds them.

A record exists for every labelled image a source lists, including images whose file is absent
(``has_pixels`` false): a release *plan* needs labels only, while training and generation need pixels
and say how many records they had to leave out for lack of them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from ..core.errors import BadInputError, DataNotFoundError

Label = Literal["normal", "pneumonia", "covid"]
LABELS: tuple[str, ...] = ("normal", "pneumonia", "covid")


@dataclass
class Record:
    """One real image. ``record_id`` is stable: a hash of the source format and its native image key."""

    record_id: str
    source: str  # reader name: covid-collection | nih | rsna | imagefolder
    collection: str  # the folder it came from (several folders may share a reader)
    source_root: str  # absolute path of that folder
    source_path: str  # file path relative to source_root
    image_key: str  # the source's own id of the image (file name, Image Index, patientId)
    patient_id: str  # the source's patient id, always a string
    label: str
    view: str | None = None
    sex: str | None = None
    age: float | None = None
    license: str | None = None
    finding: str | None = None  # the source's raw label text
    rows: list[int] = field(default_factory=list)  # 0-based data-row numbers in the label file (paper split)
    has_pixels: bool = False
    file_sha256: str | None = None
    pixel_sha256: str | None = None  # sha256 of the decoded canonical pixels (see images.py)
    dhash: int | None = None  # 64-bit difference hash, for near-duplicate search across sources
    width: int | None = None  # of the original file
    height: int | None = None
    pixel_spacing_mm: float | None = None
    patient_group: str | None = None  # the unit of the patient-level split (set by ingest)

    @property
    def path(self) -> Path:
        return Path(self.source_root) / self.source_path


def make_record_id(source: str, image_key: str) -> str:
    return hashlib.sha256(f"{source}:{image_key}".encode()).hexdigest()[:16]


SCHEMA = pa.schema([
    ("record_id", pa.string()), ("source", pa.string()), ("collection", pa.string()),
    ("source_root", pa.string()), ("source_path", pa.string()), ("image_key", pa.string()),
    ("patient_id", pa.string()), ("label", pa.string()), ("view", pa.string()), ("sex", pa.string()),
    ("age", pa.float64()), ("license", pa.string()), ("finding", pa.string()),
    ("rows", pa.list_(pa.int64())), ("has_pixels", pa.bool_()), ("file_sha256", pa.string()),
    ("pixel_sha256", pa.string()), ("dhash", pa.uint64()), ("width", pa.int64()), ("height", pa.int64()),
    ("pixel_spacing_mm", pa.float64()), ("patient_group", pa.string()),
])
assert [f.name for f in dataclasses.fields(Record)] == SCHEMA.names


def write_records(records: Iterable[Record], path: str | Path, metadata: dict | None = None) -> Path:
    """Write the record table atomically; ``metadata`` (e.g. the preprocessing) goes in the schema."""
    import json

    from ..core.paths import atomic_write

    records = list(records)
    # column by column, not dataclasses.asdict per record: asdict deep-copies every field (a third of an
    # ingest of the 26,686 RSNA rows went there); the table is the same
    columns = {name: [getattr(r, name) for r in records] for name in SCHEMA.names}
    schema = SCHEMA.with_metadata({"cxrsynth": json.dumps(metadata or {})})
    table = pa.Table.from_pydict(columns, schema=schema)
    with atomic_write(path, "wb") as fh:
        pq.write_table(table, fh)
    return Path(path)


def read_records(path: str | Path) -> list[Record]:
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError("record table not found", path, "run `cxrsynth ingest` first")
    try:
        # ParquetFile, not read_table: read_table goes through pyarrow.dataset, which imports pandas
        # (0.25 s of every train, generate or benchmark process) and adds nothing for one file.
        table = pq.ParquetFile(path).read()
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise BadInputError("record table is not a readable parquet file", path, str(exc)) from exc
    missing = set(SCHEMA.names) - set(table.column_names)
    if missing:
        raise BadInputError("record table lacks columns", path, ", ".join(sorted(missing)))
    columns = table.select(SCHEMA.names).to_pydict()  # by column: cheaper than a dict per row
    return [Record(*values) for values in zip(*columns.values())]


def read_metadata(path: str | Path) -> dict:
    import json

    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta.get(b"cxrsynth", b"{}"))
