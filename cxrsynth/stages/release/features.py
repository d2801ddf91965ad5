"""The row format of every release shard: ``datasets`` features and the Arrow schema carrying them.

Its own module because both the packaging (which writes rows) and the card (which describes them in
its front matter) need it; neither imports the other.
"""

from __future__ import annotations

import json

import pyarrow as pa

from ...data.records import LABELS


def features():
    """The ``datasets`` features of every row (the same for all configs)."""
    import datasets

    label = datasets.ClassLabel(names=list(LABELS))
    return datasets.Features({
        "id": datasets.Value("string"), "image": datasets.Image(), "label": label,
        "config": datasets.Value("string"), "source_label": label,
        "translator_id": datasets.Value("string"), "checkpoint_sha256": datasets.Value("string"),
        "png_sha256": datasets.Value("string"), "seed": datasets.Value("int64"),
        "code_version": datasets.Value("string"), "created": datasets.Value("string"),
    })


def arrow_schema() -> pa.Schema:
    feats = features()
    schema = feats.arrow_schema
    return schema.with_metadata({"huggingface": json.dumps({"info": {"features": feats.to_dict()}})})


def image_size(manifest: dict) -> int | None:
    """The side of a release's square images: the size its translators generate at (None: not recorded)."""
    sizes = {(t.get("arch") or {}).get("size") for t in manifest["translators"]} - {None}
    return sizes.pop() if len(sizes) == 1 else None


def image_format(manifest: dict) -> str:
    """The images of a release in words, e.g. "8-bit grayscale 64x64 PNG" (no size when it is not recorded)."""
    size = image_size(manifest)
    return f"8-bit grayscale {size}x{size} PNG" if size else "8-bit grayscale PNG"
