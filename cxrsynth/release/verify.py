"""``cxrsynth verify DIR``: is this release folder whole, consistent and free of identifiers?

Checks, each reported as one problem line naming the file:
- every file is listed in ``SHA256SUMS`` with a matching checksum, and nothing listed is missing;
- ``manifest.json`` and every ``provenance.jsonl`` line validate against their schemas; ``croissant.json``
  has the Croissant and RAI fields (and passes mlcroissant when it is installed and asked for);
- counts agree: manifest, parquet rows, provenance lines, the card's YAML; parquet files match the
  manifest's list, sizes and checksums; every embedded PNG matches its ``png_sha256``; ids are unique;
- the card agrees with the manifest (version, licence, configs, counts);
- no public file names a source record, patient, image key or path (from the private
  ``identifiers.json`` when given or found beside the release), an absolute path, an RSNA/DICOM-style
  UUID or an NIH image file name.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from ..errors import SchemaError
from ..paths import sha256_file
from ..schemas import validate
from .card import read_front_matter

REQUIRED = ("README.md", "manifest.json", "provenance.jsonl", "croissant.json", "SHA256SUMS", "sample_grid.png")
PATTERNS = {
    "an absolute path": re.compile(r"(?<![\w.])/(?:home|work|root|Users|tmp|mnt|data|var)/[^\s\"']+|[A-Za-z]:\\\\"),
    "a UUID (RSNA patientId / DICOM style)": re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
    "an NIH image file name": re.compile(r"\b\d{8}_\d{3}\.png\b"),
}
CROISSANT_KEYS = ("@context", "@type", "conformsTo", "name", "license", "distribution", "recordSet",
                  "rai:dataCollection", "rai:dataBiases", "rai:dataLimitations", "rai:personalSensitiveInformation")


def find_private(release: Path) -> Path | None:
    cand = release.parent / f"{release.name}.private"
    return cand if (cand / "identifiers.json").is_file() else None


def verify(release: str | Path, private: str | Path | None = None, croissant_strict: bool = False) -> list[str]:
    """Return the list of problems (empty when the release is sound)."""
    root = Path(release)
    problems: list[str] = []
    if not root.is_dir():
        return [f"{root}: release folder not found"]
    for name in REQUIRED:
        if not (root / name).is_file():
            problems.append(f"{name}: missing")
    if not list((root / "data").glob("*.parquet")):
        problems.append("data/: no parquet shards")
    sums_problems, verified = _check_sums(root)
    problems += sums_problems
    manifest = _load_json(root / "manifest.json", problems)
    if manifest is None:
        return problems
    try:
        validate(manifest, "release_manifest", "manifest.json")
    except SchemaError as exc:
        problems.append(f"manifest.json: {exc.what}")
        return problems
    prov_counts, prov_ids = _check_provenance(root, problems)
    _check_parquet(root, manifest, prov_ids, problems, verified)
    for config, n in manifest["counts"].items():
        if config == "all":
            if n != sum(v for k, v in manifest["counts"].items() if k != "all"):
                problems.append("manifest.json: counts.all is not the sum of the configs")
            continue
        if manifest["configs"].get(config, {}).get("num_examples") != n:
            problems.append(f"manifest.json: counts.{config} disagrees with configs.{config}.num_examples")
        if prov_counts.get(config, 0) != n:
            problems.append(f"provenance.jsonl: {prov_counts.get(config, 0)} lines for {config}, manifest says {n}")
    _check_card(root, manifest, problems)
    _check_croissant(root, manifest, problems, croissant_strict)
    priv = Path(private) if private else find_private(root)
    problems += scan_for_leaks(root, priv)
    return problems


def _load_json(path: Path, problems: list[str]):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        problems.append(f"{path.name}: not valid JSON ({exc})")
        return None


def _check_sums(root: Path) -> tuple[list[str], dict[str, str]]:
    """Problems, and the sha256 of every file that matched its SHA256SUMS line (so nothing is hashed twice)."""
    sums = root / "SHA256SUMS"
    if not sums.is_file():
        return [], {}
    out, listed, verified = [], {}, {}
    for i, line in enumerate(sums.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("  ", 1)
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-f]{64}", parts[0]):
            out.append(f"SHA256SUMS: line {i} is malformed")
            continue
        listed[parts[1]] = parts[0]
    for rel, sha in listed.items():
        path = root / rel
        if not path.is_file():
            out.append(f"{rel}: listed in SHA256SUMS but missing")
        elif sha256_file(path) != sha:
            out.append(f"{rel}: checksum does not match SHA256SUMS")
        else:
            verified[rel] = sha
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel != "SHA256SUMS" and rel not in listed:
            out.append(f"{rel}: not listed in SHA256SUMS")
    return out, verified


def _check_provenance(root: Path, problems: list[str]) -> tuple[Counter, set[str]]:
    counts: Counter = Counter()
    ids: set[str] = set()
    path = root / "provenance.jsonl"
    if not path.is_file():
        return counts, ids
    for i, line in enumerate(path.read_text().splitlines(), 1):
        try:
            rec = json.loads(line)
            validate(rec, "provenance", f"provenance.jsonl line {i}")
        except (ValueError, SchemaError) as exc:
            problems.append(f"provenance.jsonl: line {i}: {getattr(exc, 'what', exc)}")
            continue
        if rec["id"] in ids:
            problems.append(f"provenance.jsonl: line {i}: id {rec['id']} repeated")
        ids.add(rec["id"])
        counts[rec["config"]] += 1
    return counts, ids


def _check_parquet(root: Path, manifest: dict, prov_ids: set[str], problems: list[str],
                   verified: dict[str, str]) -> None:
    listed = {f["path"]: f for f in manifest["files"]}
    present = {p.relative_to(root).as_posix() for p in (root / "data").glob("*.parquet")}
    for rel in sorted(set(listed) - present):
        problems.append(f"{rel}: in manifest.json but missing")
    for rel in sorted(present - set(listed)):
        problems.append(f"{rel}: not in manifest.json")
    seen: set[str] = set()
    for rel in sorted(set(listed) & present):
        path, meta = root / rel, listed[rel]
        sha = verified.get(rel) or sha256_file(path)
        if path.stat().st_size != meta["num_bytes"] or sha != meta["sha256"]:
            problems.append(f"{rel}: size or checksum differs from manifest.json")
        try:
            pf = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            problems.append(f"{rel}: unreadable parquet ({exc})")
            continue
        if pf.metadata.num_rows != meta["num_rows"]:
            problems.append(f"{rel}: {pf.metadata.num_rows} rows, manifest says {meta['num_rows']}")
        for batch in pf.iter_batches(batch_size=256, columns=["id", "image", "png_sha256", "config"]):
            for row in batch.to_pylist():
                if row["id"] in seen:
                    problems.append(f"{rel}: id {row['id']} repeated")
                seen.add(row["id"])
                if prov_ids and row["id"] not in prov_ids:
                    problems.append(f"{rel}: id {row['id']} has no provenance")
                if hashlib.sha256(row["image"]["bytes"]).hexdigest() != row["png_sha256"]:
                    problems.append(f"{rel}: image {row['id']} does not match its png_sha256")
                if row["image"]["path"] != f"{row['id']}.png" or not rel.startswith(f"data/{row['config']}-"):
                    problems.append(f"{rel}: row {row['id']} has a wrong path or config")


def _check_card(root: Path, manifest: dict, problems: list[str]) -> None:
    card = root / "README.md"
    if not card.is_file():
        return
    fm = read_front_matter(card)
    if not fm:
        problems.append("README.md: no YAML front matter")
        return
    meta = fm.get("cxrsynth", {})
    if meta.get("version") != manifest["version"]:
        problems.append(f"README.md: version {meta.get('version')} disagrees with manifest {manifest['version']}")
    if meta.get("counts") != manifest["counts"]:
        problems.append("README.md: counts disagree with manifest.json")
    if fm.get("license") != manifest["license"]:
        problems.append("README.md: licence disagrees with manifest.json")
    names = {c["config_name"] for c in fm.get("configs", [])}
    if names != set(manifest["configs"]) | {"all"}:
        problems.append(f"README.md: configs {sorted(names)} disagree with manifest.json")
    for info in fm.get("dataset_info", []):
        want = manifest["counts"].get(info.get("config_name"))
        got = sum(s.get("num_examples", 0) for s in info.get("splits", []))
        if want != got:
            problems.append(f"README.md: dataset_info {info.get('config_name')} says {got} examples, manifest {want}")
    body = card.read_text()
    if f"{manifest['counts']['all']:,}" not in body:
        problems.append("README.md: the body does not state the total count of the manifest")


def _check_croissant(root: Path, manifest: dict, problems: list[str], strict: bool) -> None:
    cr = _load_json(root / "croissant.json", problems)
    if cr is None:
        return
    for key in CROISSANT_KEYS:
        if key not in cr:
            problems.append(f"croissant.json: lacks {key}")
    if cr.get("version") != manifest["version"]:
        problems.append("croissant.json: version disagrees with manifest.json")
    if strict:
        import mlcroissant as mlc

        try:
            mlc.Dataset(jsonld=str(root / "croissant.json"))
        except Exception as exc:  # mlcroissant raises ValidationError and others
            problems.append(f"croissant.json: mlcroissant validation failed ({str(exc).splitlines()[0][:300]})")


def _public_texts(root: Path):
    for name in ("README.md", "manifest.json", "provenance.jsonl", "croissant.json", "SHA256SUMS"):
        if (root / name).is_file():
            yield name, (root / name).read_text(errors="replace")
    for path in sorted((root / "data").glob("*.parquet")):
        pf = pq.ParquetFile(path)
        meta = json.dumps({k.decode(errors="replace"): v.decode(errors="replace")
                           for k, v in (pf.schema_arrow.metadata or {}).items()})
        strings = [meta]
        # every column but the image bytes: of the image struct only its `path` leaf is read
        cols = [c for c in pf.schema_arrow.names if c != "image"] + ["image.path"]
        for batch in pf.iter_batches(batch_size=1024, columns=cols):
            strings += [json.dumps(r) for r in batch.to_pylist()]
        yield path.relative_to(root).as_posix(), "\n".join(strings)


def _identifiers(private: Path | None) -> dict[str, list[str]]:
    """Source identifiers to look for, each kind sorted. Bare numbers under 6 digits (COVID-collection and
    NIH patient ids like "61" or "1300") are left out: they occur in any text as counts and sizes, and alone
    they identify nobody; the images' file names and ids that carry them are checked."""
    if not (private and (private / "identifiers.json").is_file()):
        return {}
    data = json.loads((private / "identifiers.json").read_text())
    out = {}
    for kind in ("record_ids", "patient_ids", "image_keys", "source_paths", "source_roots"):
        vals = {str(x) for x in data.get(kind, []) if x}
        out[kind] = sorted(v for v in vals if len(v) >= 4 and not (v.isdigit() and len(v) < 6))
    return out


