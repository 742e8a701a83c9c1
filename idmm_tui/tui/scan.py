"""Listing a runs directory for the runs table, cheaply enough to repeat every second (no Textual).

A summary.json is read again only when its inode, mtime or size changed, and a run's table row is
recomputed only when its summary changed or while it runs (its duration grows, its process may die).
Runs directories are listed with ``os.scandir`` (one ``stat`` per run), in name order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idmm_tui.runs.store import RUN_MARKER, SUMMARY_FILE, read_json
from idmm_tui.tui.jobs import JobIndex, is_queued, job_text
from idmm_tui.tui.runs_table import RunRow, queued_row, run_row


@dataclass
class _Seen:
    key: tuple[int, int, int]
    summary: dict[str, Any] | None  # None: not a run directory of ours
    row: RunRow | None = None
    job: str = ""  # the job text the row was made with


class RunsScanner:
    """``scan()`` returns the rows and summaries of every run; state is kept between calls."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = Path(runs_dir)
        self._seen: dict[Path, _Seen] = {}
        self.reads = 0  # summary.json files read (for tests)
        self.jobs = JobIndex(self.runs_dir)  # cluster jobs of sweep cells (sweeps/*.json, re-read when changed)
        self._queued: dict[Path, RunRow] = {}

    def scan(self) -> tuple[list[RunRow], dict[Path, dict[str, Any]]]:
        """Raises OSError when the runs directory exists but cannot be read."""
        if not self.runs_dir.is_dir():
            self._seen.clear()
            return [], {}
        self.jobs.refresh()
        with os.scandir(self.runs_dir) as entries:
            dirs = sorted(entry.path for entry in entries if entry.is_dir())
        rows, summaries = [], {}
        seen: dict[Path, _Seen] = {}
        for name in dirs:
            path = Path(name)
            try:
                st = os.stat(path / SUMMARY_FILE)
            except OSError:
                continue
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            entry = self._seen.get(path)
            if entry is None or entry.key != key:
                summary = read_json(path / SUMMARY_FILE)
                self.reads += 1
                if not summary and entry is not None and entry.summary is not None:
                    summary = entry.summary  # half-written: keep what we had (read again when it changes)
                entry = _Seen(key, summary if summary.get("format") == RUN_MARKER else None)
            seen[path] = entry
            if entry.summary is None:
                continue
            job = job_text(self.jobs.job(path.name))
            if entry.row is None or entry.summary.get("status") == "running" or job != entry.job:
                entry.row, entry.job = run_row(path, entry.summary, job), job
            rows.append(entry.row)
            summaries[path] = entry.summary
        self._seen = seen
        queued = {}
        for name, record in self.jobs.jobs.items():  # cells whose job has not made its run directory yet
            path = self.runs_dir / name
            if path in seen or not is_queued(record):
                continue
            old, text = self._queued.get(path), job_text(record)
            queued[path] = old if old is not None and old.job == text else queued_row(path, text)
            rows.append(queued[path])
        self._queued = queued
        return rows, summaries
