"""``cxrsynth ingest``: upstream folders in, one record table and an ingest report out.

Steps: each folder's reader lists labelled images from its metadata (``sources/``); a row whose path
leaves its source folder (``..``, absolute, or a link resolving outside) is reported and never opened;
every file that exists is decoded once to the canonical array (``images.py``), in worker processes
when asked (refused unread when its header declares more than ``max_image_pixels``; blank images are bad
files); exact and near duplicates are found by content across all sources and only one copy of each
image is kept (the first by ``source_priority``); patients of duplicate images are merged into one ``patient_group``
so that a patient-level split cannot put the same person on both sides.

Files written in ``out_dir``: ``records.parquet``, ``ingest_report.json`` (validated against
``manifests/ingest_report.schema.json``) and ``ingest_config.json``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from .. import __version__
from ..data import images
from ..core.config import at_least, to_dict
from ..core.errors import BadInputError, ConfigError
from ..core.layout import WorkLayout
from ..core.paths import sha256_file, write_json
from ..data.identity import UnionFind
from ..data.records import Record, write_records
from ..core.schemas import validate
from ..data.sources import READERS, detect_format, is_external
from ..data.sources.base import Problem, SourceScan, path_problem
from ..data.sources.covid_collection import CovidCollectionConfig
from ..data.sources.hannover import HannoverConfig
from ..data.sources.imagefolder import ImageFolderConfig
from ..data.sources.nih import NihConfig
from ..data.sources.rsna import RsnaConfig


@dataclass(frozen=True)
class IngestConfig:
    """How to read the sources. Every field can be set in a config file or with ``--set``."""

    size: int = 256  # side of the canonical image
    on_missing: Literal["keep", "skip", "error"] = "keep"  # keep = label-only record (plans need no pixels)
    on_bad_files: Literal["skip", "error"] = "skip"  # unreadable / truncated / non-image files
    dedupe: bool = True
    dedupe_max_hamming: int = 6  # dhash bits that may differ between near duplicates...
    dedupe_max_zmad: float = 0.05  # ...and the most their z-scored 32x32 thumbnails may differ (mean abs)
    source_priority: tuple[str, ...] = ("nih", "covid-collection", "rsna", "imagefolder")
    # whose label a kept duplicate takes: RSNA's labels are the challenge's expert re-reads of NIH images,
    # so an NIH copy kept for its metadata carries the RSNA label (reported as label_from in the report)
    label_from: tuple[str, ...] = ("rsna",)
    workers: int = 0  # decoding processes; 0 = this process
    # width x height above which an image is refused from its header, unread: a 12000 x 12000 PNG of zeros
    # (a few kB) would take ~2 GB to decode, per worker. Real chest films are under 20 M (4300 x 4300).
    max_image_pixels: int = images.MAX_IMAGE_PIXELS
    covid_collection: CovidCollectionConfig = field(default_factory=CovidCollectionConfig)
    nih: NihConfig = field(default_factory=NihConfig)
    rsna: RsnaConfig = field(default_factory=RsnaConfig)
    imagefolder: ImageFolderConfig = field(default_factory=ImageFolderConfig)
    hannover: HannoverConfig = field(default_factory=HannoverConfig)

    def __post_init__(self):
        unknown = set(self.source_priority) - set(READERS)
        if unknown:
            raise ConfigError("unknown source in source_priority", sorted(unknown), f"known: {sorted(READERS)}")
        if self.size < 16:
            raise ConfigError("size must be at least 16", self.size)
        if self.max_image_pixels < 1:
            raise ConfigError("max_image_pixels must be at least 1", self.max_image_pixels)
        at_least("dedupe_max_zmad", self.dedupe_max_zmad, 0)


@dataclass
class IngestResult:
    records: list[Record]
    report: dict
    records_path: Path | None = None
    report_path: Path | None = None


def _decode_one(args: tuple[str, int, int]) -> dict:
    """Worker: decode and hash one file. Returns plain data (picklable), or the error text."""
    path, size, max_pixels = args
    try:
        dec = images.decode(path, size, max_pixels)
    except BadInputError as exc:
        return {"error": exc.what + (f": {exc.hint}" if exc.hint else "")}
    return {
        "file_sha256": sha256_file(path), "pixel_sha256": images.pixel_sha256(dec.pixels),
        "dhash": images.dhash(dec.pixels), "thumb": images.thumbnail(dec.pixels),
        "width": dec.width, "height": dec.height, "pixel_spacing_mm": dec.pixel_spacing_mm,
    }


def _decode_all(paths: list[str], size: int, max_pixels: int, workers: int, progress: bool) -> list[dict]:
    from ..core.progress import bar as progress_bar

    jobs = [(p, size, max_pixels) for p in paths]
    bar = dict(total=len(jobs), desc="decode", unit="img", enabled=progress, leave=False)
    if workers and workers > 0 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return list(progress_bar(pool.map(_decode_one, jobs, chunksize=16), **bar))
    return [_decode_one(j) for j in progress_bar(jobs, **bar)]


def find_duplicate_pairs(dhashes: np.ndarray, thumbs: np.ndarray, max_hamming: int, max_zmad: float,
                         chunk: int = 2048) -> list[tuple[int, int, int, float]]:
    """Pairs (i, j, hamming, mad) of near-identical images: dhash close, then thumbnails confirm.

    All pairs are compared by dhash in chunks (vectorised popcount); only the few candidates are
    confirmed on the thumbnails, so this stays quick for the 30k images of the full sources.
    """
    n = len(dhashes)
    out = []
    for start in range(0, n, chunk):
        block = dhashes[start:start + chunk, None] ^ dhashes[None, :]
        dist = np.bitwise_count(block)
        ii, jj = np.nonzero(dist <= max_hamming)
        for a, j in zip(ii, jj):
            i = start + int(a)
            if j <= i:
                continue
            mad = float(np.abs(thumbs[i].astype(np.float32) - thumbs[j].astype(np.float32)).mean())
            if mad <= max_zmad:
                out.append((i, int(j), int(dist[a, j]), round(mad, 3)))
    return out


def scan_sources(roots: list[Path], cfg: IngestConfig, formats: list[str | None] | None = None
                 ) -> list[tuple[str, str, SourceScan]]:
    """Run each folder's reader; returns (format, collection, scan) per folder."""
    out = []
    names: Counter = Counter()
    for i, root in enumerate(roots):
        root = Path(root).resolve()
        fmt = (formats[i] if formats else None) or detect_format(root)
        if fmt not in READERS:
            raise ConfigError("unknown source format", fmt, f"known: {sorted(READERS)}")
        collection = root.name
        names[collection] += 1
        if names[collection] > 1:
            collection = f"{collection}-{names[collection]}"
        sub_cfg = getattr(cfg, fmt.replace("-", "_"))
        out.append((fmt, collection, READERS[fmt].read(root, sub_cfg, collection)))
    return out


