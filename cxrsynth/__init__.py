"""cxrsynth: synthetic COVID-19 chest X-rays, made reproducibly and judged honestly.

Stages, each a sub-module that reads the previous stage's files and writes its own:
records (``ingest``) -> splits -> plan -> translators (``translate``) -> images (``generate``).
"""

__version__ = "0.1.0"


def load(*args, **kwargs):
    """Torch dataset of one benchmark arm; see :func:`cxrsynth.loader.load`."""
    from .loader import load as _load

    return _load(*args, **kwargs)
