"""``cxrsynth verify DIR``: is this release folder whole, consistent, free of identifiers, and nothing else?

A release is published file by file, so verify judges the folder as an upload would see it. Each problem
is one line naming the file; a file that cannot be read (truncated parquet, bad UTF-8, broken JSON) is a
problem line too, never a traceback, so a hostile folder can only make verify fail, never pass.

Checks:
- **only the release**: every entry is a regular file (no symbolic links, fifos or devices) that the
  release consists of: the metadata files in ``REQUIRED`` and the parquet shards ``manifest.json`` lists.
  A copy made by ``hf download --local-dir`` may also hold the Hub's ``.gitattributes`` and its
  ``.cache/huggingface/`` bookkeeping; those are ignored (and never returned by :func:`publishable_files`);
- **checksums**: every file but the card is listed in ``SHA256SUMS`` with a matching checksum, nothing
  listed is missing, and no line names a path that leaves the folder (absolute, ``..``): nothing outside is
  ever opened. The card (``README.md``) is left out of ``SHA256SUMS`` because the Hub lets its YAML be
  edited on the website (metadata pull requests from Hub staff and bots are common); its protected sections
  are checked against the manifest instead, which ``SHA256SUMS`` does cover;
- **schemas**: ``manifest.json`` and every ``provenance.jsonl`` line; ``croissant.json`` has the Croissant
  and RAI fields (and passes mlcroissant when asked);
- **rows**: parquet files match the manifest's list, sizes and checksums; every row matches its
  ``provenance.jsonl`` line (config, source_label, translator_id, checkpoint_sha256, png_sha256, seed,
  code_version, created) and every line has a row; every embedded PNG matches its ``png_sha256`` and no
  two rows hold the same image;
- **manifest against rows**: counts per config, the translator (id and generator sha256) and source label
  of every row's config, the sources' licences against the registry, counts within the plan, the audit
  no larger than the release;
- **generated text**: the card's protected sections (every ``## `` section the manifest generates and
  the title and summary above them; not the Benchmark, External test set and Changes sections, nor the
  YAML front matter); given the benchmark folder the card was made from (``benchmark``), the Benchmark
  and External test set sections too, rendered again from its stamped ``results.json`` and ``tables.md``
  (a release holds no benchmark results, so without it those two sections are not checked)
  and ``croissant.json`` are what the manifest generates: so the counts, translators, licences, access,
  contact, audit stamp and the not-for-clinical-use statement cannot be edited. Of the front matter,
  only the keys that say what the data are (``license``, ``configs``, ``dataset_info`` and the
  ``cxrsynth`` block) are read; the rest may be edited on the Hub;
- **no leaks**: every file (not a named few), including text chunks of PNGs and of the embedded images,
  is searched for source record ids, patient ids, image keys and paths (from the private
  ``identifiers.json``), absolute paths, RSNA/DICOM-style UUIDs and NIH image file names. Without the
  private identifiers verify fails, unless ``no_identifiers`` is set, and says so.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import os
import re
import stat
import struct
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow.parquet as pq

from ...artifacts import ReleaseFolder
from ...artifacts.release_folder import MANIFEST, NOT_IN_SUMS, REQUIRED, identifiers_in, private_sibling
from ...core.errors import BadInputError, CxrsynthError, DataNotFoundError, SchemaError, VerifyError
from ...data.records import LABELS
from ...core.schemas import validate
from ...core.vocab import SOURCE_LABEL
from ...data.sources.terms import SOURCES

# What `hf download --local-dir` adds beside the files of the repo: the Hub's own .gitattributes and the
# download cache's bookkeeping. They are not part of the release and are never published by cxrsynth.
HUB_COPY_FILES = (".gitattributes",)
HUB_COPY_DIRS = (".cache/huggingface",)
PATTERNS = {
    # Any slash-led path of two or more parts (not a URL's "//host/..." nor "and/or"): the folders a
    # release is built in are not known in advance (CI builds under /check/...), so no list of roots.
    "an absolute path": re.compile(r"(?<![\w.:/<>~\-])/(?:[A-Za-z0-9_.~\-]+/)+[A-Za-z0-9_.~\-]+|[A-Za-z]:\\\\"),
    "a UUID (RSNA patientId / DICOM style)": re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
    "an NIH image file name": re.compile(r"\b\d{8}_\d{3}\.png\b"),
}
CROISSANT_KEYS = ("@context", "@type", "conformsTo", "name", "license", "distribution", "recordSet",
                  "rai:dataCollection", "rai:dataBiases", "rai:dataLimitations", "rai:personalSensitiveInformation")
ROW_FIELDS = ("config", "translator_id", "checkpoint_sha256", "png_sha256", "seed", "code_version", "created")
MAX_PER_FILE = 20  # row-level problems listed per file before the rest are counted
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_TEXT_CHUNKS = {b"tEXt", b"zTXt", b"iTXt", b"eXIf"}
MAX_TEXT_INFLATE = 16 << 20  # a compressed PNG text chunk is read up to this size (a zip bomb stops there)


def find_private(release: Path) -> Path | None:
    cand = ReleaseFolder(release)
    return cand.private if cand.identifiers_path.is_file() else None


def verify(release: str | Path, private: str | Path | None = None, croissant_strict: bool = False,
           no_identifiers: bool = False, benchmark: str | Path | None = None) -> list[str]:
    """Return the list of problems (empty when the release is sound).

    ``private`` is the folder holding ``identifiers.json`` (default: ``RELEASE.private`` beside it). Without
    one the source-identifier scan cannot run and that is a problem, unless ``no_identifiers`` is set.
    ``benchmark``: the benchmark folder whose results the card shows; its Benchmark and External test set
    sections are then checked too. A benchmark of other images (or an unreadable one) raises a
    :class:`~cxrsynth.core.errors.CxrsynthError` naming it: it is the wrong input, not a flaw of the release.
    """
    v = _Verifier(Path(release), private, croissant_strict, no_identifiers)
    if benchmark is not None:
        v.benchmark = benchmark_card_sections(Path(release), benchmark)
    return v.run()


def benchmark_card_sections(release: Path, benchmark: str | Path) -> dict[str, str] | None:
    """The card's Benchmark and External test set sections as describe renders them from ``benchmark``
    (``results.json`` stamped with the release's ``data_sha256``, and ``tables.md``), by title. ``None``
    when the release's manifest cannot be read: verify reports that, and fails, on its own."""
    from .describe import benchmark_sections

    try:
        stamp = json.loads(_read_regular(release / MANIFEST))["data_sha256"]
    except Exception:  # unreadable, not JSON, no stamp: the manifest checks report it
        return None
    folder = Path(benchmark)
    if not folder.is_dir():
        raise DataNotFoundError("benchmark folder not found", folder,
                                "give the folder `cxrsynth benchmark --release DIR` wrote (its --out)")
    try:
        return benchmark_sections(folder, stamp)
    except (OSError, ValueError) as exc:  # tables.md missing, results.json not JSON
        raise BadInputError(f"the benchmark folder cannot be read ({_first_line(exc)})", folder,
                            "give a finished benchmark folder (results.json and tables.md)") from exc


def publishable_files(release: str | Path, private: str | Path | None = None, no_identifiers: bool = False,
                      croissant_strict: bool = False) -> list[Path]:
    """The files to upload: exactly the release's files (metadata + the manifest's shards), after every check
    of :func:`verify` passed; raises :class:`VerifyError` naming the first problem otherwise.

    Push uploads this list and nothing else, so no stray, linked or private file can ride along.
    """
    v = _Verifier(Path(release), private, croissant_strict, no_identifiers)
    problems = v.run()
    if problems:
        raise VerifyError(f"the release does not verify ({len(problems)} problems, first: {problems[0]})",
                          release, "run `cxrsynth verify` and fix it first")
    return [v.root / rel for rel in sorted(v.expected)]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


def _bad_relpath(rel: str) -> str | None:
    """Why ``rel`` (a SHA256SUMS path) could lead outside the folder, or None when it cannot."""
    if not rel or "\\" in rel or "\0" in rel or any(ord(c) < 32 for c in rel):
        return "is not a plain relative path"
    if rel.startswith("/") or re.match(r"[A-Za-z]:", rel):
        return "is absolute"
    if ".." in rel.split("/"):
        return "leaves the folder ('..')"
    if any(part in ("", ".") for part in rel.split("/")):
        return "is not normalised ('.' or '//')"
    return None


@contextlib.contextmanager
def _open_regular(path: Path):
    """``path`` opened for reading, refusing a link or special file put there after the folder was listed."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path.name} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            yield fh
    finally:
        os.close(fd)


def _read_regular(path: Path) -> bytes:
    with _open_regular(path) as fh:
        return fh.read()


def _sha256_regular(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with _open_regular(path) as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _png_chunks(data: bytes):
    """(type, body start, body length) of each chunk of a PNG, up to and including IEND. The last one may
    run past the end of ``data``: a body sliced from it is then cut short."""
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        yield ctype, pos + 8, length
        if ctype == b"IEND":
            return
        pos += 12 + length


def _chunk_text(ctype: bytes, body: bytes) -> str:
    """A text chunk's keyword and text, decompressed where it is compressed."""
    key, _, rest = body.partition(b"\0")
    # zTXt: keyword\0 method data; iTXt: keyword\0 flag method language\0 translated\0 data
    if ctype == b"zTXt" or (ctype == b"iTXt" and rest[:1] == b"\1"):
        payload = rest[1:] if ctype == b"zTXt" else rest[2:].split(b"\0", 2)[-1]
        try:
            body = key + b" " + zlib.decompressobj().decompress(payload, MAX_TEXT_INFLATE)
        except zlib.error:
            pass  # not inflatable: its raw bytes are searched
    return body.decode("utf-8", "replace")


def png_text(data: bytes) -> str:
    """The text a PNG carries besides its pixels (tEXt, zTXt, iTXt, eXIf chunks), decompressed.

    Those chunks can hold any string (a source path, a patient id); compressed ones are invisible to a
    search of the raw bytes. Returns "" for anything that is not a PNG.
    """
    if not data.startswith(PNG_SIGNATURE):
        return ""
    return "\n".join(_chunk_text(ctype, data[start:start + length])
                     for ctype, start, length in _png_chunks(data) if ctype in PNG_TEXT_CHUNKS)


PNG_PIXEL_CHUNKS = {b"IDAT", b"fdAT"}  # compressed pixels (fdAT: an animated PNG's frames)


def searchable_text(data: bytes) -> str:
    """The text a file could publish, for the leak scan.

    A PNG: the body of every chunk but the compressed pixels, the text chunks decompressed, and any bytes
    after IEND (or after a chunk that does not parse). Anything else: all its bytes. Compressed pixels are
    left out because they are random bytes, and random bytes match the absolute-path pattern now and then
    (``/O/S9`` in a 300 KB sample grid failed a demo release); no string can hide in them as text.
    """
    if not data.startswith(PNG_SIGNATURE):
        return data.decode("utf-8", "replace")
    raw, text, end = [], [], len(PNG_SIGNATURE)
    for ctype, start, length in _png_chunks(data):
        body = data[start:start + length]
        if ctype in PNG_TEXT_CHUNKS:
            text.append(_chunk_text(ctype, body))  # cut short or not, as png_text reads it
        if start + length + 4 > len(data):
            break  # a chunk that runs past the end: the rest is searched as raw bytes
        if ctype not in PNG_PIXEL_CHUNKS:
            raw.append(ctype + b" " + body)
        end = start + length + 4
    raw.append(data[end:])  # trailing bytes after IEND, or an unparsed remainder
    return "\n".join([b"\n".join(raw).decode("utf-8", "replace"), *text])


class _Verifier:
    """One pass over one release folder; ``problems`` gathers every finding in order."""

    def __init__(self, root: Path, private, croissant_strict: bool, no_identifiers: bool):
        self.root, self.private = root, private
        self.croissant_strict, self.no_identifiers = croissant_strict, no_identifiers
        self.problems: list[str] = []
        self.files: dict[str, Path] = {}  # every regular file found (rel -> path), listed or not
        self.verified: dict[str, str] = {}  # rel -> sha256, files that matched their SHA256SUMS line
        self.expected: set[str] = set()  # the files the release consists of
        self.parquet_text: dict[str, list[str]] = {}  # rel -> the strings a shard publishes (read once)
        self.repo_id: str | None = None  # from the card's front matter: the Hub repo it was rendered for
        self.access: str | None = None  # from the card's front matter: the repo's access at push
        self.benchmark: dict[str, str] | None = None  # {title: text} of the sections a benchmark renders

    def add(self, text: str) -> None:
        self.problems.append(text)

    def guarded(self, name: str, fn, *args):
        """Run one check; anything it raises becomes one problem line about ``name`` (verify fails closed)."""
        try:
            return fn(*args)
        except CxrsynthError as exc:
            self.add(f"{name}: {exc.one_line()}")
        except Exception as exc:  # a hostile file may break any reader; it is a failed check, not a crash
            self.add(f"{name}: cannot be read ({_first_line(exc)})")
        return None

    def read(self, rel: str) -> bytes | None:
        return _read_regular(self.files[rel]) if rel in self.files else None

    def read_json(self, rel: str):
        """The parsed file, or None when it is absent (reported once, as missing) or not JSON (reported here)."""
        data = self.read(rel)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError as exc:
            self.add(f"{rel}: not valid JSON ({exc})")
            return None

    def run(self) -> list[str]:
        root = self.root
        if root.is_symlink() or not root.is_dir():
            return [f"{root}: release folder not found (or a symbolic link)"]
        self.guarded(".", self._inventory)
        if not ({MANIFEST, "SHA256SUMS"} & set(self.files)) and not any(r.startswith("data/") for r in self.files):
            # nothing of a release at all: one line, not a FAIL per missing file
            return [f"{root}: not a release folder (no {MANIFEST}, SHA256SUMS or data/ shards); give the folder "
                    "`cxrsynth release` made, e.g. OUT/covid-cxr-synth"]
        for name in REQUIRED:
            if name not in self.files:
                self.add(f"{name}: missing")
        if not any(r.startswith("data/") and r.endswith(".parquet") for r in self.files):
            self.add("data/: no parquet shards")
        self.guarded("SHA256SUMS", self._check_sums)
        manifest = self.guarded(MANIFEST, self._manifest)
        if manifest is not None:
            self.expected = set(REQUIRED) | {f["path"] for f in manifest["files"]}
            for rel in sorted(set(self.files) - self.expected):
                self.add(f"{rel}: not a file of the release (manifest.json does not list it)")
            prov = self.guarded("provenance.jsonl", self._provenance) or {}
            rows = self.guarded("data/", self._check_parquet, manifest, prov)
            if rows is not None:
                self.guarded(MANIFEST, self._check_against_rows, manifest, prov, rows)
            self.guarded("README.md", self._check_card, manifest)
            self.guarded("croissant.json", self._check_croissant, manifest)
        self._scan_leaks()
        return self.problems

    # -- the folder -------------------------------------------------------------------------------------

    def _inventory(self) -> None:
        """Every entry under the root, without following links: regular files are kept, the rest reported."""
        def walk(folder: str, prefix: str) -> None:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as exc:
                self.add(f"{prefix or '.'}: cannot be listed ({_first_line(exc)})")
                return
            for e in entries:
                rel = prefix + e.name
                if e.is_symlink():
                    self.add(f"{rel}: is a symbolic link (to {os.readlink(e.path)}); "
                             "a release holds only regular files")
                elif e.is_dir(follow_symlinks=False):
                    if rel not in HUB_COPY_DIRS:
                        walk(e.path, rel + "/")
                elif e.is_file(follow_symlinks=False):
                    if rel not in HUB_COPY_FILES:
                        self.files[rel] = Path(e.path)
                else:
                    self.add(f"{rel}: not a regular file (a fifo, socket or device); a release holds only regular files")

        walk(str(self.root), "")

    def _check_sums(self) -> None:
        data = self.read("SHA256SUMS")
        if data is None:
            return
        listed: dict[str, str] = {}
        for i, line in enumerate(data.decode("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split("  ", 1)
            if len(parts) != 2 or not re.fullmatch(r"[0-9a-f]{64}", parts[0]):
                self.add(f"SHA256SUMS: line {i} is malformed")
                continue
            sha, rel = parts
            why = _bad_relpath(rel)
            if why:
                self.add(f"SHA256SUMS: line {i} names a path that {why} ({rel[:80]}); nothing outside the release is read")
            elif rel in listed:
                self.add(f"SHA256SUMS: line {i} lists {rel} again")
            else:
                listed[rel] = sha
        for rel, sha in listed.items():
            if rel in NOT_IN_SUMS:
                continue  # releases made before listed the card; its protected sections are checked instead
            if rel not in self.files:
                if not os.path.lexists(self.root / rel):
                    self.add(f"{rel}: listed in SHA256SUMS but missing")
            else:
                got = self.guarded(rel, _sha256_regular, self.files[rel])
                if got is not None and got != sha:
                    self.add(f"{rel}: checksum does not match SHA256SUMS")
                elif got is not None:
                    self.verified[rel] = sha
        for rel in sorted(self.files):
            if rel != "SHA256SUMS" and rel not in NOT_IN_SUMS and rel not in listed:
                self.add(f"{rel}: not listed in SHA256SUMS")

    def _manifest(self) -> dict | None:
        manifest = self.read_json(MANIFEST)
        if manifest is None:
            return None
        try:
            validate(manifest, "release_manifest", MANIFEST)
        except SchemaError as exc:
            self.add(f"manifest.json: {exc.what}")
            return None
        for f in manifest["files"]:
            why = _bad_relpath(f["path"])
            if why or not (f["path"].startswith("data/") and f["path"].endswith(".parquet")):
                self.add(f"manifest.json: file {f['path'][:80]!r} is not a data/*.parquet path inside the release")
                return None
        return manifest

    # -- rows ---------------------------------------------------------------------------------------------

    def _provenance(self) -> dict[str, dict]:
        data = self.read("provenance.jsonl")
        prov: dict[str, dict] = {}
        if data is None:
            return prov
        for i, line in enumerate(data.decode("utf-8").splitlines(), 1):
            try:
                rec = json.loads(line)
                validate(rec, "provenance", f"provenance.jsonl line {i}")
            except (ValueError, SchemaError) as exc:
                self.add(f"provenance.jsonl: line {i}: {getattr(exc, 'what', exc)}")
                continue
            if rec["id"] in prov:
                self.add(f"provenance.jsonl: line {i}: id {rec['id']} repeated")
            prov[rec["id"]] = rec
        return prov

    def _check_parquet(self, manifest: dict, prov: dict[str, dict]) -> dict[str, dict]:
        """Check every shard against the manifest and every row against provenance; returns the rows' public
        fields by id (image bytes left out) for the manifest checks."""
        listed = {f["path"]: f for f in manifest["files"]}
        present = {r for r in self.files if r.startswith("data/") and r.endswith(".parquet")}
        for rel in sorted(set(listed) - present):
            self.add(f"{rel}: in manifest.json but missing")
        rows: dict[str, dict] = {}
        by_image: dict[str, str] = {}
        for rel in sorted(set(listed) & present):
            self.guarded(rel, self._check_shard, rel, listed[rel], prov, rows, by_image)
        orphans = sorted(set(prov) - set(rows))
        for pid in orphans[:MAX_PER_FILE]:
            self.add(f"provenance.jsonl: id {pid} has no row in the parquet shards")
        if len(orphans) > MAX_PER_FILE:
            self.add(f"provenance.jsonl: ... and {len(orphans) - MAX_PER_FILE} more ids without a row")
        return rows

    def _check_shard(self, rel: str, meta: dict, prov: dict[str, dict], rows: dict[str, dict],
                     by_image: dict[str, str]) -> None:
        path = self.files[rel]
        sha = self.verified.get(rel) or _sha256_regular(path)
        if path.stat().st_size != meta["num_bytes"] or sha != meta["sha256"]:
            self.add(f"{rel}: size or checksum differs from manifest.json")
        pf = pq.ParquetFile(path)
        if pf.metadata.num_rows != meta["num_rows"]:
            self.add(f"{rel}: {pf.metadata.num_rows} rows, manifest says {meta['num_rows']}")
        found: list[str] = []
        strings = _schema_strings(pf)
        for batch in pf.iter_batches(batch_size=256):
            for row in batch.to_pylist():
                found += self._check_row(rel, row, prov, rows, by_image)
                strings += _row_strings(row)
        self.parquet_text[rel] = strings
        for text in found[:MAX_PER_FILE]:
            self.add(f"{rel}: {text}")
        if len(found) > MAX_PER_FILE:
            self.add(f"{rel}: ... and {len(found) - MAX_PER_FILE} more row problems")

    @staticmethod
    def _check_row(rel: str, row: dict, prov: dict[str, dict], rows: dict[str, dict],
                   by_image: dict[str, str]) -> list[str]:
        rid, out = row.get("id"), []
        image = row.get("image") or {}
        data = image.get("bytes") or b""
        if rid in rows:
            out.append(f"id {rid} repeated")
        digest = hashlib.sha256(data).hexdigest()
        if digest != row.get("png_sha256"):
            out.append(f"image {rid} does not match its png_sha256")
        if digest in by_image:
            out.append(f"image {rid} is the same image as {by_image[digest]}")
        by_image.setdefault(digest, rid)
        if image.get("path") != f"{rid}.png" or not rel.startswith(f"data/{row.get('config')}-"):
            out.append(f"row {rid} has a wrong path or config")
        public = {k: v for k, v in row.items() if k != "image"}
        for k in ("label", "source_label"):
            v = public.get(k)
            public[k] = LABELS[v] if isinstance(v, int) and 0 <= v < len(LABELS) else v
        if public.get("label") != "covid":
            out.append(f"row {rid} has label {public.get('label')!r}, not covid")
        p = prov.get(rid)
        if p is None:
            out.append(f"id {rid} has no provenance")
        else:
            differ = [k for k in (*ROW_FIELDS, "source_label") if public.get(k) != p.get(k)]
            if differ:
                out.append(f"row {rid} disagrees with provenance.jsonl on {', '.join(differ)}")
        rows[rid] = public
        return out

    def _check_against_rows(self, manifest: dict, prov: dict, rows: dict[str, dict]) -> None:
        """What the manifest says about the data (counts, translators, source labels, sources, plan, audit)."""
        counts = manifest["counts"]
        if counts.get("all") != sum(v for k, v in counts.items() if k != "all"):
            self.add("manifest.json: counts.all is not the sum of the configs")
        row_counts = Counter(r["config"] for r in rows.values())
        prov_counts = Counter(p["config"] for p in prov.values())
        for config in sorted(set(counts) - {"all"} | set(row_counts) | set(manifest["configs"])):
            n = counts.get(config, 0)
            if manifest["configs"].get(config, {}).get("num_examples") != n:
                self.add(f"manifest.json: counts.{config} disagrees with configs.{config}.num_examples")
            if prov_counts.get(config, 0) != n:
                self.add(f"provenance.jsonl: {prov_counts.get(config, 0)} lines for {config}, manifest says {n}")
            if row_counts.get(config, 0) != n:
                self.add(f"manifest.json: counts.{config} is {n}, the parquet shards hold {row_counts.get(config, 0)} rows")
        translators = defaultdict(set)
        for t in manifest["translators"]:
            translators[t.get("config")].add((t.get("translator_id"), t.get("generator_sha256")))
        if set(translators) != set(manifest["configs"]):
            self.add(f"manifest.json: translators are for {sorted(map(str, translators))}, configs are "
                     f"{sorted(manifest['configs'])}")
        seen_tr: dict[str, set] = defaultdict(set)
        wrong_source: Counter = Counter()
        for r in rows.values():
            seen_tr[r["config"]].add((r.get("translator_id"), r.get("checkpoint_sha256")))
            if SOURCE_LABEL.get(r["config"]) != r.get("source_label"):
                wrong_source[r["config"]] += 1
        for config, used in sorted(seen_tr.items()):
            if used != translators.get(config, set()):
                self.add(f"manifest.json: the {config} rows were made by {sorted(t[0] for t in used)}, the manifest "
                         f"names {sorted(str(t[0]) for t in translators.get(config, set()))}")
        for config, n in sorted(wrong_source.items()):
            self.add(f"data/: {n} {config} rows do not have source_label {SOURCE_LABEL.get(config)}")
        for t in manifest["translators"]:
            self._check_translator(t)
        for s in manifest["sources"]:
            reg = SOURCES.get(s.get("source"))
            if reg is None:
                self.add(f"manifest.json: unknown source {s.get('source')!r}")
                continue
            for key in ("name", "url", "licence", "citation"):
                if s.get(key) != reg[key]:
                    self.add(f"manifest.json: sources {s['source']} {key} differs from the source registry")
        planned = (manifest.get("plan") or {}).get("planned") or {}
        for config, n in planned.items():
            if counts.get(config, 0) > n:
                self.add(f"manifest.json: {counts.get(config)} {config} images, more than the {n} planned")
        # the audit may have been run before images it flagged were removed: those are counted in `filtered`
        audited = ((manifest.get("audit") or {}).get("linkage") or {}).get("n")
        removed = (manifest.get("filtered") or {}).get("removed") or 0
        if isinstance(audited, int) and audited > counts.get("all", 0) + removed:
            self.add(f"manifest.json: the audit covers {audited} images, the release has {counts.get('all')} "
                     f"and removed {removed}")

    def _check_translator(self, t: dict) -> None:
        """The words the card prints about a translator agree with its generator's recorded ``arch``: the
        preset, and the kind of generator (a hand-edited manifest cannot call a U-Net a ResNet)."""
        arch = t.get("arch") or {}
        if t.get("preset") and arch.get("preset") and t["preset"] != arch["preset"]:
            self.add(f"manifest.json: translator {t.get('config')} has preset {t['preset']}, its generator's arch "
                     f"says {arch['preset']}")
        kind = {"unet_generator": "U-Net", "resnet_generator": "ResNet"}.get(arch.get("name", "resnet_generator")) if arch else None
        words = t.get("architecture")
        if words and kind and not str(words).startswith(kind):
            self.add(f"manifest.json: translator {t.get('config')} is described as {str(words)[:40]!r}, its generator "
                     f"is a {kind}")

    # -- generated text -------------------------------------------------------------------------------------

    def _check_card(self, manifest: dict) -> None:
        data = self.read("README.md")
        if data is None:
            return
        text = data.decode("utf-8")
        fm = read_front_matter_text(text)
        if not fm:
            self.add("README.md: no YAML front matter")
            return
        meta = fm.get("cxrsynth", {})
        if meta.get("version") != manifest["version"]:
            self.add(f"README.md: version {meta.get('version')} disagrees with manifest {manifest['version']}")
        if meta.get("counts") != manifest["counts"]:
            self.add("README.md: counts disagree with manifest.json")
        if fm.get("license") != manifest["license"]:
            self.add("README.md: licence disagrees with manifest.json")
        names = {c.get("config_name") for c in fm.get("configs", [])}
        if names != set(manifest["configs"]) | {"all"}:
            self.add(f"README.md: configs {sorted(map(str, names))} disagree with manifest.json")
        for info in fm.get("dataset_info", []):
            want = manifest["counts"].get(info.get("config_name"))
            got = sum(s.get("num_examples", 0) for s in info.get("splits", []))
            if want != got:
                self.add(f"README.md: dataset_info {info.get('config_name')} says {got} examples, manifest {want}")
        if f"{manifest['counts']['all']:,}" not in text:
            self.add("README.md: the body does not state the total count of the manifest")
        if "**Not for clinical use.**" not in text:
            self.add("README.md: the not-for-clinical-use statement is missing")
        self.repo_id = meta.get("repo_id")  # set when the card was rendered for a Hub repo (push)
        self.access = meta.get("access")  # the repo's access as push read it back from the Hub
        for where in card_differences(text, protected_sections(manifest, self.repo_id, self.access)):
            self.add(f"README.md: {where}; the card must be what manifest.json generates (cxrsynth "
                     f"{manifest['code_version']} made it)")
        if self.benchmark is not None:
            from .card import card_text

            rendered = card_sections(card_text(manifest, self.repo_id, self.benchmark, self.access))
            want = {title: body for title, _, body in rendered if title in self.benchmark}
            for where in card_differences(text, want, "benchmark section"):
                self.add(f"README.md: {where}; the section must be what the benchmark folder renders")

    def _check_croissant(self, manifest: dict) -> None:
        cr = self.read_json("croissant.json")
        if cr is None:
            return
        for key in CROISSANT_KEYS:
            if key not in cr:
                self.add(f"croissant.json: lacks {key}")
        if cr.get("version") != manifest["version"]:
            self.add("croissant.json: version disagrees with manifest.json")
        from .croissant import make_croissant

        want = json.loads(json.dumps(make_croissant(manifest, self.repo_id, self.access), default=str))
        differ = sorted(k for k in set(want) | set(cr) if want.get(k) != cr.get(k))
        if differ:
            self.add(f"croissant.json: {', '.join(differ[:5])} differ from what manifest.json generates")
        if self.croissant_strict:
            import mlcroissant as mlc

            try:
                mlc.Dataset(jsonld=str(self.files["croissant.json"]))
            except Exception as exc:  # mlcroissant raises ValidationError and others
                self.add(f"croissant.json: mlcroissant validation failed ({str(exc).splitlines()[0][:300]})")

    # -- leaks ----------------------------------------------------------------------------------------------

    def _identifiers(self) -> dict[str, list[str]]:
        if self.no_identifiers and not self.private:
            return {}
        priv = Path(self.private) if self.private else find_private(self.root)
        if priv is None:
            self.add(f"{identifiers_in(private_sibling(self.root.name))}: not found beside the release, so the scan for "
                     "source record ids, patient ids and paths cannot run; pass --private DIR, or --no-identifiers "
                     "to verify without it")
            return {}
        ident = self.guarded(f"{priv / 'identifiers.json'}", _identifiers, priv)
        return ident or {}

    def _scan_leaks(self) -> None:
        ident = self._identifiers()
        for rel in sorted(self.files):
            text = self.guarded(rel, self._public_text, rel)
            if text is None:
                continue
            for hit in leaks_in(text, ident):
                self.add(f"{rel}: contains {hit}")

    def _public_text(self, rel: str) -> str:
        """All the text a file publishes. A readable shard: its schema metadata and every value but the
        image bytes, of which only the PNG text chunks count (read once, by the row checks, or here for a
        shard the manifest does not list). Anything else, or a shard that cannot be parsed: its bytes (a PNG's
        less its compressed pixels), plus PNG text chunks decompressed (:func:`searchable_text`)."""
        strings = self.parquet_text.get(rel)
        if strings is None and rel.endswith(".parquet"):
            try:
                pf = pq.ParquetFile(self.files[rel])
                strings = _schema_strings(pf) + [s for b in pf.iter_batches(batch_size=256)
                                                 for row in b.to_pylist() for s in _row_strings(row)]
            except Exception:  # unreadable: reported by the shard checks; its raw bytes are searched instead
                strings = None
        if strings is not None:
            return "\n".join([rel, *strings])
        return "\n".join([rel, searchable_text(_read_regular(self.files[rel]))])


def _schema_strings(pf: pq.ParquetFile) -> list[str]:
    meta = json.dumps({k.decode(errors="replace"): v.decode(errors="replace")
                       for k, v in (pf.schema_arrow.metadata or {}).items()})
    return [meta, " ".join(pf.schema_arrow.names)]


def _row_strings(row: dict) -> list[str]:
    """A row's published text: every value but the image bytes, and the text chunks of its PNG."""
    row = dict(row)
    image = row.pop("image", None)
    out = [json.dumps(row, default=str)]
    if isinstance(image, dict):
        out += [str(image.get("path")), png_text(image.get("bytes") or b"")]
    return out


def read_front_matter_text(text: str) -> dict:
    import yaml

    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---\n", 4)
    fm = yaml.safe_load(text[4:end]) if end > 0 else {}
    return fm if isinstance(fm, dict) else {}


PREAMBLE = "(title and summary)"  # the card's text before its first "## " section


def card_sections(text: str) -> list[tuple[str, int, str]]:
    """The body of a card (after its YAML front matter) as (title, first line number, text) per ``## ``
    section, the text before the first one titled :data:`PREAMBLE`. Line numbers count in ``text``."""
    lines = text.splitlines(keepends=True)
    start = 0
    if text.startswith("---\n"):
        end = next((i for i in range(1, len(lines)) if lines[i].rstrip("\n") == "---"), None)
        start = end + 1 if end is not None else 0
    out, title, first, chunk = [], PREAMBLE, start + 1, []
    for i in range(start, len(lines)):
        if lines[i].startswith("## "):
            out.append((title, first, "".join(chunk)))
            title, first, chunk = lines[i][3:].strip(), i + 1, []
        chunk.append(lines[i])
    out.append((title, first, "".join(chunk)))
    return out


def protected_sections(manifest: dict, repo_id: str | None = None, access: str | None = None) -> dict[str, str]:
    """{title: text} of the sections of the card ``manifest`` generates that verify protects: all but the
    free ones (Benchmark and External test set, made from a benchmark folder the release does not hold:
    checked only when verify is given it, and Changes, from ``cxrsynth diff``)."""
    from .card import KEPT_SECTIONS, card_text

    return {title: body for title, _, body in card_sections(card_text(manifest, repo_id, None, access))
            if title not in KEPT_SECTIONS}


def card_differences(text: str, protected: dict[str, str], kind: str = "protected section") -> list[str]:
    """Where the card ``text`` departs from its ``protected`` sections, one line each (empty: it does not);
    ``kind`` names such a section in the lines.

    Only the protected sections count: the YAML front matter (which the Hub, its staff or a bot may edit),
    the free sections and any added section are not compared here.
    """
    found: dict[str, list[tuple[int, str]]] = {}
    for title, first, body in card_sections(text):
        found.setdefault(title, []).append((first, body))
    out = []
    for title, want in protected.items():
        got = found.get(title, [])
        if not got:
            out.append(f"{kind} {title!r} is missing")
        elif len(got) > 1:
            out.append(f"{kind} {title!r} appears {len(got)} times")
        elif got[0][1] != want:
            first, body = got[0]
            a, b = body.splitlines(), want.splitlines()
            k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            line = (a[k] if k < len(a) else "(end of section)")[:80]
            wanted = (b[k] if k < len(b) else "(end of section)")[:80]
            out.append(f"line {first + k} reads {line!r}, expected {wanted!r} ({kind} {title!r})")
    return out


def _identifiers(private: Path) -> dict[str, list[str]]:
    """Source identifiers to look for, each kind sorted. Bare numbers under 6 digits (COVID-collection and
    NIH patient ids like "61" or "1300") are left out: they occur in any text as counts and sizes, and alone
    they identify nobody; the images' file names and ids that carry them are checked."""
    path = identifiers_in(private)
    if not path.is_file():
        raise VerifyError("no identifiers.json in the private folder, so the source-identifier scan cannot run",
                          private, "pass the release's private folder, or --no-identifiers")
    data = json.loads(path.read_text())
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


def leaks_in(text: str, ident: dict[str, list[str]]) -> list[str]:
    """What ``text`` gives away: generic patterns, then the private identifiers, one line each."""
    found = []
    for what, pat in PATTERNS.items():
        m = pat.search(text)
        if m:
            found.append(f"{what} ({m.group(0)[:60]})")
    tokens = set(TOKEN.findall(text))
    for kind, values in ident.items():
        if kind in ("source_paths", "source_roots"):
            hit = first_path_in(text, [v for v in values if "/" in v])
            hit = hit or next((v for v in values if "/" not in v and v in tokens), None)
        else:
            hit = next((v for v in values if v in tokens), None)
        if hit:
            found.append(f"a source identifier from {kind} ({hit[:40]})")
    return found
