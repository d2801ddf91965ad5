"""The row format of every release shard: ``datasets`` features and the Arrow schema carrying them.

Its own module because both the packaging (which writes rows) and the card (which describes them in
its front matter) need it; neither imports the other.
"""

from __future__ import annotations

import json

import pyarrow as pa

from ..records import LABELS


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