def _outside_source(scan: SourceScan, collection: str, on_bad_files: str) -> list[Problem]:
    """Take out of ``scan`` every record whose path leaves its source folder; one problem per row.

    Paths named only by rows left out for other reasons are never opened: they are just dropped from
    ``listed``, so that the search for unreferenced files stays inside the folder too.
    """
    found, keep, folders = [], [], {}
    for r in scan.records:
        why = path_problem(r.source_root, r.source_path, folders=folders)
        if why is None:
            keep.append(r)
            continue
        if on_bad_files == "error":
            raise BadInputError(f"a metadata path {why}", f"{collection}: {r.source_path}",
                                "fix the row, or set ingest.on_bad_files=skip to leave it out")
        found.append(Problem(collection, r.source_path, f"path {why}; not read", r.rows[0] if r.rows else None))
    scan.records = keep
    scan.listed = {p for p in scan.listed if path_problem(scan.root or "", p, resolve=False) is None}
    return found


def _unreferenced(named: set[str], root: str) -> list[str]:
    """Files in the folders the metadata points into that no metadata row names (kept or excluded)."""
    dirs = {str(Path(p).parent) for p in named}
    extra = []
    for d in sorted(dirs):
        folder = Path(root) / d
        if path_problem(root, d) is None and folder.is_dir():
            extra += [f"{d}/{p.name}" for p in sorted(folder.iterdir()) if p.is_file() and f"{d}/{p.name}" not in named]
    return extra


def ingest(roots: list[str | Path], cfg: IngestConfig = IngestConfig(), out_dir: str | Path | None = None,
           formats: list[str | None] | None = None, progress: bool = False, external: bool = False) -> IngestResult:
    """Read ``roots`` into records; write the table and report into ``out_dir`` when given.

    A source that is external by default (the Hannover repository) has its rows left out and counted
    (``excluded``), so that it can never reach a split; ``external=True`` (the benchmark reading an
    ``--external`` set) keeps them.

    Four steps: scan the sources' metadata (:func:`_scan`), decode the images that exist
    (:func:`_decode`), drop duplicates by content across every source (:func:`_dedupe`), and report.
    """
    t0 = time.perf_counter()
    per_collection, problems, candidates = _scan([Path(r) for r in roots], cfg, formats, external)
    dec = _decode(candidates, cfg, progress)
    kept_missing = dec.missing if cfg.on_missing == "keep" else []
    dropped, dup_entries, patient_of = _dedupe(dec.ok, dec.thumbs, kept_missing, cfg)
    records = [r for k, r in enumerate(dec.ok) if k not in dropped] + kept_missing
    for r in records:
        r.patient_group = patient_of(r)
    records.sort(key=lambda r: (r.collection, r.rows[0] if r.rows else 0, r.record_id))
    problems += _count_collections(per_collection, records, dec, dropped)
    report = _report(cfg, per_collection, records, problems, dec, dropped, dup_entries, time.perf_counter() - t0)
    result = IngestResult(records, report)
    if out_dir is not None:
        out = WorkLayout(out_dir)
        result.records_path = write_records(records, out.records,
                                            {"preprocessing": report["preprocessing"], "size": cfg.size})
        result.report_path = write_json(out.ingest_report, report)
        write_json(out.ingest_config, to_dict(cfg))
    return result


