"""verify against hostile release folders: the probes of issue #15 (publishing leaks), each on a copy of a
real release (built from the sample data), each failing on the old verify."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from cxrsynth.core.paths import sha256_file, write_sha256sums
from cxrsynth.stages.release.describe import describe
from cxrsynth.stages.release.verify import VerifyError, publishable_files, verify

from .test_release import _fresh_copy

FILES = ["README.md", "SHA256SUMS", "croissant.json", "data/g_nc-00000-of-00001.parquet",
         "data/g_pc-00000-of-00001.parquet", "manifest.json", "provenance.jsonl", "sample_grid.png"]


def _cli_verify(rel, *args):
    return subprocess.run([sys.executable, "-m", "cxrsynth.cli", "verify", str(rel), *args],
                          capture_output=True, text=True)


def _has(problems, *parts):
    return any(all(p in line for p in parts) for line in problems)


def test_publishable_files_are_exactly_the_release(built, tmp_path):
    rel = _fresh_copy(built, tmp_path)
    assert [p.relative_to(rel).as_posix() for p in publishable_files(rel)] == FILES


def test_t09_private_mapping_and_notes_are_refused(built, tmp_path):
    """T09: mapping.jsonl copied into data/ and a notes.txt with NIH names, paths and record ids, sums redone."""
    rel = _fresh_copy(built, tmp_path)
    priv = rel.parent / "covid-cxr-synth.private"
    shutil.copy(priv / "mapping.jsonl", rel / "data" / "mapping.jsonl")
    ident = json.loads((priv / "identifiers.json").read_text())
    nih_path = next(p for p in ident["source_paths"] if p.startswith("images/000"))
    (rel / "notes.txt").write_text(f"from {ident['source_roots'][0]}/{nih_path}, record {ident['record_ids'][0]}\n")
    write_sha256sums(rel)
    problems = verify(rel)
    assert _has(problems, "data/mapping.jsonl: not a file of the release")
    assert _has(problems, "notes.txt: not a file of the release")
    assert _has(problems, "data/mapping.jsonl: contains a source identifier from record_ids")
    assert _has(problems, "notes.txt: contains an absolute path")
    assert _has(problems, "notes.txt: contains an NIH image file name")
    assert _has(problems, "notes.txt: contains a source identifier from record_ids")
    with pytest.raises(VerifyError, match="does not verify"):
        publishable_files(rel)


def test_t26_symlinks_and_special_files_are_refused(built, tmp_path):
    """T26: a link to a file outside (its contents would be uploaded), a linked folder, a fifo."""
    rel = _fresh_copy(built, tmp_path)
    secret = tmp_path / "outside.txt"
    secret.write_text("secret outside the release\n")
    os.symlink(secret, rel / "x.txt")
    os.symlink(tmp_path, rel / "data" / "more")
    os.mkfifo(rel / "pipe")
    write_sha256sums(rel)  # the old sums writer follows the link and lists x.txt with the outside file's hash
    assert "x.txt" in (rel / "SHA256SUMS").read_text()
    problems = verify(rel)
    assert _has(problems, "x.txt: is a symbolic link", str(secret))
    assert _has(problems, "data/more: is a symbolic link")
    assert _has(problems, "pipe: not a regular file")
    with pytest.raises(VerifyError):
        publishable_files(rel)


def test_t27_sums_path_leaving_the_folder_is_refused(built, tmp_path):
    """T27: a SHA256SUMS line ``../../x`` with the right hash of a file outside."""
    rel = _fresh_copy(built, tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("outside\n")
    up = "../" * 2 + "outside.txt"
    assert (rel / up).resolve() == outside.resolve()
    n = len((rel / "SHA256SUMS").read_text().splitlines())
    with open(rel / "SHA256SUMS", "a") as fh:
        fh.write(f"{sha256_file(outside)}  {up}\n{sha256_file(outside)}  {outside}\n")
    problems = verify(rel)
    assert _has(problems, f"SHA256SUMS: line {n + 1} names a path that leaves the folder ('..')", up)
    assert _has(problems, f"SHA256SUMS: line {n + 2} names a path that is absolute")
    assert not _has(problems, "outside.txt: checksum")


def test_t21_no_private_identifiers_fails_unless_told(built, tmp_path):
    rel = _fresh_copy(built, tmp_path)
    shutil.rmtree(rel.parent / "covid-cxr-synth.private")
    problems = verify(rel)
    assert len(problems) == 1 and "identifiers.json: not found beside the release" in problems[0], problems
    assert "--no-identifiers" in problems[0]
    assert verify(rel, no_identifiers=True) == []
    res = _cli_verify(rel)
    assert res.returncode == 1 and "FAIL covid-cxr-synth.private/identifiers.json: not found" in res.stdout
    res = _cli_verify(rel, "--no-identifiers")
    assert res.returncode == 0 and "OK (without the source-identifier scan" in res.stdout
    empty = tmp_path / "empty_private"
    empty.mkdir()
    assert _has(verify(rel, private=empty), "no identifiers.json in the private folder")


@pytest.mark.parametrize("damage", ["truncate_shard", "garbage_shard", "bad_utf8"])
def test_t23_unreadable_files_are_one_problem_line(built, tmp_path, damage):
    """T23: a truncated parquet (and other unreadable files) give problem lines, never a traceback."""
    rel = _fresh_copy(built, tmp_path)
    shard = rel / "data" / "g_pc-00000-of-00001.parquet"
    if damage == "truncate_shard":
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
        expect = "data/g_pc-00000-of-00001.parquet: cannot be read"
    elif damage == "garbage_shard":
        shard.write_bytes(b"PAR1" + b"\xff" * 100 + b"PAR1")
        expect = "data/g_pc-00000-of-00001.parquet: cannot be read"
    else:
        (rel / "provenance.jsonl").write_bytes(b"\xff\xfe" + (rel / "provenance.jsonl").read_bytes())
        expect = "provenance.jsonl: cannot be read (UnicodeDecodeError"
    write_sha256sums(rel)
    problems = verify(rel)
    assert _has(problems, expect), problems
    res = _cli_verify(rel)
    assert res.returncode == 1 and "Traceback" not in res.stderr and "FAIL " + expect in res.stdout


@pytest.mark.parametrize("edit", [("Not for clinical use.", "Validated for clinical use."),
                                  ("**Not yet audited.**", "**NOT LINKABLE.**"),
                                  ("cc-by-nc-sa-4.0**", "cc-by-4.0**")])
def test_edited_card_body_is_caught(built, tmp_path, edit):
    rel = _fresh_copy(built, tmp_path)
    card = rel / "README.md"
    text = card.read_text()
    assert edit[0] in text
    card.write_text(text.replace(edit[0], edit[1]))
    write_sha256sums(rel)
    problems = verify(rel)
    assert _has(problems, "README.md: line", edit[1][:20], "the card must be what manifest.json generates"), problems


def test_edited_croissant_is_caught(built, tmp_path):
    rel = _fresh_copy(built, tmp_path)
    cr = json.loads((rel / "croissant.json").read_text())
    cr["rai:dataLimitations"] = "None: validated for clinical use."
    (rel / "croissant.json").write_text(json.dumps(cr))
    write_sha256sums(rel)
    assert _has(verify(rel), "croissant.json: rai:dataLimitations differ from what manifest.json generates")


@pytest.mark.parametrize("field", ["translator_id", "png_sha256", "source_label"])
def test_rows_are_checked_against_provenance(built, tmp_path, field):
    rel = _fresh_copy(built, tmp_path)
    lines = [json.loads(x) for x in (rel / "provenance.jsonl").read_text().splitlines()]
    target = next(p for p in lines if p["config"] == "g_nc")
    target[field] = {"translator_id": "normal-covid-000000000000", "png_sha256": "0" * 64,
                     "source_label": "pneumonia"}[field]
    (rel / "provenance.jsonl").write_text("".join(json.dumps(p, sort_keys=True) + "\n" for p in lines))
    write_sha256sums(rel)
    problems = verify(rel)
    assert _has(problems, f"row {target['id']} disagrees with provenance.jsonl on {field}"), problems


def _rewrite_shard(rel, wd, change):
    """Apply ``change(table) -> table`` to the g_nc shard and make every other file agree (as a careful forger)."""
    shard = rel / "data" / "g_nc-00000-of-00001.parquet"
    pf = pq.ParquetFile(shard)
    table = change(pf.read())
    pq.write_table(table.replace_schema_metadata(pf.schema_arrow.metadata), shard, compression="none")
    rows = {r["id"]: r for r in table.drop_columns(["image"]).to_pylist()}
    lines = [json.loads(x) for x in (rel / "provenance.jsonl").read_text().splitlines()]
    for p in lines:
        if p["id"] in rows:
            p["png_sha256"] = rows[p["id"]]["png_sha256"]
    (rel / "provenance.jsonl").write_text("".join(json.dumps(p, sort_keys=True) + "\n" for p in lines))
    manifest = json.loads((rel / "manifest.json").read_text())
    entry = {"path": "data/" + shard.name, "num_rows": table.num_rows, "num_bytes": shard.stat().st_size,
             "sha256": sha256_file(shard)}
    manifest["files"] = [entry if f["path"] == entry["path"] else f for f in manifest["files"]]
    manifest["configs"]["g_nc"]["files"] = [entry]
    manifest["configs"]["g_nc"]["num_bytes"] = entry["num_bytes"]
    describe(rel, manifest)


def test_duplicate_image_content_is_caught(built, tmp_path):
    import pyarrow as pa

    rel = _fresh_copy(built, tmp_path)

    def dup(table):
        images = table.column("image").to_pylist()
        images[1] = {"bytes": images[0]["bytes"], "path": images[1]["path"]}
        shas = table.column("png_sha256").to_pylist()
        shas[1] = shas[0]
        table = table.set_column(table.schema.get_field_index("image"), "image",
                                 pa.array(images, type=table.schema.field("image").type))
        return table.set_column(table.schema.get_field_index("png_sha256"), "png_sha256", pa.array(shas))

    _rewrite_shard(rel, built[0], dup)
    ids = pq.read_table(rel / "data" / "g_nc-00000-of-00001.parquet", columns=["id"]).column("id").to_pylist()
    problems = verify(rel)
    assert problems == [f"data/g_nc-00000-of-00001.parquet: image {ids[1]} is the same image as {ids[0]}"], problems


def test_embedded_png_text_chunks_are_scanned(built, tmp_path):
    """An image carrying a compressed text chunk with a source path: invisible in the raw bytes."""
    import io

    import pyarrow as pa
    from PIL import Image, PngImagePlugin

    rel = _fresh_copy(built, tmp_path)
    ident = json.loads((rel.parent / "covid-cxr-synth.private" / "identifiers.json").read_text())

    def tag(table):
        images = table.column("image").to_pylist()
        info = PngImagePlugin.PngInfo()
        info.add_text("source", ident["record_ids"][0], zip=True)
        buf = io.BytesIO()
        Image.open(io.BytesIO(images[0]["bytes"])).save(buf, format="PNG", pnginfo=info)
        assert ident["record_ids"][0].encode() not in buf.getvalue()
        images[0] = {"bytes": buf.getvalue(), "path": images[0]["path"]}
        shas = table.column("png_sha256").to_pylist()
        import hashlib

        shas[0] = hashlib.sha256(buf.getvalue()).hexdigest()
        table = table.set_column(table.schema.get_field_index("image"), "image",
                                 pa.array(images, type=table.schema.field("image").type))
        return table.set_column(table.schema.get_field_index("png_sha256"), "png_sha256", pa.array(shas))

    _rewrite_shard(rel, built[0], tag)
    problems = verify(rel)
    leak = f"data/g_nc-00000-of-00001.parquet: contains a source identifier from record_ids ({ident['record_ids'][0][:40]})"
    assert problems == [leak], problems


@pytest.mark.parametrize("edit", ["translator", "licence", "count"])
def test_manifest_is_checked_against_rows(built, tmp_path, edit):
    """A manifest edited consistently (card, croissant and sums regenerated from it) still disagrees with the rows."""
    rel = _fresh_copy(built, tmp_path)
    manifest = json.loads((rel / "manifest.json").read_text())
    if edit == "translator":
        manifest["translators"][0]["translator_id"] = "normal-covid-ffffffffffff"
        expect = "manifest.json: the g_nc rows were made by"
    elif edit == "licence":
        manifest["sources"][0]["licence"] = "public domain, no conditions"
        expect = f"manifest.json: sources {manifest['sources'][0]['source']} licence differs from the source registry"
    else:
        manifest["counts"]["g_nc"] += 1
        manifest["counts"]["all"] += 1
        manifest["configs"]["g_nc"]["num_examples"] += 1
        expect = "manifest.json: counts.g_nc is 25, the parquet shards hold 24 rows"
    describe(rel, manifest)
    problems = verify(rel)
    assert _has(problems, expect), problems


def test_hf_download_copy_verifies(built, tmp_path):
    """What `hf download --local-dir` leaves beside the files (.gitattributes, .cache/huggingface/) is ignored."""
    rel = _fresh_copy(built, tmp_path)
    (rel / ".gitattributes").write_text("*.parquet filter=lfs diff=lfs merge=lfs -text\n")
    (rel / ".cache" / "huggingface" / "download" / "data").mkdir(parents=True)
    (rel / ".cache" / "huggingface" / "download" / "data" / "g_nc-00000-of-00001.parquet.metadata").write_text("x\n")
    assert verify(rel) == []
    assert [p.relative_to(rel).as_posix() for p in publishable_files(rel)] == FILES
    (rel / ".cache" / "other.txt").write_text("not the Hub's\n")
    assert _has(verify(rel), ".cache/other.txt: not a file of the release")


def test_png_text_reads_every_text_chunk(tmp_path):
    """Plain, zlib-compressed and international text chunks all come out (compressed ones are invisible
    in the raw bytes); a non-PNG gives nothing."""
    import io

    from PIL import Image, PngImagePlugin

    from cxrsynth.stages.release.verify import png_text

    info = PngImagePlugin.PngInfo()
    info.add_text("a", "plain-00001280_004.png")
    info.add_text("b", "zipped-/work/shared/data/x", zip=True)
    info.add_itxt("c", "itxt-c64d5667-a776-4f95-9e21-bfabafb07740", zip=True)
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="PNG", pnginfo=info)
    assert b"zipped" not in buf.getvalue() and b"itxt-" not in buf.getvalue()
    text = png_text(buf.getvalue())
    for part in ("plain-00001280_004.png", "zipped-/work/shared/data/x", "itxt-c64d5667-a776-4f95-9e21-bfabafb07740"):
        assert part in text
    assert png_text(b"GIF89a...") == ""


def _png(pixels: bytes, width: int, chunks=(), trailing=b"") -> bytes:
    """A grey 8-bit PNG whose pixel bytes sit verbatim in IDAT (zlib level 0, filter None), with extra
    chunks before IEND and bytes after it."""
    import struct
    import zlib

    def chunk(ctype, body):
        return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))

    rows = [b"\0" + pixels[i:i + width] for i in range(0, len(pixels), width)]
    ihdr = struct.pack(">IIBBBBB", width, len(rows), 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(rows), 0))
    body += b"".join(chunk(t, b) for t, b in chunks)
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b"") + trailing


def test_pixels_that_spell_a_path_are_not_a_leak_but_hidden_text_is(built, tmp_path):
    """Compressed pixels are random bytes and sometimes read like a path: a demo release's sample grid
    failed verify on ``/O/S9``. Pixels are not scanned; any other chunk and bytes after IEND are."""
    import io

    from PIL import Image

    noise = b"/O/S9/x" + bytes(range(57))
    grid = _png(noise, 16)
    assert b"/O/S9/x" in grid and Image.open(io.BytesIO(grid)).size == (16, 4)
    rel = _fresh_copy(built, tmp_path)
    (rel / "sample_grid.png").write_bytes(grid)
    write_sha256sums(rel)
    assert not [p for p in verify(rel) if "sample_grid.png" in p]
    for hidden in (_png(noise, 16, chunks=[(b"prVt", b"from /srv/data/images/a.png")]),
                   _png(noise, 16, trailing=b"from /srv/data/images/a.png"),
                   _png(noise, 16)[:-20] + b"\0\0\xff\xffIDAT /srv/data/images/a.png"):  # a chunk past the end
        (rel / "sample_grid.png").write_bytes(hidden)
        write_sha256sums(rel)
        assert _has(verify(rel), "sample_grid.png: contains an absolute path"), hidden[-40:]


def test_a_folder_that_is_no_release_is_one_line(tmp_path, capsys):
    """Not 13 FAIL lines for a folder that holds nothing of a release (issue 21): one, saying what it is."""
    from cxrsynth.cli import main

    (tmp_path / "notes.txt").write_text("not a release\n")
    with pytest.raises(SystemExit) as exc:
        main(["verify", str(tmp_path)])
    cap = capsys.readouterr()
    assert exc.value.code == 1
    assert cap.out.strip().splitlines() == [
        f"FAIL {tmp_path}: not a release folder (no manifest.json, SHA256SUMS or data/ shards); give "
        "the folder `cxrsynth release` made, e.g. OUT/covid-cxr-synth"]
    assert cap.err.strip().splitlines()[-1] == f"{tmp_path}: 1 problem"
