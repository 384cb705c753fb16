"""User-facing errors.

Anything a user can cause (a bad file, a bad config value, missing weights) raises
:class:`SynthmedError` with one line that names the file or key and says what to do. The CLI prints
that line and exits with code 2, never a traceback; Python callers get an ordinary exception.
"""

from __future__ import annotations


class SynthmedError(Exception):
    """A problem the user can fix; ``str(err)`` is a single actionable line."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class ConfigError(SynthmedError):
    """A config file or ``--set`` override is invalid (names the key path)."""


class DataError(SynthmedError):
    """An input file or dataset directory cannot be used (names the path)."""


class DiskFullError(SynthmedError):
    """A write failed for lack of space (or another OS error); names the path and the space."""
