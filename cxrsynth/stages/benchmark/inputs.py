"""What the benchmark reads of the real side, already read: the records, the split manifest, the plan.

:class:`SplitData` lives in ``cxrsynth/artifacts/split_data.py`` (the audit takes the same value); it is
re-exported here, where the benchmark's modules import it from. No function of the stage takes a work
folder path in its place.
``pipeline.benchmark_in`` (and the CLI through it) reads them with :meth:`SplitData.read` and hands
them to the stage, so the benchmark opens no work folder.
"""

from __future__ import annotations

from ...artifacts.split_data import SplitData


def real_images(data: SplitData):
    """The records with pixels and their split, as ``cxrsynth.load(real=...)`` takes them."""
    from ..load.real_images import from_split

    return from_split(data.records, data.splits)


__all__ = ["SplitData", "real_images"]