EXTERNAL_EXCLUDED = "external test set, never trained on (score it with benchmark --external NAME=DIR)"


def _scan(roots: list[Path], cfg: IngestConfig, formats, external: bool = False
          ) -> tuple[dict[str, dict], list[Problem], list[Record]]:
    """Every source's labelled records (not decoded yet), its counts, and the problems found."""
    per_collection: dict[str, dict] = {}
    problems: list[Problem] = []
    candidates: list[Record] = []
    for fmt, collection, scan in scan_sources(roots, cfg, formats):
        if is_external(fmt) and not external and scan.records:
            scan.excluded[EXTERNAL_EXCLUDED] += len(scan.records)
            scan.notes.append(f"{collection} is an external test set: its {len(scan.records)} images are left out "
                              "of the record table and so of every split")
            scan.records = []
        outside = _outside_source(scan, collection, cfg.on_bad_files)
        per_collection[collection] = {
            "format": fmt, "_root": scan.root, "_listed": scan.listed,
            "rows_read": scan.rows_read, "labelled": len(scan.records), "excluded": dict(scan.excluded),
            "notes": list(scan.notes), "outside_source": len(outside),
        }
        problems += scan.problems + outside
        candidates += scan.records
    return per_collection, problems, candidates


@dataclass
class _Decoded:
    """What decoding found: records with pixels (``ok``, with their thumbnails), files that do not
    exist (``missing``) or do not decode (``bad``)."""

    present: list[Record]
    missing: list[Record]
    ok: list[Record]
    thumbs: list[np.ndarray]
    bad: list[dict]
    seconds: float


def _decode(candidates: list[Record], cfg: IngestConfig, progress: bool) -> _Decoded:
    """Decode what exists; classify what does not (``on_missing``, ``on_bad_files``)."""
    exists = [os.path.isfile(os.path.join(r.source_root, r.source_path)) for r in candidates]  # r.path, one stat
    present = [r for r, e in zip(candidates, exists) if e]
    missing = [r for r, e in zip(candidates, exists) if not e]
    if missing and cfg.on_missing == "error":
        raise BadInputError(f"{len(missing)} image files are missing", missing[0].path,
                            "set ingest.on_missing=keep (label-only records) or skip")
    t_decode = time.perf_counter()
    decoded = _decode_all([str(r.path) for r in present], cfg.size, cfg.max_image_pixels, cfg.workers, progress)
    seconds = time.perf_counter() - t_decode
    bad: list[dict] = []
    ok: list[Record] = []
    thumbs: list[np.ndarray] = []
    for rec, res in zip(present, decoded):
        if "error" in res:
            if cfg.on_bad_files == "error":
                raise BadInputError(res["error"], rec.path)
            bad.append({"collection": rec.collection, "path": rec.source_path, "reason": res["error"]})
            continue
        thumbs.append(res.pop("thumb"))
        for k, v in res.items():
            if k == "pixel_spacing_mm" and v is None:
                continue
            setattr(rec, k, v)
        rec.has_pixels = True
        ok.append(rec)
    return _Decoded(present, missing, ok, thumbs, bad, seconds)


