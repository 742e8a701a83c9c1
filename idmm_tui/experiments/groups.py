"""Run groups: the runs of one sweep, addressed by the sweep's name.

A sweep writes its manifest to ``<runs dir>/sweeps/<group>.json`` and its runs as ordinary run
directories ``<runs dir>/<group>.<cell>`` (so ``idmm runs list`` and the dashboard see them). Each
run's ``summary.json`` also carries ``group`` and ``cell`` (the axis values of its grid cell).

``resolve_refs`` turns what a user types after ``idmm report`` / ``idmm viz params`` (group names,
run names, run paths) into run directories.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from idmm_tui.errors import CorruptFileError, RunStateError, UsageError, describe_os_error
from idmm_tui.fsutil import atomic_write_json, read_text_file
from idmm_tui.runs.store import RunDir, open_run_dir, read_json, remove_stale_temps, resolve_run, valid_run_name
from idmm_tui.textsafe import safe_text

SWEEPS_DIR = "sweeps"
MANIFEST_FORMAT = "idmm-sweep/1"
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$")


@dataclass(frozen=True)
class Cell:
    """One grid point: the axis values (dotted recipe keys → value text) and its run name."""

    name: str
    values: dict[str, str]
    overrides: tuple[str, ...] = ()
    role: str = "run"  # "run", or for transfer sweeps "source" (pretraining only) / "target"


@dataclass
class Group:
    """A sweep manifest: what was asked, and the cells it expands to (in run order)."""

    name: str
    runs_dir: Path
    spec: dict[str, Any]
    cells: list[Cell] = field(default_factory=list)
    #: Cells run by a cluster scheduler (``idmm sweep --executor slurm``): cell name -> job record
    #: (executor, job_id, stdout, stderr, state, submitted_at, updated_at; see experiments/cluster.py).
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The executor of those jobs and its parameters (``{"kind": "slurm", "folder": …, "parameters": …}``).
    executor: dict[str, Any] = field(default_factory=dict)

    @property
    def manifest(self) -> Path:
        return manifest_path(self.runs_dir, self.name)

    def run_path(self, cell: Cell) -> Path:
        return self.runs_dir / cell.name

    def runs(self, role: str | None = "run") -> list[RunDir]:
        """The cells' run directories that exist (``role=None``: every role)."""
        out = []
        for cell in self.cells:
            if role is not None and cell.role != role:
                continue
            path = self.run_path(cell)
            if (path / "summary.json").is_file():
                out.append(RunDir(path))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "name": self.name,
            **self.spec,
            "cells": [
                {"name": c.name, "values": c.values, "overrides": list(c.overrides), "role": c.role} for c in self.cells
            ],
            **({"executor": self.executor} if self.executor else {}),
            **({"jobs": self.jobs} if self.jobs else {}),
        }

    def save(self) -> None:
        self.manifest.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.manifest.parent, older_than_s=3600)  # of writes a kill -9 interrupted
        atomic_write_json(self.manifest, self.to_json())


def check_group_name(name: str) -> str:
    if not _NAME_OK.match(name):
        raise UsageError(f"invalid group name {name!r}: use letters, digits and '-', '_', '.', '+', '='")
    return name


def manifest_path(runs_dir: Path, name: str) -> Path:
    return runs_dir / SWEEPS_DIR / f"{name}.json"


def _cell_problem(cell: Any) -> str | None:
    if not isinstance(cell, dict) or not isinstance(cell.get("name"), str):
        return "a cell without a name"
    if not valid_run_name(cell["name"]):
        return f"cell name {safe_text(cell['name'])!r} is not a valid run name"
    values = cell.get("values", {})
    if not isinstance(values, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in values.items()):
        return f"cell {cell['name']}: 'values' is not an object of strings"
    overrides = cell.get("overrides", [])
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        return f"cell {cell['name']}: 'overrides' is not a list of strings"
    if cell.get("role", "run") not in ("run", "source"):
        return f"cell {cell['name']}: unknown role {safe_text(cell.get('role'))!r}"
    return None


