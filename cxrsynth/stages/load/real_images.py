"""The real images ``cxrsynth.load`` mixes with a release: from a work folder, or without one.

A user of a published release (from the Hub) has no work folder: no ingest of the upstream COVID-19
collection, no ``splits.json``. ``cxrsynth.load(..., real=...)`` takes the real images from what they
have instead, and this module turns it into records with a train / validation / test assignment:

- **folders** that ``cxrsynth ingest`` reads (an NIH ChestX-ray14 download, an RSNA folder, a folder of
  ``normal/`` ``pneumonia/`` ``covid/`` sub-folders, ...): ingested in memory with the default ingest
  settings (:class:`~cxrsynth.stages.ingest.IngestConfig`: adults only, PA/AP views, duplicates across folders
  dropped and their patients merged). Nothing is written, in the user's folders or anywhere else.
- a ``datasets.Dataset`` with an ``image`` column and a ``label`` column: a ``ClassLabel`` or a string
  whose name is normal / pneumonia / covid (or an alias the image-folder reader knows: ``No Finding``,
  ``COVID-19``, ...). Rows with another label are skipped and counted. An optional ``patient_id``
  column groups rows by patient; without it every row is its own patient (an image-level split).

Splits: with no work folder, the records are split on the fly by the rigorous splitter
(:func:`cxrsynth.stages.splits.make_splits`: patient-level, stratified by collection x label, fractions 0.7 /
0.1 / 0.2, ``seed``), so the same inputs and seed give the same split on every machine. The dataset's
``info`` records how (method, seed, fractions, the assignment's sha256, counts), so a paper can state
exactly which real images trained and which tested.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ...core.errors import BadInputError, ConfigError
from ...core.layout import WorkLayout
from ...core.paths import read_json
from ...data.records import LABELS, Record, make_record_id, read_records

DATASET_SOURCE = "datasets"


@dataclass
class RealImages:
    """Records with pixels, their split, and (for a ``datasets`` input) the rows their images are in."""

    records: list[Record]
    assign: dict[str, str]
    info: dict
    rows: object = None  # the datasets.Dataset whose row numbers DATASET_SOURCE records name
    skipped: Counter = field(default_factory=Counter)

    def pick(self, split: str, labels: tuple[str, ...]) -> list[Record]:
        return [r for r in self.records if self.assign.get(r.record_id) == split and r.label in labels]


def from_workdir(workdir: str | Path) -> RealImages:
    """The work folder's records and its ``splits.json``, as the benchmark reads them."""
    layout = WorkLayout(workdir)
    return from_split(read_records(layout.records), read_json(layout.splits), {"workdir": str(workdir)})


def from_split(records: list[Record], manifest: dict, info: dict | None = None) -> RealImages:
    """Records already read and their split manifest (``splits.json``'s content): what the benchmark
    stage hands ``load`` (``real=``), so that no work folder is opened again for each arm."""
    return RealImages([r for r in records if r.has_pixels], manifest["assignments"],
                      {"kind": "workdir", **(info or {}), "splits": _split_info(manifest)})


def _split_info(manifest: dict) -> dict:
    cfg = manifest["config"]
    return {"method": cfg["method"], "seed": cfg["seed"], "fractions": cfg["fractions"],
            "assignment_sha256": manifest["assignment_sha256"], "counts": manifest["counts"],
            "patients": manifest["patients"], "notes": manifest["notes"]}


def _split(records: list[Record], seed: int) -> tuple[dict[str, str], dict]:
    from ..splits import SplitConfig, make_splits

    if not records:
        raise ConfigError("no usable real images", "real=", "it needs normal, pneumonia or covid images")
    # max_group_share=1: there is no patient map here to be wrong, and a small set's one patient may hold
    # over 5% of it; the manifest's notes still say so
    manifest = make_splits(records, SplitConfig(method="rigorous", seed=seed, max_group_share=1.0))
    return manifest["assignments"], _split_info(manifest)


#: (folders, their files' fingerprint) -> (records, what was skipped and the readers' notes): loading train, validation and test
#: from the same folders ingests them once per process (minutes for a full NIH download), not three times.
_INGESTED: dict[tuple, tuple[list[Record], dict]] = {}