def _dedupe(ok: list[Record], thumbs: list[np.ndarray], kept_missing: list[Record], cfg: IngestConfig):
    """Duplicates by content, across every source: returns the indices of ``ok`` dropped, the report's
    entries, and each record's patient group (patients joined through a shared image)."""
    dup_entries: list[dict] = []
    dropped: set[int] = set()
    uf = UnionFind()
    for r in ok + kept_missing:
        uf.find(f"{r.source}:{r.patient_id}")
    if cfg.dedupe and len(ok) > 1:
        pairs = find_duplicate_pairs(np.array([r.dhash for r in ok], dtype=np.uint64), np.stack(thumbs),
                                     cfg.dedupe_max_hamming, cfg.dedupe_max_zmad)
        groups = UnionFind()
        for i, j, _, _ in pairs:
            groups.union(str(i), str(j))
        members: dict[str, list[int]] = defaultdict(list)
        for i in {x for p in pairs for x in p[:2]}:
            members[groups.find(str(i))].append(i)
        prio = {s: k for k, s in enumerate(cfg.source_priority)}
        pair_info = {(i, j): (h, m) for i, j, h, m in pairs}
        for idx in members.values():
            idx.sort(key=lambda k: (prio.get(ok[k].source, 99), ok[k].collection, ok[k].record_id))
            keep = idx[0]
            relabel = next((k for k in idx[1:] if ok[k].source in cfg.label_from and ok[k].source != ok[keep].source), None)
            for k in idx[1:]:
                dropped.add(k)
                uf.union(f"{ok[keep].source}:{ok[keep].patient_id}", f"{ok[k].source}:{ok[k].patient_id}")
                h, m = pair_info.get((min(keep, k), max(keep, k)), (None, None))
                dup_entries.append({
                    "kept": ok[keep].record_id, "kept_path": f"{ok[keep].collection}/{ok[keep].source_path}",
                    "dropped": ok[k].record_id, "dropped_path": f"{ok[k].collection}/{ok[k].source_path}",
                    "hamming": h, "mad": m, "label_conflict": ok[keep].label != ok[k].label,
                    "label_from": ok[k].source if k == relabel else None,
                })
            if relabel is not None:
                ok[keep].label = ok[relabel].label
    return dropped, dup_entries, lambda r: uf.find(f"{r.source}:{r.patient_id}")


def _count_collections(per_collection: dict[str, dict], records: list[Record], dec: _Decoded,
                       dropped: set[int]) -> list[Problem]:
    """Fill in each collection's counts; returns the problems of files no metadata names."""
    problems: list[Problem] = []
    for name, info in per_collection.items():
        mine = [r for r in records if r.collection == name]
        info.update({
            "records": len(mine), "with_pixels": sum(r.has_pixels for r in mine),
            "missing_files": sum(1 for r in dec.missing if r.collection == name),
            "bad_files": sum(1 for b in dec.bad if b["collection"] == name),
            "duplicates_dropped": sum(1 for k in dropped if dec.ok[k].collection == name),
            "by_label": dict(Counter(r.label for r in mine)),
        })
        root = info.pop("_root")
        if root:
            extra = _unreferenced(info.pop("_listed"), root)
            info["unreferenced_files"] = len(extra)
            problems += [Problem(name, p, "file in the image folder is not named by the metadata")
                         for p in extra[:1000]]
    return problems


def _report(cfg: IngestConfig, per_collection: dict, records: list[Record], problems: list[Problem], dec: _Decoded,
            dropped: set[int], dup_entries: list[dict], seconds: float) -> dict:
    """``ingest_report.json``, checked against its schema."""
    present, decode_s = dec.present, dec.seconds
    report = {
        "kind": "cxrsynth.ingest_report", "code_version": __version__,
        "config": to_dict(cfg), "preprocessing": dict(images.PREPROCESSING, size=cfg.size),
        "totals": {
            "records": len(records), "with_pixels": sum(r.has_pixels for r in records),
            "label_only": sum(not r.has_pixels for r in records),
            "by_label": dict(Counter(r.label for r in records)),
            "patients": len({r.patient_group for r in records}),
            "missing_files": len(dec.missing), "bad_files": len(dec.bad), "duplicates_dropped": len(dropped),
            "outside_source": sum(c["outside_source"] for c in per_collection.values()),
            "problems": len(problems),
        },
        "collections": per_collection,
        "missing_files": [{"collection": r.collection, "path": r.source_path, "record_id": r.record_id,
                           "action": cfg.on_missing} for r in dec.missing],
        "bad_files": dec.bad,
        "duplicates": dup_entries,
        "problems": [dataclasses.asdict(p) for p in problems],
        "timing": {"seconds": round(seconds, 3), "decoded": len(present), "decode_seconds": round(decode_s, 3),
                   "images_per_second": round(len(present) / decode_s, 2) if decode_s > 0 and present else None,
                   "workers": cfg.workers},
    }
    validate(report, "ingest_report")
    return report


def default_roots(data_dir: Path) -> list[Path]:
    """Every sub-folder of the data folder that a reader recognises, in name order, less the external
    test sets (the Hannover repository): those are for ``benchmark --external``, never for training."""
    roots = []
    for p in sorted(data_dir.iterdir()):
        if p.is_dir():
            try:
                fmt = detect_format(p)
            except BadInputError:
                continue
            if not is_external(fmt):
                roots.append(p)
    return roots