TOKEN = re.compile(r"[A-Za-z0-9_.\-]+")
AFTER_SLASH = re.compile(r"/([A-Za-z0-9_.\-]+)")


def first_path_in(text: str, paths: list[str]) -> str | None:
    """The first of ``paths`` (each holding a '/') that occurs in ``text`` as a substring.

    Searching every path through every text is quadratic (22,000 paths x megabytes at release scale). A
    substring match of ``p`` puts "/" + basename(p) in the text, so basename(p) is then a prefix of the
    token after some "/": only paths that pass this test are searched for. The answer is the same.
    """
    after = sorted(set(AFTER_SLASH.findall(text)))
    for p in paths:
        base = p.rsplit("/", 1)[1]
        if base and TOKEN.fullmatch(base):
            k = bisect.bisect_left(after, base)
            if k == len(after) or not after[k].startswith(base):
                continue
        if p in text:
            return p
    return None


def scan_for_leaks(root: Path, private: Path | None) -> list[str]:
    ident = _identifiers(private)
    problems = []
    for name, text in _public_texts(root):
        for what, pat in PATTERNS.items():
            m = pat.search(text)
            if m:
                problems.append(f"{name}: contains {what} ({m.group(0)[:60]})")
        tokens = set(TOKEN.findall(text))
        for kind, values in ident.items():
            if kind in ("source_paths", "source_roots"):
                hit = first_path_in(text, [v for v in values if "/" in v])
                hit = hit or next((v for v in values if "/" not in v and v in tokens), None)
            else:
                hit = next((v for v in values if v in tokens), None)
            if hit:
                problems.append(f"{name}: contains a source identifier from {kind} ({hit[:40]})")
    return problems
