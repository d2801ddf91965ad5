"""ingest against hostile sources: the probes of issue #15 (reading outside the data, hostile images and
CSVs), each on a small folder made in tmp_path from the real sample data, each failing on the old ingest."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from cxrsynth.data import images
from cxrsynth.core.config import resolve
from cxrsynth.core.errors import BadInputError
from cxrsynth.stages.ingest import IngestConfig, ingest

from .conftest import COVID, NIH


def _png(path, width, height, pixels=True):
    """A valid 8-bit grayscale PNG of zeros, written row by row (never held whole), or only its header."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z, row = zlib.compressobj(9), bytes(width + 1)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush() if pixels else b""
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def _covid_root(tmp_path, n=4):
    """A COVID-collection folder with the header and the first ``n`` usable rows of the real one."""
    root = tmp_path / "covid"
    (root / "images").mkdir(parents=True)
    lines = (COVID / "metadata.csv").read_text().splitlines()
    rows = [ln for ln in lines[1:] if ",COVID-19," in ln and ",PA,X-ray," in ln and ",images," in ln]
    rows = [ln for ln in rows if (COVID / "images" / ln.split(",images,")[1].split(",")[0]).is_file()][:n]
    for ln in rows:
        name = ln.split(",images,")[1].split(",")[0]
        shutil.copy(COVID / "images" / name, root / "images" / name)
    return root, lines[0], rows


def _edit(header, row, **fields):
    """``row`` (a CSV line) with some fields replaced, written back as CSV."""
    import csv
    import io

    names = next(csv.reader([header]))
    values = dict(zip(names, next(csv.reader([row]))))
    values.update(fields)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([values[n] for n in names])
    return buf.getvalue()


def _write(root, header, rows):
    (root / "metadata.csv").write_text("\n".join([header] + rows) + "\n")


def test_h10_h11_metadata_paths_leaving_the_source_are_reported_and_skipped(tmp_path):
    root, header, rows = _covid_root(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    for name, src in zip(("x.png", "y.png", "z.png"), sorted(NIH.glob("images/*.png"))):
        shutil.copy(src, outside / name)  # real X-rays, which the old ingest read
    (outside / "secret.txt").write_text("not data")
    bad = [_edit(header, rows[0], folder="../outside", filename="x.png"),
           _edit(header, rows[1], filename="../../outside/y.png"),
           _edit(header, rows[2], folder=str(outside), filename="z.png")]
    _write(root, header, bad + rows[3:])
    res = ingest([root], out_dir=tmp_path / "out")
    probs = [p for p in res.report["problems"] if "not read" in p["reason"]]
    assert sorted((p["path"], p["reason"].split(";")[0]) for p in probs) == sorted([
        ("../outside/x.png", "path climbs out of the source folder with '..'"),
        ("images/../../outside/y.png", "path climbs out of the source folder with '..'"),
        (f"{outside}/z.png", "path is absolute")])
    assert sorted(p["row"] for p in probs) == [0, 1, 2]
    assert res.report["totals"]["outside_source"] == 3 and res.report["collections"]["covid"]["outside_source"] == 3
    assert len(res.records) == 1 and all(str(outside) not in r.source_path for r in res.records)
    # nothing outside is listed as an unreferenced file either (the old ingest listed /etc)
    text = (tmp_path / "out" / "ingest_report.json").read_text()
    assert "secret.txt" not in text
    with pytest.raises(BadInputError, match="a metadata path .* \\(covid: ") as err:
        ingest([root], resolve(IngestConfig, overrides=["on_bad_files=error"]))
    assert "x.png" in str(err.value)


def test_h12_symlink_resolving_outside_is_not_an_xray(tmp_path):
    root = tmp_path / "folder"
    (root / "normal").mkdir(parents=True)
    nih = sorted(NIH.glob("images/*.png"))
    shutil.copy(nih[0], root / "normal" / "a.png")
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(nih[1], outside / "x.png")
    os.symlink(outside / "x.png", root / "normal" / "link.png")
    os.symlink(root / "normal" / "a.png", root / "normal" / "inside.png")  # a link that stays inside is read
    res = ingest([root], resolve(IngestConfig, overrides=["dedupe=false"]))
    assert sorted(r.source_path for r in res.records) == ["normal/a.png", "normal/inside.png"]
    probs = [p for p in res.report["problems"] if "not read" in p["reason"]]
    assert [(p["path"], p["reason"]) for p in probs] == [
        ("normal/link.png", "path is a symbolic link that resolves outside the source folder; not read")]


def test_path_check_with_a_folder_cache_sees_linked_folders_and_files(tmp_path):
    """``path_problem`` resolves each folder once per cache (ingest's loop over 53,000 RSNA rows): a
    folder link or a file link leaving the source is still caught, rows in the same folders included."""
    from cxrsynth.data.sources.base import path_problem

    root, outside = tmp_path / "folder", tmp_path / "outside"
    (root / "imgs").mkdir(parents=True)
    outside.mkdir()
    for f in (root / "imgs" / "a.png", outside / "x.png"):
        f.write_bytes(b"x")
    os.symlink(outside, root / "away")  # a folder link out
    os.symlink(outside / "x.png", root / "imgs" / "file-link.png")  # a file link out
    os.symlink(root / "imgs", root / "here")  # a folder link that stays inside
    folders: dict = {}
    got = {rel: path_problem(root, rel, folders=folders)
           for rel in ("imgs/a.png", "away/x.png", "imgs/file-link.png", "here/a.png", "imgs/./a.png", "away/y.png")}
    out = "is a symbolic link that resolves outside the source folder"
    assert got == {"imgs/a.png": None, "away/x.png": out, "imgs/file-link.png": out, "here/a.png": None,
                   "imgs/./a.png": None, "away/y.png": out}
    assert got == {rel: path_problem(root, rel) for rel in got}  # the same answers without a cache


def test_h4_h5_bombs_and_blank_images_are_bad_files_named(tmp_path, monkeypatch):
    """H4: a header declaring 30000x30000; H5: a valid 12000x12000 PNG of zeros; a constant image."""
    root = tmp_path / "folder"
    (root / "normal").mkdir(parents=True)
    shutil.copy(next(NIH.glob("images/*.png")), root / "normal" / "good.png")
    _png(root / "normal" / "bomb.png", 30000, 30000, pixels=False)
    _png(root / "normal" / "big.png", 12000, 12000)
    assert (root / "normal" / "big.png").stat().st_size < 1_000_000
    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(root / "normal" / "blank.png")
    loaded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loaded.append(self.size) or real_load(self))
    res = ingest([root])
    bad = {b["path"]: b["reason"] for b in res.report["bad_files"]}
    assert set(bad) == {"normal/bomb.png", "normal/big.png", "normal/blank.png"}
    assert bad["normal/bomb.png"].startswith("image is too large to decode safely")
    assert bad["normal/big.png"] == ("image is too large to decode safely: its header declares 12000x12000, over "
                                     "the cap of 50,000,000 pixels (ingest.max_image_pixels)")
    assert bad["normal/blank.png"].startswith("image is blank: every pixel has the value 128")
    assert (12000, 12000) not in loaded and (30000, 30000) not in loaded  # refused from the header, unread
    assert [r.source_path for r in res.records] == ["normal/good.png"]
    with pytest.raises(BadInputError, match="too large|blank"):
        ingest([root], resolve(IngestConfig, overrides=["on_bad_files=error"]))


