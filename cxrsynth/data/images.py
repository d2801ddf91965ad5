"""Decoding every input format to the one canonical array, and hashing it.

The canonical image is 8-bit grayscale, ``size`` x ``size`` (256 by default), stretched without
keeping the aspect ratio (as the paper did), resampled with Pillow's antialiased bilinear filter.
Every stage that needs pixels calls :func:`load_canonical`, so real images look the same to the
translators, the classifiers and the audit whatever file they came from.

DICOM (read with pydicom): the modality LUT (Rescale Slope / Intercept) and the VOI LUT (or window)
are applied, MONOCHROME1 is inverted so that bone is bright, and the result is stretched to 0-255.
Other images: palette, alpha, RGB and 16-bit modes are converted to grayscale the same way.

Decoding is bounded: the size a file declares in its header is checked against ``max_pixels`` before a
pixel is decoded (a PNG of a few kB can declare 30000 x 30000), and Pillow's decompression-bomb error
and warning become a :class:`BadInputError` naming the file. A blank (constant) image is refused too: it
holds no X-ray, and as a "normal" record it would teach the translators nothing true.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..core.errors import BadInputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"}
DICOM_SUFFIXES = {".dcm", ".dicom"}
MAX_IMAGE_PIXELS = 50_000_000  # default cap on width x height (x frames): about 7000 x 7000

PREPROCESSING = {
    "mode": "L (8-bit grayscale)",
    "resize": "stretch to size x size, PIL bilinear (antialiased)",
    "dicom": "modality LUT, VOI LUT, MONOCHROME1 inverted, min-max to 0-255",
    "other": "RGB/RGBA/LA/P to L by ITU-R 601-2 luma; 16-bit and float min-max to 0-255",
}


@dataclass(frozen=True)
class Decoded:
    """A decoded image: the canonical array plus what the file said about itself."""

    pixels: np.ndarray  # uint8, (size, size)
    width: int
    height: int
    pixel_spacing_mm: float | None = None


def is_dicom(path: Path) -> bool:
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _stretch_to_uint8(arr: np.ndarray) -> np.ndarray:
    arr = arr.astype(np.float64)
    lo, hi = float(np.min(arr)), float(np.max(arr))
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.round((arr - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _pil_to_gray(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _stretch_to_uint8(np.asarray(img))
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA"):
        # Composite on black: the X-ray's background is dark, and alpha is not part of the image.
        bg = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(bg, img.convert("RGBA"))
    if img.mode != "L":
        img = img.convert("L")
    return np.asarray(img, dtype=np.uint8)


def _check_size(path: Path, width: int, height: int, frames: int, max_pixels: int) -> None:
    if width * height * frames > max_pixels:
        raise BadInputError("image is too large to decode safely", path,
                            f"its header declares {width}x{height}" + (f"x{frames} frames" if frames > 1 else "")
                            + f", over the cap of {max_pixels:,} pixels (ingest.max_image_pixels)")


def _read_dicom(path: Path, max_pixels: int) -> tuple[np.ndarray, float | None]:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(str(path))
    except Exception as exc:  # pydicom raises many types for broken or unsupported files
        raise BadInputError("unreadable DICOM", path, f"{type(exc).__name__}: {exc}") from exc
    try:
        frames = int(ds.get("NumberOfFrames") or 1)
        _check_size(path, int(ds.get("Columns") or 0), int(ds.get("Rows") or 0), frames, max_pixels)
    except (TypeError, ValueError) as exc:
        raise BadInputError("unreadable DICOM", path, f"bad Rows / Columns / NumberOfFrames: {exc}") from exc
    try:
        with warnings.catch_warnings():  # a compressed frame larger than its header says
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            arr = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for broken or unsupported files
        raise BadInputError("unreadable DICOM", path, f"{type(exc).__name__}: {exc}") from exc
    if arr.ndim != 2:
        raise BadInputError("DICOM is not a single grayscale frame", path, f"shape {arr.shape}")
    arr = apply_modality_lut(arr, ds)
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        arr = apply_voi_lut(arr, ds)
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper() == "MONOCHROME1":
        arr = arr.max() - arr
    spacing = ds.get("PixelSpacing")
    return _stretch_to_uint8(arr), (float(spacing[0]) if spacing else None)


def _read_pil(path: Path, max_pixels: int) -> np.ndarray:
    try:
        # Our cap decides, from the header: Pillow's own warning (over Image.MAX_IMAGE_PIXELS) is moot once
        # the size is checked, and its error (over twice that) is reported below like any refusal.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            _check_size(path, img.width, img.height, 1, max_pixels)
            img.load()  # forces a full decode so that truncated files fail here
            return _pil_to_gray(img)
    except Image.DecompressionBombError as exc:
        raise BadInputError("image is too large to decode safely", path, str(exc)) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadInputError("not a readable image", path, f"{type(exc).__name__}: {exc}") from exc


def decode(path: str | Path, size: int = 256, max_pixels: int = MAX_IMAGE_PIXELS) -> Decoded:
    """Read ``path`` (any supported format) into the canonical ``size`` x ``size`` uint8 array.

    Raises :class:`BadInputError` naming the file for anything that is not a readable image, for an
    image whose header declares more than ``max_pixels`` (checked before decoding) and for a blank one.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError("image file is missing", path)
    spacing = None
    if is_dicom(path):
        gray, spacing = _read_dicom(path, max_pixels)
    else:
        gray = _read_pil(path, max_pixels)
    if gray.size == 0 or gray.min() == gray.max():
        raise BadInputError("image is blank", path, f"every pixel has the value {gray.flat[0] if gray.size else None}"
                            " (after windowing); nothing to learn from")
    h, w = gray.shape
    return Decoded(resize_square(Image.fromarray(gray, mode="L"), size), w, h, spacing)


