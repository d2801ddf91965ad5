"""Safetensors files whose bytes depend only on their tensors and metadata, not on the process.

safetensors writes its metadata in hash-map order, which varies from process to process, so two runs that
save the same weights with two or more metadata keys can write different bytes, and a recorded sha256 then
names one run's file only. :func:`canonical_safetensors` rewrites the header with sorted keys. The
translators' ``generator.safetensors`` and the benchmark's ``model.safetensors`` are written through it.
"""

from __future__ import annotations

import json
import struct


def canonical_safetensors(data: bytes) -> bytes:
    """The same safetensors file with its JSON header written with sorted metadata keys.

    The tensor entries and data are left as they are (safetensors already orders them); the header is
    padded with spaces to a multiple of 8 bytes, as safetensors itself does.
    """
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", None)
    out = {"__metadata__": dict(sorted(meta.items()))} if meta else {}
    out.update(header)
    text = json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-(8 + len(text)) % 8)
    return struct.pack("<Q", len(text)) + text + data[8 + n:]