def _fingerprint(folders: list[Path]) -> str:
    """Every file's path, size and modification time: a changed folder is ingested again."""
    h = hashlib.sha256()
    for root in folders:
        for p in sorted(root.rglob("*")):
            st = p.stat()
            h.update(f"{p}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _ingest(folders: list[Path]) -> tuple[list[Record], dict]:
    """Ingest in memory (no out_dir: nothing is written); kept for this process while the files stay."""
    from ..ingest import IngestConfig, ingest

    key = (tuple(folders), _fingerprint(folders))
    if key not in _INGESTED:
        result = ingest(folders, IngestConfig(), out_dir=None)
        totals = result.report["totals"]
        _INGESTED.clear()  # one set of folders at a time: the records of a full download are large
        _INGESTED[key] = ([r for r in result.records if r.has_pixels],
                          {"skipped": {k: totals[k] for k in ("label_only", "bad_files", "duplicates_dropped", "outside_source")},
                           "notes": [n for c in result.report["collections"].values() for n in c["notes"]]})
    return _INGESTED[key]


def from_folders(folders: list[str | Path], seed: int = 0) -> RealImages:
    """The folders' records (ingested with the default settings), split patient-level with ``seed``."""
    roots = [Path(f).resolve() for f in folders]
    records, found = _ingest(roots)
    assign, split = _split(records, seed)
    info = {"kind": "folders", "folders": [str(f) for f in roots], "records": len(records), **found, "splits": split}
    return RealImages(records, assign, info)


def _label_names(rows) -> tuple[str | None, ...] | None:
    feature = rows.features.get("label")
    return tuple(feature.names) if hasattr(feature, "names") else None


def from_dataset(rows, seed: int = 0) -> RealImages:
    """Records for the rows of a ``datasets.Dataset`` (``image`` + ``label``, optional ``patient_id``)."""
    from ...data.sources.imagefolder import ALIASES

    missing = {"image", "label"} - set(rows.column_names)
    if missing:
        raise ConfigError("the real= dataset lacks columns", ", ".join(sorted(missing)),
                          f"it has {', '.join(rows.column_names)}; rename with dataset.rename_column")
    import datasets

    if not isinstance(rows.features["image"], datasets.Image):
        raise ConfigError("the real= dataset's image column is not an Image feature", type(rows.features["image"]).__name__,
                          "cast it: dataset.cast_column('image', datasets.Image())")
    names = _label_names(rows)
    labels = rows["label"]
    patients = rows["patient_id"] if "patient_id" in rows.column_names else None
    records, skipped = [], Counter()
    for i, raw in enumerate(labels):
        if names is not None and isinstance(raw, int):
            raw = names[raw] if 0 <= raw < len(names) else None
        if not isinstance(raw, str):
            raise BadInputError("the real= dataset's label column is neither a ClassLabel nor text", f"row {i}: {raw!r}",
                                f"use names {', '.join(LABELS)} (dataset.cast_column('label', ClassLabel(names=...)))")
        label = ALIASES.get(raw.strip().lower())
        if label is None:
            skipped[f"label {raw}"] += 1
            continue
        key = str(i)
        records.append(Record(record_id=make_record_id(DATASET_SOURCE, key), source=DATASET_SOURCE,
                              collection=DATASET_SOURCE, source_root="", source_path=key, image_key=key,
                              patient_id=str(patients[i]) if patients is not None else key, label=label,
                              has_pixels=True))
    for r in records:
        r.patient_group = f"{DATASET_SOURCE}:{r.patient_id}"
    assign, split = _split(records, seed)
    notes = [] if patients is not None else ["no patient_id column: each row is its own patient, so the split is image-level"]
    info = {"kind": "datasets", "rows": len(labels), "records": len(records), "skipped": dict(skipped),
            "notes": notes, "splits": split}
    return RealImages(records, assign, info, rows=rows, skipped=skipped)


def resolve(real, seed: int = 0) -> RealImages:
    """``real=``: a folder, a list of folders, a ``datasets.Dataset``, or :class:`RealImages` already made
    (:func:`from_split`), taken as it is."""
    if isinstance(real, RealImages):
        return real
    if isinstance(real, (str, Path)):
        return from_folders([real], seed)
    if isinstance(real, (list, tuple)) and real and all(isinstance(f, (str, Path)) for f in real):
        return from_folders(list(real), seed)
    import datasets

    if isinstance(real, datasets.Dataset):
        return from_dataset(real, seed)
    raise ConfigError("real= takes a folder, a list of folders or a datasets.Dataset", type(real).__name__,
                      "for a DatasetDict, pass one split (ds['train']); the splits are made here")