def resize_square(img: Image.Image, size: int) -> np.ndarray:
    """``img`` (mode L) as uint8 (size, size), by the one resampling every image in cxrsynth takes (PIL
    bilinear), so that real and synthetic images never differ by how they were resized."""
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8).copy()


def pixel_sha256(pixels: np.ndarray) -> str:
    """Hash of the canonical pixels (shape included), the identity of an image's content."""
    h = hashlib.sha256(f"{pixels.shape}|{pixels.dtype}".encode())
    h.update(np.ascontiguousarray(pixels).tobytes())
    return h.hexdigest()


def dhash(pixels: np.ndarray) -> int:
    """64-bit difference hash (9x8 thumbnail, horizontal gradients).

    Survives re-encoding and rescaling (the RSNA DICOMs re-encode NIH PNGs at another size), so it
    finds near-duplicates that an exact hash misses. Compare with :func:`hamming`.
    """
    thumb = np.asarray(Image.fromarray(pixels).resize((9, 8), Image.Resampling.BILINEAR), dtype=np.int16)
    bits = (thumb[:, 1:] > thumb[:, :-1]).flatten()
    return int(np.packbits(bits).view(">u8")[0])


def thumbnail(pixels: np.ndarray, side: int = 32) -> np.ndarray:
    """A small z-scored thumbnail, for confirming a dhash match by mean absolute difference.

    Z-scoring makes the comparison blind to brightness and contrast, which differ between a DICOM
    (windowed and stretched) and the PNG it was made from. On the sample data true duplicates differ
    by at most 0.01 and distinct images by at least 0.17 (mean absolute z difference).
    """
    t = np.asarray(Image.fromarray(pixels).resize((side, side), Image.Resampling.BILINEAR), dtype=np.float32)
    return ((t - t.mean()) / (t.std() + 1e-6)).astype(np.float16)


def from_pil(img: Image.Image, size: int = 256) -> np.ndarray:
    """A PIL image already in memory (a ``datasets`` row's) as the canonical array, by the same gray
    conversion and resampling :func:`decode` gives a file, so real images read either way match."""
    return resize_square(Image.fromarray(_pil_to_gray(img), mode="L"), size)


def load_canonical(path: str | Path, size: int = 256) -> np.ndarray:
    return decode(path, size).pixels


def encode_png(pixels: np.ndarray) -> bytes:
    """Deterministic 8-bit grayscale PNG bytes (no timestamps, fixed compression)."""
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), mode="L").save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()
