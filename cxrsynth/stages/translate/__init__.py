"""CycleGAN translators: networks, losses, the image pool, training with exact resume, checkpoints.

Other stages learn about a translator run only through
:class:`~cxrsynth.artifacts.translator_run.TranslatorRun` (re-exported here with :func:`describe_run`),
never by reading the run folder's files themselves.
"""

from __future__ import annotations

from ...artifacts.translator_run import TranslatorRun, describe_run

__all__ = ["TranslatorRun", "describe_run"]
