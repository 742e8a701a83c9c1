"""User-facing errors: each one says what is wrong and what to do.

The CLI catches :class:`IdmmError`, prints its message on one line (no traceback) and exits with
``exit_code``. Core code raises these instead of printing.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class IdmmError(Exception):
    """Base class for errors shown to the user as a one-line message."""

    exit_code = 1


class UsageError(IdmmError):
    """Bad input from the user: an unknown name, a bad recipe value, a bad flag (exit code 2)."""

    exit_code = 2


class RecipeError(UsageError):
    """A recipe file or an override is invalid."""


class UnknownNameError(UsageError):
    """A registry lookup (dataset, backbone, method…) failed; suggests the closest names."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        self.kind, self.name, self.known = kind, name, known
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}.{hint} Known: {', '.join(known)}")


class DatasetNotFoundError(IdmmError):
    """A dataset is not on disk (and downloading was not allowed or is impossible)."""

    exit_code = 3


class CheckpointError(IdmmError):
    """A checkpoint is missing, truncated or corrupt; it is never loaded in that case."""

    exit_code = 4


class RunStateError(IdmmError):
    """A run directory cannot be used as asked (exists, finished, foreign…)."""

    exit_code = 2


def suggest(name: str, known: Iterable[str]) -> list[str]:
    """The closest known names to ``name`` (for 'did you mean' hints)."""
    return difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.5)