def test_pixel_cap_is_settable(tmp_path):
    nih = next(NIH.glob("images/*.png"))  # 512 x 512
    assert images.decode(nih).width == 512
    with pytest.raises(BadInputError, match="declares 512x512, over the cap of 100,000 pixels"):
        images.decode(nih, max_pixels=100_000)
    root = tmp_path / "folder"
    (root / "normal").mkdir(parents=True)
    shutil.copy(nih, root / "normal" / "a.png")
    res = ingest([root], resolve(IngestConfig, overrides=["max_image_pixels=100000"]))
    assert res.records == [] and len(res.report["bad_files"]) == 1
    with pytest.raises(Exception, match="max_image_pixels must be at least 1"):
        resolve(IngestConfig, overrides=["max_image_pixels=0"])


def test_dicom_cap_is_checked_from_the_header(tmp_path):
    from .conftest import GENUINE_DCM

    with pytest.raises(BadInputError, match="declares 1024x1024, over the cap of 1,000 pixels"):
        images.decode(GENUINE_DCM, max_pixels=1000)


@pytest.mark.parametrize("where", ["row", "header"])
def test_h7_bad_utf8_names_file_and_line(tmp_path, where):
    root, header, rows = _covid_root(tmp_path)
    _write(root, header, rows)
    data = (root / "metadata.csv").read_bytes().split(b"\n")
    k = 3 if where == "row" else 0
    data[k] = data[k].replace(b",", b",\xff", 1)
    (root / "metadata.csv").write_bytes(b"\n".join(data))
    with pytest.raises(BadInputError) as err:
        ingest([root])
    assert str(err.value).startswith(f"metadata file is not valid UTF-8 ({root / 'metadata.csv'} line {k + 1})")
    res = subprocess.run([sys.executable, "-m", "cxrsynth.cli", "--workdir", str(tmp_path / "wd"), "ingest", str(root)],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert f"Error: metadata file is not valid UTF-8 ({root / 'metadata.csv'} line {k + 1})" in res.stderr


def test_h8_extra_comma_is_reported_not_shifted(tmp_path):
    root, header, rows = _covid_root(tmp_path)
    _write(root, header, rows)
    before = ingest([root])
    shifted = rows[1].replace(",M,", ",M,extra,", 1) if ",M," in rows[1] else rows[1].replace(",", ",extra,", 1)
    _write(root, header, rows[:1] + [shifted] + rows[2:])
    res = ingest([root])
    probs = [p for p in res.report["problems"] if "fields" in p["reason"]]
    assert [(p["row"], p["reason"]) for p in probs] == [
        (1, "line 3: 29 fields where the header has 28 (an unquoted comma or a broken quote?); row left out")]
    assert res.report["collections"]["covid"]["rows_read"] == len(rows)
    # the row is left out, and every other row keeps its row number (the paper split uses them)
    kept = {r.record_id: r.rows for r in before.records}
    del kept[next(r.record_id for r in before.records if r.rows == [1])]
    assert {r.record_id: r.rows for r in res.records} == kept


def test_broken_quote_names_file_and_line(tmp_path):
    """An unclosed quote would swallow every later row into one field; it is an error naming the line."""
    root, header, rows = _covid_root(tmp_path)
    _write(root, header, rows[:2] + [rows[2].replace(",PA,", ',"PA,', 1)] + rows[3:])
    with pytest.raises(BadInputError, match=r"metadata file is not valid CSV \(.*\) \(.*metadata.csv line 4\)"):
        ingest([root])
