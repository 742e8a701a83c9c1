"""User-facing errors: each one says what is wrong and what to do.

The CLI catches :class:`IdmmError`, prints its message on one line (no traceback) and exits with
``exit_code``. Core code raises these instead of printing. Expected failures that reach the CLI as
plain Python exceptions — an OS error (permission, read-only or full filesystem, a name too long),
a file that is not UTF-8 — are turned into the same one-line errors by :func:`as_user_error`;
anything else is a bug and exits with :data:`BUG_EXIT` after its traceback.

Exit codes (the README's table): 0 success; 1 a run or a sweep cell failed while training;
2 bad usage (recipe, option, name, run state); 3 data missing or unreadable (datasets, images);
4 a corrupt or mismatching file (checkpoint, weights, summary, manifest); 5 the Hub refused;
6 the Hub unreachable or not answering in time; 7 a filesystem error; 70 a bug in idmm;
130 interrupted.
"""

from __future__ import annotations

import difflib
import errno
from collections.abc import Iterable

#: Exit code of an unexpected exception (a bug in idmm): EX_SOFTWARE of sysexits.h.
BUG_EXIT = 70
#: Exit code of a run stopped by Ctrl-C / SIGTERM (128 + SIGINT).
INTERRUPTED_EXIT = 130


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


class DataError(IdmmError):
    """A dataset's files are there but cannot be used: unreadable images, a file that is not UTF-8 (exit 3)."""

    exit_code = 3


class CorruptFileError(IdmmError):
    """A file idmm wrote is damaged or of the wrong shape: summary.json, a sweep manifest (exit 4)."""

    exit_code = 4


class FilesystemError(IdmmError):
    """Reading or writing failed: permission, read-only or full filesystem, a name too long (exit 7)."""

    exit_code = 7


class TrainingError(IdmmError):
    """Training itself failed (a non-finite loss, an impossible batch): the run is marked failed (exit 1)."""

    exit_code = 1


_ERRNO_WORDS = {
    errno.ENOSPC: "no space left on the device",
    errno.EROFS: "the filesystem is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "a name is longer than the filesystem allows",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.EISDIR: "it is a directory",
    errno.ENOENT: "no such file or directory",
    errno.EEXIST: "it already exists",
    errno.EDQUOT: "disk quota exceeded",
    errno.ELOOP: "too many levels of symbolic links",
    errno.EMFILE: "too many open files",
    errno.EIO: "input/output error",
}


def describe_os_error(exc: OSError, action: str = "") -> str:
    """``exc`` as one line: what failed, on which path(s), and why in words (``action`` says what was tried)."""
    paths = [str(p) for p in (exc.filename, exc.filename2) if p not in (None, "") and str(p) not in action]
    why = _ERRNO_WORDS.get(exc.errno or -1) or exc.strerror or type(exc).__name__
    what = action or "file operation failed"
    where = f" ({' -> '.join(paths)})" if paths else ""
    return f"{what}{where}: {why}"


def not_utf8(exc: UnicodeDecodeError) -> str:
    """``not UTF-8 text (byte 0xff at position 17)``: why a file could not be read as text."""
    bad = exc.object[exc.start : exc.start + 1]
    byte = f"byte 0x{bad[0]:02x}" if isinstance(bad, bytes) and bad else "a byte"
    return f"not UTF-8 text ({byte} at position {exc.start})"


def filesystem_error(exc: OSError, action: str = "") -> FilesystemError:
    """A :class:`FilesystemError` describing ``exc`` (see :func:`describe_os_error`)."""
    return FilesystemError(describe_os_error(exc, action))


def as_user_error(exc: BaseException) -> IdmmError | None:
    """The one-line error an expected exception stands for, or None when it is a bug.

    Expected: :class:`IdmmError`; OS errors (a filesystem problem, exit 7; a network one, exit 6);
    text that is not UTF-8 (exit 3: a data file; readers that know the file name say which).
    """
    if isinstance(exc, IdmmError):
        return exc
    if isinstance(exc, ConnectionError | TimeoutError):
        from idmm_tui.zoo.errors import HubUnreachableError

        return HubUnreachableError(f"network error: {describe_os_error(exc, 'connection failed')}")
    if isinstance(exc, OSError):
        return filesystem_error(exc)
    if isinstance(exc, UnicodeDecodeError):
        return DataError(f"a file is {not_utf8(exc)}")
    if isinstance(exc, MemoryError):
        return IdmmError('out of memory: use a smaller batch_size, a smaller backbone or data.cache = "no"')
    return None


def suggest(name: str, known: Iterable[str]) -> list[str]:
    """The closest known names to ``name`` (for 'did you mean' hints)."""
    return difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.5)
