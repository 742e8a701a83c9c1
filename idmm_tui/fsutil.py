"""Small filesystem helpers: atomic writes and content hashes."""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Run ``write(tmp)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    A crash at any moment leaves either the old file or the new one, never a half-written one (and at
    most a temporary file, removed by the next write of ``path`` once older than :data:`STALE_TMP_S`).
    A writer library's failure that is an OS error underneath (a full disk) is raised as that OSError.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_siblings(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            write(tmp)
        except Exception as exc:
            raise _as_os_error(exc, path) from exc
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


#: A temporary file of an atomic write older than this was left by a write that was killed (kill -9,
#: power loss): the next write of the same file removes it.
STALE_TMP_S = 3600.0


def _remove_stale_siblings(path: Path) -> None:
    now = time.time()
    try:
        for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            try:
                if now - tmp.stat().st_mtime > STALE_TMP_S:
                    tmp.unlink()
            except OSError:
                pass
    except OSError:
        pass


_OS_ERROR_CODE = re.compile(r"os error (\d+)|Os \{ code: (\d+)")


def _as_os_error(exc: Exception, path: Path) -> Exception:
    """The OS error behind a writer library's own exception (safetensors reports a full disk as
    ``SafetensorError: … (os error 28)``), so that it is reported as the filesystem error it is;
    ``exc`` itself otherwise."""
    if isinstance(exc, OSError):
        return exc
    match = _OS_ERROR_CODE.search(str(exc))
    code = int(next(g for g in match.groups() if g)) if match else None
    if code is None:
        try:
            if os.statvfs(Path(path).parent).f_bavail == 0:
                code = errno.ENOSPC
        except OSError:
            pass
    return OSError(code, os.strerror(code), str(path)) if code else exc


#: Largest file :func:`read_text_file` reads (run files, manifests, model configs are far smaller).
MAX_TEXT_BYTES = 64 << 20


def open_regular(path: Path, mode: str = "rb"):
    """Open ``path`` for reading only when it is a regular file: a FIFO, a device (``/dev/zero``) or a
    socket put where idmm expects a file raises OSError instead of blocking or never ending. The check
    is made on the opened descriptor (no race with a swap after a stat)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        kind = os.fstat(fd).st_mode
        if stat.S_ISDIR(kind):
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(kind):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, mode, encoding="utf-8", errors="replace") if "b" not in mode else os.fdopen(fd, mode)
    except BaseException:
        os.close(fd)
        raise


def read_text_file(path: Path, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """A small UTF-8 text file: OSError when it is not a regular file or is larger than ``max_bytes``;
    UnicodeDecodeError when it is not UTF-8 (see :func:`open_regular`)."""
    with open_regular(path) as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise OSError(errno.EFBIG, f"larger than {max_bytes} bytes", str(path))
    return data.decode("utf-8")


def atomic_write_text(path: Path, text: str) -> None:
    """Atomically replace ``path`` with ``text`` (UTF-8)."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    """Atomically replace ``path`` with ``data`` as indented JSON."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


_SHA_CACHE: dict[tuple[str, int, int, int, int], str] = {}


def sha256_cached(path: Path) -> str:
    """:func:`sha256_file`, remembered for this process while the file keeps its device, inode, size and
    mtime (a viewer showing the same model again does not re-hash it; another process always does)."""
    st = os.stat(path)
    key = (os.fspath(Path(path).absolute()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_file(path)
    return _SHA_CACHE[key]