def manifest_problem(data: Any) -> str | None:
    """Why a parsed sweep manifest cannot be used, or None."""
    if not isinstance(data, dict):
        return "not a JSON object"
    if data.get("format") != MANIFEST_FORMAT:
        return f"format is {safe_text(data.get('format'))!r}, not {MANIFEST_FORMAT!r}"
    if not isinstance(data.get("recipe", ""), str):
        return "'recipe' is not a string"
    for key in ("axes", "sources"):
        items = data.get(key) or []
        if not isinstance(items, list) or not all(
            isinstance(a, dict)
            and isinstance(a.get("key"), str)
            and isinstance(a.get("values"), list)
            and all(isinstance(v, str) for v in a["values"])
            for a in items
        ):
            return f"{key!r} is not a list of {{key, values}} objects"
    seeds = data.get("seeds")
    if seeds is not None and not (isinstance(seeds, list) and all(type(x) is int for x in seeds)):
        return "'seeds' is not a list of integers"
    overrides = data.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        return "'overrides' is not a list of strings"
    cells = data.get("cells")
    if not isinstance(cells, list):
        return "'cells' is not a list"
    if not isinstance(data.get("executor", {}), dict):
        return "'executor' is not an object"
    jobs = data.get("jobs", {})
    if not isinstance(jobs, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in jobs.items()):
        return "'jobs' is not an object of job records"
    return next((p for p in map(_cell_problem, cells) if p), None)


def load_group(name: str, runs_dir: Path) -> Group:
    """The group called ``name`` under ``runs_dir``; RunStateError when there is none, CorruptFileError
    (saying why) when its manifest exists but cannot be used."""
    path = manifest_path(runs_dir, name)
    if not path.exists():
        known = ", ".join(list_groups(runs_dir)) or "none"
        raise RunStateError(f"no sweep group {name!r} in {runs_dir} (no {path}); groups there: {known}")
    try:
        text = read_text_file(path)
        data = json.loads(text) if text.strip() else None
        problem = "the file is empty" if data is None else manifest_problem(data)
    except OSError as exc:
        problem = describe_os_error(exc, "it cannot be read")
    except ValueError as exc:  # not UTF-8, not JSON
        problem = f"not valid JSON ({exc})"
    if problem:
        raise CorruptFileError(
            f"sweep manifest {path} of group {name!r} is damaged: {problem}. Restore it, or start the sweep again "
            "under another --group"
        )
    cells = [
        Cell(c["name"], dict(c.get("values", {})), tuple(c.get("overrides", ())), c.get("role", "run"))
        for c in data.get("cells", [])
    ]
    spec = {k: v for k, v in data.items() if k not in ("format", "name", "cells", "jobs", "executor")}
    return Group(
        name=name,
        runs_dir=runs_dir,
        spec=spec,
        cells=cells,
        jobs=dict(data.get("jobs") or {}),
        executor=dict(data.get("executor") or {}),
    )


def list_groups(runs_dir: Path) -> list[str]:
    folder = runs_dir / SWEEPS_DIR
    if not folder.is_dir():
        return []
    return sorted(safe_text(p.stem) for p in folder.glob("*.json") if read_json(p).get("format") == MANIFEST_FORMAT)


def resolve_refs(refs: list[str], runs_dir: Path, *, role: str | None = "run") -> tuple[list[RunDir], list[Group]]:
    """Runs named by ``refs`` (group names expand to their runs), in order, without duplicates.

    Returns the runs and the groups that were named. A reference that is neither a group nor a
    run directory is a UsageError naming what exists.
    """
    runs: list[RunDir] = []
    groups: list[Group] = []
    for ref in refs:
        if manifest_path(runs_dir, ref).is_file() and "/" not in ref:
            group = load_group(ref, runs_dir)
            groups.append(group)
            runs.extend(group.runs(role))
            continue
        try:
            runs.append(resolve_run(ref, runs_dir, unreadable_ok=True))
        except RunStateError:
            known = list_groups(runs_dir)
            hint = f" Groups in {runs_dir}: {', '.join(known)}." if known else ""
            raise UsageError(f"{ref!r} is neither a sweep group nor a run directory.{hint}") from None
    seen: set[Path] = set()
    unique = []
    for run in runs:
        key = run.path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(open_run_dir(run.path, unreadable_ok=True))  # a damaged one is reported as such
    return unique, groups
