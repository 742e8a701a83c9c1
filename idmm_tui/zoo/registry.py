"""The local zoo registry: one folder per model under ``$IDMM_ZOO_DIR`` (default ``~/.cache/idmm/zoo``).

Layout of ``<zoo dir>/<name>/`` (timm's hub layout, loadable with ``timm.create_model("local-dir:…")``)::

    model.safetensors   the weights, timm keys (no pickle anywhere)
    config.json         architecture, num_classes, model_args, pretrained_cfg, + an ``idmm`` section
    README.md           the model card
    source.json         where the entry came from (push: run + stage; pull: repo, revision, commit,
                        endpoint) and the sha256 of model.safetensors; never uploaded, never a token

Entries are installed atomically: a model is assembled in ``<zoo dir>/.staging-*`` and renamed into
place only when complete and verified, so a failed pull or push never leaves a half-written entry.
Names are single path components (letters, digits, ``-``, ``_``, ``.``); anything that could escape
the registry (``../x``, ``/abs``, ``a/b``) is refused before the filesystem is touched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idmm_tui.errors import FilesystemError, UsageError
from idmm_tui.fsutil import atomic_write_json, read_text_file, sha256_cached

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"
SOURCE = "source.json"
#: The files of a zoo model as published (``source.json`` stays local).
MODEL_FILES = (WEIGHTS, CONFIG, CARD)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_STAGING_PREFIX = ".staging-"
_TRASH_PREFIX = ".trash-"
_STALE_S = 6 * 3600


def default_zoo_dir() -> Path:
    """``$IDMM_ZOO_DIR`` or ``~/.cache/idmm/zoo``."""
    return Path(os.environ.get("IDMM_ZOO_DIR") or "~/.cache/idmm/zoo").expanduser()


def _root(zoo_dir: Path | None) -> Path:
    """The registry folder, unless it exists as something other than a folder (FilesystemError)."""
    root = zoo_dir or default_zoo_dir()
    if root.exists() and not root.is_dir():
        raise FilesystemError(
            f"zoo directory {root} is a file, not a directory; set $IDMM_ZOO_DIR to a folder (or move the file)"
        )
    return root


def check_name(name: str) -> str:
    """``name`` when it is a safe registry name; a :class:`UsageError` otherwise."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise UsageError(
            f"invalid zoo model name {name!r}: use letters, digits, '-', '_' and '.' "
            "(one path component, no '..', no leading '.' or '/')"
        )
    return name


@dataclass(frozen=True)
class LocalModel:
    """One entry of the local registry."""

    name: str
    path: Path

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS

    def config(self) -> dict[str, Any]:
        return _read_json(self.path / CONFIG)

    def source(self) -> dict[str, Any]:
        return _read_json(self.path / SOURCE)

    @property
    def idmm(self) -> dict[str, Any]:
        section = self.config().get("idmm")
        return section if isinstance(section, dict) else {}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_text_file(path))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _is_entry(path: Path) -> bool:
    return path.is_dir() and (path / WEIGHTS).is_file() and (path / CONFIG).is_file()


def find_local(name: str, zoo_dir: Path | None = None) -> LocalModel | None:
    """The local entry ``name``, or None when absent."""
    path = _root(zoo_dir) / check_name(name)
    return LocalModel(name, path) if _is_entry(path) else None


def recorded_sha256(folder: Path) -> list[tuple[str, str]]:
    """The sha256 values a model folder records for its weights: ``(where, hex)`` from source.json
    (``sha256``) and config.json (``idmm.weights_sha256``); [] when it records none."""
    out = []
    source = _read_json(folder / SOURCE).get("sha256")
    if isinstance(source, str) and source:
        out.append((str(folder / SOURCE), source))
    idmm = _read_json(folder / CONFIG).get("idmm")
    declared = idmm.get("weights_sha256") if isinstance(idmm, dict) else None
    if isinstance(declared, str) and declared:
        out.append((str(folder / CONFIG), declared))
    return out


