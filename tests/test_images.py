"""Decoding: the genuine RSNA DICOM, odd DICOMs written here, every PNG/JPEG mode, broken files."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import ExplicitVRLittleEndian

from cxrsynth.data import images
from cxrsynth.core.errors import BadInputError

from .conftest import GENUINE_DCM, NIH


def test_genuine_rsna_dicom_jpeg_baseline():
    ds = pydicom.dcmread(GENUINE_DCM)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"  # JPEG baseline
    dec = images.decode(GENUINE_DCM)
    assert dec.pixels.shape == (256, 256) and dec.pixels.dtype == np.uint8
    assert (dec.width, dec.height) == (1024, 1024)
    assert dec.pixel_spacing_mm == pytest.approx(0.168)
    full = images.decode(GENUINE_DCM, 1024).pixels  # no resize: the stretch alone shows
    assert full.min() == 0 and full.max() == 255


def _write_dicom(path, arr, **attrs):
    """A small uncompressed DICOM built on the genuine RSNA header."""
    ds = pydicom.dcmread(GENUINE_DCM)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows, ds.Columns = arr.shape
    ds.BitsAllocated = 16
    ds.BitsStored = attrs.pop("BitsStored", 12)
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = arr.astype(np.uint16).tobytes()
    for k, v in attrs.items():
        setattr(ds, k, v)
    ds.save_as(path, enforce_file_format=True)
    return path


def _gradient(h=64, w=64, top=4095):
    return np.tile(np.linspace(0, top, w), (h, 1)).astype(np.uint16)


def test_monochrome1_is_inverted(tmp_path):
    arr = _gradient()
    mono2 = images.decode(_write_dicom(tmp_path / "m2.dcm", arr, PhotometricInterpretation="MONOCHROME2"), 64).pixels
    mono1 = images.decode(_write_dicom(tmp_path / "m1.dcm", arr, PhotometricInterpretation="MONOCHROME1"), 64).pixels
    assert mono2[0, 0] < 10 and mono2[0, -1] > 245
    assert np.abs(mono1.astype(int) - (255 - mono2.astype(int))).max() <= 1


def test_rescale_slope_intercept_and_voi_window(tmp_path):
    arr = _gradient(top=4095)
    # A window covering the lower half of the raw range saturates the upper half.
    path = _write_dicom(tmp_path / "w.dcm", arr, RescaleSlope=2, RescaleIntercept=-1024,
                        WindowCenter=1024, WindowWidth=4096)
    px = images.decode(path, 64).pixels
    saturated = (px[0] == 255).mean()
    assert 0.4 < saturated < 0.6, saturated
    plain = images.decode(_write_dicom(tmp_path / "p.dcm", arr), 64).pixels
    assert (plain[0] == 255).mean() < 0.05


def test_16bit_dicom(tmp_path):
    px = images.decode(_write_dicom(tmp_path / "b16.dcm", _gradient(top=65535), BitsStored=16), 32).pixels
    assert px.shape == (32, 32) and px[0, 0] < 10 and px[0, -1] > 245


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "P", "I;16", "F"])
def test_png_modes_decode_to_gray(tmp_path, mode):
    src = Image.open(next(NIH.glob("images/*.png"))).convert("L")
    if mode == "I;16":
        img = Image.fromarray((np.asarray(src, dtype=np.uint16) * 257))
    elif mode == "F":
        img = Image.fromarray(np.asarray(src, dtype=np.float32) * 3.5)
    else:
        img = src.convert(mode)
    name = "x.tif" if mode == "F" else "x.png"  # PNG has no float mode; TIFF does
    img.save(tmp_path / name)
    px = images.decode(tmp_path / name).pixels
    ref = images.decode(next(NIH.glob("images/*.png"))).pixels
    assert px.shape == (256, 256)
    assert np.corrcoef(px.ravel(), ref.ravel())[0, 1] > 0.99


def test_truncated_and_fake_images_name_the_file(tmp_path):
    good = next(NIH.glob("images/*.png")).read_bytes()
    (tmp_path / "trunc.png").write_bytes(good[: len(good) // 3])
    (tmp_path / "fake.jpg").write_text("not an image")
    (tmp_path / "fake.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 20)
    for name in ("trunc.png", "fake.jpg", "fake.dcm"):
        with pytest.raises(BadInputError) as err:
            images.decode(tmp_path / name)
        assert name in str(err.value)
    with pytest.raises(BadInputError, match="missing"):
        images.decode(tmp_path / "absent.png")


def test_hashes_are_stable_and_dhash_survives_reencoding(tmp_path):
    src = next(NIH.glob("images/*.png"))
    a = images.decode(src).pixels
    assert images.pixel_sha256(a) == images.pixel_sha256(images.decode(src).pixels)
    Image.open(src).convert("L").resize((700, 700)).save(tmp_path / "re.jpg", quality=80)
    b = images.decode(tmp_path / "re.jpg").pixels
    assert images.pixel_sha256(a) != images.pixel_sha256(b)
    assert bin(images.dhash(a) ^ images.dhash(b)).count("1") <= 6
    assert images.encode_png(a) == images.encode_png(a.copy())
