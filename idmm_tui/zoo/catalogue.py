"""The zoo catalogue: which named models exist, where they live on the Hub, and what was measured.

The catalogue is the repository's ``zoo/catalogue.toml`` (one ``[models.NAME]`` table per model).
It is found, in order, at:

1. ``$IDMM_ZOO_CATALOGUE`` (any file: a fork's own catalogue, a test's);
2. ``<repo>/zoo/catalogue.toml`` next to the package (a source checkout or an editable install),
   else the copy a wheel ships in ``idmm_tui/_shipped/zoo/`` (see :mod:`idmm_tui.shipped`).

Each entry has a ``status``: ``published`` (on the Hub; ``sha256`` of model.safetensors and
``revision`` pinned: a pull that gets other bytes is refused), ``local-only`` (produced and measured
here, reproducible with the recipe it names, but not uploaded) or ``not-published`` (planned; no
weights, and therefore no metrics: only measured numbers ever go into ``metrics``).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from idmm_tui.errors import UsageError
from idmm_tui.fsutil import read_text_file
from idmm_tui.zoo.registry import check_name

STATUSES = ("published", "local-only", "not-published")
KINDS = ("backbone", "finetuned")
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_KEYS = {
    "repo",
    "revision",
    "status",
    "backbone",
    "method",
    "dataset",
    "stage",
    "kind",
    "resolution",
    "sha256",
    "metrics",
    "recipe",
    "source_run",
    "paper",
    "notes",
}


def is_repo_id(text: str) -> bool:
    """``ORG/NAME`` with Hub-legal characters (no ``..``)."""
    return bool(_REPO.match(text)) and ".." not in text


@dataclass(frozen=True)
class CatalogueEntry:
    """One named model of the catalogue."""

    name: str
    repo: str
    status: str
    backbone: str
    method: str
    dataset: str
    stage: str
    kind: str
    resolution: int
    revision: str = "main"
    sha256: str = ""
    metrics: dict[str, float] = field(default_factory=dict, hash=False)
    recipe: str = ""
    source_run: str = ""
    paper: str = ""
    notes: str = ""

    @property
    def pullable(self) -> bool:
        return self.status == "published"

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def catalogue_path() -> Path | None:
    """Where the catalogue is read from (None when there is none)."""
    env = os.environ.get("IDMM_ZOO_CATALOGUE")
    if env:
        return Path(env).expanduser()
    from idmm_tui.shipped import catalogue_file

    return catalogue_file()  # the checkout's zoo/catalogue.toml, or the copy a wheel ships


def _entry(name: str, raw: Any, source: Path) -> CatalogueEntry:
    where = f"{source}: models.{name}"
    if not isinstance(raw, dict):
        raise UsageError(f"{where} must be a table")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}")
    try:
        check_name(name)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    missing = [
        k for k in ("repo", "status", "backbone", "method", "dataset", "stage", "kind", "resolution") if k not in raw
    ]
    if missing:
        raise UsageError(f"{where}: missing key(s) {', '.join(missing)}")
    wrong = [k for k, v in raw.items() if k not in ("metrics", "resolution") and not isinstance(v, str)]
    if isinstance(raw["resolution"], bool) or not isinstance(raw["resolution"], int):
        wrong.append("resolution")
    if wrong:
        raise UsageError(f"{where}: {', '.join(wrong)} must be {'a string' if wrong != ['resolution'] else 'a number'}")
    entry = CatalogueEntry(name=name, **{k: v for k, v in raw.items()})
    if entry.status not in STATUSES:
        raise UsageError(f"{where}: status must be one of {', '.join(STATUSES)} (got {entry.status!r})")
    if entry.kind not in KINDS:
        raise UsageError(f"{where}: kind must be one of {', '.join(KINDS)} (got {entry.kind!r})")
    if not is_repo_id(entry.repo):
        raise UsageError(f"{where}: repo must be ORG/NAME (got {entry.repo!r})")
    if not isinstance(entry.metrics, dict) or not all(isinstance(v, int | float) for v in entry.metrics.values()):
        raise UsageError(f"{where}: metrics must be a table of numbers")
    if entry.status == "not-published" and (entry.metrics or entry.sha256):
        raise UsageError(f"{where}: a not-published model has no weights, so no sha256 and no measured metrics")
    if entry.status != "not-published" and not _SHA256.match(entry.sha256):
        raise UsageError(f"{where}: sha256 must be the 64-hex sha256 of model.safetensors")
    return entry


def load_catalogue(path: Path | None = None) -> dict[str, CatalogueEntry]:
    """Name -> entry ({} when there is no catalogue). A malformed catalogue is a UsageError."""
    path = path or catalogue_path()
    if path is None:
        return {}
    try:
        raw = tomllib.loads(read_text_file(path))
    except FileNotFoundError:
        raise UsageError(f"zoo catalogue {path} does not exist (check $IDMM_ZOO_CATALOGUE)") from None
    except (OSError, ValueError) as exc:  # not UTF-8 and not TOML are ValueErrors
        raise UsageError(f"zoo catalogue {path} is unreadable: {exc}") from None
    models = raw.get("models", {})
    if not isinstance(models, dict):
        raise UsageError(f"{path}: 'models' must be a table of [models.NAME] tables")
    return {name: _entry(name, value, path) for name, value in models.items()}


def find_by_repo(catalogue: dict[str, CatalogueEntry], repo: str) -> CatalogueEntry | None:
    """The catalogue entry published as ``repo`` (case-insensitive, as on the Hub)."""
    return next((e for e in catalogue.values() if e.repo.lower() == repo.lower()), None)
