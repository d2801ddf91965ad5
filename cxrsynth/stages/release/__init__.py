"""Turning generated images into a dataset people can load, trust and cite.

``package.py`` builds the release folder (shards, provenance, the manifest) in the row format of
``features.py``; ``describe.py`` renders what is derived from the manifest: ``card.py`` (the dataset
card), ``croissant.py`` (Croissant metadata) and SHA256SUMS; ``verify.py`` checks a folder, ``hub.py``
pushes one, ``diff.py`` compares two. ``cxrsynth release``, which runs every stage in order, is
``cxrsynth/pipeline.py``: it sits above the stages, not among them.
"""
