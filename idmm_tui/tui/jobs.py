"""Cluster jobs of sweep cells, as the sweep manifests record them (``RUNS/sweeps/*.json``; no Textual).

``idmm sweep --executor slurm`` writes each cell's job (id, state, log files) into its group's
manifest. The dashboard's thread workers read them here — a manifest is parsed again only when its
inode, mtime or size changed — to show a job column, the job of a run, and the cells still queued
(no run directory yet). The states are those the sweep last saw (``idmm sweep --group G --status``
refreshes them; a sweep started with ``--wait`` does so as it follows its jobs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from idmm_tui.fsutil import read_text_file


def job_state(record: dict[str, Any]) -> str:
    return str(record.get("state") or "?").split()[0].upper()


def job_text(record: dict[str, Any] | None) -> str:
    """``4242_3 RUNNING`` (empty without a job)."""
    if not record:
        return ""
    return f"{record.get('job_id', '?')} {job_state(record)}"


def is_queued(record: dict[str, Any]) -> bool:
    return job_state(record) in ("SUBMITTED", "PENDING", "REQUEUED", "CONFIGURING")


class JobIndex:
    """Job records by cell (run) name, from every manifest of ``runs_dir/sweeps``; ``refresh()`` re-reads
    what changed and says whether anything did."""

    def __init__(self, runs_dir: Path) -> None:
        self.folder = Path(runs_dir) / "sweeps"
        self._files: dict[str, tuple[tuple[int, int, int], dict[str, dict[str, Any]]]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}

    def refresh(self) -> bool:
        try:
            with os.scandir(self.folder) as entries:
                names = sorted(e.name for e in entries if e.name.endswith(".json") and e.is_file())
        except OSError:
            names = []
        files = {}
        changed = set(names) != set(self._files)
        for name in names:
            try:
                st = os.stat(self.folder / name)
            except OSError:
                continue
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            old = self._files.get(name)
            if old is not None and old[0] == key:
                files[name] = old
                continue
            files[name] = (key, _jobs_of(self.folder / name))
            changed = True
        self._files = files
        if changed:
            self.jobs = {cell: record for _, jobs in files.values() for cell, record in jobs.items()}
        return changed

    def job(self, name: str) -> dict[str, Any] | None:
        return self.jobs.get(name)


def _jobs_of(path: Path) -> dict[str, dict[str, Any]]:
    """The ``jobs`` of a manifest, only records of the right shape (``{}`` for anything else)."""
    try:
        data = json.loads(read_text_file(path))
    except (OSError, ValueError):
        return {}
    jobs = data.get("jobs") if isinstance(data, dict) else None
    if not isinstance(jobs, dict):
        return {}
    return {
        str(cell): {k: v for k, v in record.items() if isinstance(v, str | int | float)}
        for cell, record in jobs.items()
        if isinstance(cell, str) and isinstance(record, dict)
    }
