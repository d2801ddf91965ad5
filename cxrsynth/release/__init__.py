"""Turning generated images into a dataset people can load, trust and cite.

``package.py`` builds the release folder, ``card.py`` its dataset card, ``croissant.py`` its Croissant
metadata, ``verify.py`` checks a folder, ``hub.py`` pushes one, ``pipeline.py`` is ``cxrsynth release``.
"""