def verify_weights(folder: Path, label: str = "") -> str | None:
    """Check a model folder's weights against every sha256 it records; returns the sha256 (None when
    nothing is recorded, so nothing could be checked).

    A mismatch (the weights changed on disk after they were installed: a flipped byte, a truncated or
    replaced file) raises :class:`~idmm_tui.zoo.errors.IntegrityError` naming the file and both hashes.
    """
    from idmm_tui.zoo.errors import IntegrityError

    weights = folder / WEIGHTS
    records = recorded_sha256(folder)
    if not records:
        return None
    actual = sha256_cached(weights)
    for where, expected in records:
        if expected != actual:
            what = label or f"model folder {folder}"
            raise IntegrityError(
                f"{what}: {weights} has sha256 {actual} but {where} records {expected}: the weights changed "
                "after they were installed; refused (restore them, e.g. idmm zoo pull NAME --force, or remove "
                "the model)"
            )
    return actual


def local_model_dir(name: str, zoo_dir: Path | None = None) -> Path:
    """The folder of the local model ``name`` (what ``init = "zoo:NAME"`` reads).

    Raises a :class:`UsageError` telling how to fetch it when it is not in the registry.
    """
    model = find_local(name, zoo_dir)
    if model is None:
        where = _root(zoo_dir)
        raise UsageError(
            f"zoo model {name!r} is not in the local registry ({where}); fetch it with: idmm zoo pull {name}"
        )
    return model.path


def list_local(zoo_dir: Path | None = None) -> list[LocalModel]:
    """Every complete entry of the registry, sorted by name (staging folders are skipped)."""
    root = _root(zoo_dir)
    if not root.is_dir():
        return []
    return [
        LocalModel(p.name, p)
        for p in sorted(root.iterdir())
        if not p.name.startswith(".") and _NAME.match(p.name) and _is_entry(p)
    ]


def write_source(folder: Path, source: dict[str, Any]) -> None:
    atomic_write_json(folder / SOURCE, source)


def _sweep_stale(root: Path) -> None:
    """Remove staging / trash folders left by a crashed process (older than a few hours)."""
    now = time.time()
    for path in root.glob(".*-*"):
        if path.name.startswith((_STAGING_PREFIX, _TRASH_PREFIX)):
            try:
                if now - path.stat().st_mtime > _STALE_S:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass


@contextmanager
def staging(zoo_dir: Path | None = None) -> Iterator[Path]:
    """A fresh folder inside the registry (same filesystem, so installing it is one rename).

    Removed on exit whatever happens (after :func:`install` it no longer exists).
    """
    root = _root(zoo_dir)
    root.mkdir(parents=True, exist_ok=True)
    _sweep_stale(root)
    path = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _chmod_like_umask(folder: Path) -> None:
    """mkdtemp / mkstemp make private 0700 / 0600 paths; an installed entry gets the usual permissions."""
    umask = os.umask(0)
    os.umask(umask)
    try:
        folder.chmod(0o777 & ~umask)
        for path in folder.iterdir():
            if path.is_file():
                path.chmod(0o666 & ~umask)
    except OSError:
        pass


def install(staged: Path, name: str, *, replace: bool, zoo_dir: Path | None = None) -> LocalModel:
    """Move a complete ``staged`` folder into the registry as ``name``.

    An existing entry is replaced only when ``replace`` (the old one is renamed aside first, then
    deleted, so readers see either the old or the new model, never a mixture).
    """
    root = zoo_dir or default_zoo_dir()
    target = root / check_name(name)
    missing = [f for f in (WEIGHTS, CONFIG) if not (staged / f).is_file()]
    if missing:
        raise UsageError(f"cannot install {name!r}: {', '.join(missing)} missing")
    _chmod_like_umask(staged)
    trash = None
    if target.exists():
        if not replace:
            raise UsageError(f"zoo model {name!r} already exists in {root}; use --force to replace it")
        trash = Path(tempfile.mkdtemp(prefix=_TRASH_PREFIX, dir=root))
        os.replace(target, trash / "old")
    try:
        os.replace(staged, target)
    except OSError:
        if trash is not None:  # put the old entry back
            os.replace(trash / "old", target)
        raise
    finally:
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    return LocalModel(name, target)


def remove(name: str, zoo_dir: Path | None = None) -> Path:
    """Delete the local entry ``name`` (UsageError when absent)."""
    path = local_model_dir(name, zoo_dir)
    trash = Path(tempfile.mkdtemp(prefix=_TRASH_PREFIX, dir=path.parent))
    os.replace(path, trash / "old")
    shutil.rmtree(trash, ignore_errors=True)
    return path
