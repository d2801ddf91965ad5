"""The errors cxrsynth raises on purpose.

Each carries the thing at fault (a path, an id, a value) so that ``cli.main`` can print one line:
``Error: <what> (<value seen>); <what to do>``. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class CxrsynthError(Exception):
    """Base class: ``what`` went wrong, ``where`` (path / id / value), ``hint`` what to do."""

    def __init__(self, what: str, where: object = None, hint: str | None = None):
        self.what, self.where, self.hint = what, where, hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = self.what
        if self.where is not None:
            text += f" ({self.where})"
        if self.hint:
            text += f"; {self.hint}"
        return text


class ConfigError(CxrsynthError):
    """A config key, value or file is wrong."""


class DataNotFoundError(CxrsynthError):
    """Input data is not where it was looked for."""


class BadInputError(CxrsynthError):
    """An input file exists but cannot be used (corrupt, wrong format, bad row)."""


class LeakageError(CxrsynthError):
    """A patient appears in more than one split."""


class SchemaError(CxrsynthError):
    """A manifest does not validate against its JSON Schema."""


class CheckpointError(CxrsynthError):
    """A checkpoint is missing, incomplete or does not match its checksum."""


class LockedError(CxrsynthError):
    """Another process holds the lock on a folder this process needs to write."""


class DestinationError(CxrsynthError):
    """An output folder cannot be written (read-only, no permission, no space)."""


class StampError(ConfigError):
    """A result (audit, benchmark) was measured on other images than the release it is attached to."""


class VerifyError(CxrsynthError):
    """A release folder does not verify (raised by ``release.verify.publishable_files``)."""


class VerifyFailed(CxrsynthError):
    """A release did not pass verification, so nothing was put in place."""


class PushError(CxrsynthError):
    """The Hub refused or failed a push."""


class JobsFailed(CxrsynthError):
    """Some launched jobs ended without their result; ``where`` names them and their logs."""


class NonFiniteError(CxrsynthError):
    """A loss or weight became NaN or infinite: training stops, and nothing is saved from it."""
