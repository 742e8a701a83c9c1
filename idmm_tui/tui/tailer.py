"""Following a run directory as the training process writes it (no Textual here).

The TUI's thread workers call :meth:`RunWatcher.poll` a few times a second and post what it returns
as one message (Toolong's pattern: one merged message per poll, not one per line). Only complete
lines are read: the partial line a writer is in the middle of is left for the next poll, and a
malformed line is skipped, never fatal. A file that shrinks or is replaced (``idmm run --resume``
rewrites ``metrics.jsonl`` atomically without the part it will redo) starts the tail over, and the
poll says ``reset`` so that the viewer drops what it had.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from idmm_tui.runs.store import RunDir, read_json
from idmm_tui.tui.curves import StageColumns, columnize

#: Bytes read at most per poll and file: a huge file is caught up over several polls, so that one
#: poll never holds a worker (or the memory) for long.
MAX_READ = 8 << 20


class FileTail:
    """The complete lines appended to a file since the last call."""

    def __init__(self, path: Path, *, start_at_end: bool = False, tail_bytes: int = 0):
        self.path = Path(path)
        self._offset = 0
        self._ident: tuple[int, int] | None = None
        self._start_at_end = start_at_end
        self._tail_bytes = tail_bytes
        self._skip_first = False  # started in the middle of a line

    def poll(self) -> tuple[bool, list[str]]:
        """``(reset, lines)``: ``reset`` when the file was replaced, truncated or removed."""
        try:
            st = os.stat(self.path)
        except OSError:
            reset = self._ident is not None
            self._ident, self._offset = None, 0
            return reset, []
        ident = (st.st_dev, st.st_ino)
        reset = False
        if self._ident is None:
            self._ident = ident
            if self._tail_bytes and st.st_size > self._tail_bytes:
                self._offset = st.st_size - self._tail_bytes
                self._skip_first = True
            elif self._start_at_end:
                self._offset = st.st_size
        elif ident != self._ident or st.st_size < self._offset:
            self._ident, self._offset, reset = ident, 0, True
            self._skip_first = False
        if st.st_size <= self._offset:
            return reset, []
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read(min(st.st_size - self._offset, MAX_READ))
        except OSError:
            return reset, []
        end = chunk.rfind(b"\n")
        if end < 0:
            if len(chunk) >= MAX_READ:  # one enormous line: skip it rather than stall forever
                self._offset += len(chunk)
            return reset, []
        self._offset += end + 1
        lines = chunk[: end + 1].decode("utf-8", errors="replace").splitlines()
        if self._skip_first:
            self._skip_first = False
            lines = lines[1:]
        return reset, lines


def parse_metrics_lines(lines: list[str]) -> list[dict[str, Any]]:
    """JSON objects of ``lines``, skipping blank and malformed ones (the rule of ``store.iter_metrics``)."""
    records = []
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


@dataclass
class RunPoll:
    """What changed in a run directory since the previous poll."""

    path: Path
    reset: bool = False
    records: list[dict[str, Any]] = field(default_factory=list)
    columns: dict[str, StageColumns] = field(default_factory=dict)  # the records by stage, as columns
    summary: dict[str, Any] | None = None  # only when summary.json changed
    log_lines: list[str] = field(default_factory=list)
    log_reset: bool = False
    recipe_text: str | None = None  # once, when first readable
    exists: bool = True

    @property
    def empty(self) -> bool:
        return not (
            self.reset
            or self.records
            or self.summary is not None
            or self.log_lines
            or self.log_reset
            or self.recipe_text is not None
        )


class RunWatcher:
    """Polls one run directory: new metrics records, summary changes, new log lines, the recipe."""

    def __init__(self, path: Path, *, log_tail_bytes: int = 64 << 10):
        self.run = RunDir(Path(path))
        self._metrics = FileTail(self.run.metrics)
        self._log = FileTail(self.run.log, tail_bytes=log_tail_bytes)
        self._summary_key: tuple[int, int, int] | None = None
        self._recipe_seen = False
        self._existed = False

    def poll(self) -> RunPoll:
        out = RunPoll(self.run.path)
        if not self.run.path.is_dir():
            out.exists = False
            out.reset = self._existed
            self._existed = False
            return out
        self._existed = True
        out.reset, lines = self._metrics.poll()
        out.records = parse_metrics_lines(lines)
        out.columns = columnize(out.records)
        try:
            st = os.stat(self.run.summary)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        if key is not None and key != self._summary_key:
            summary = read_json(self.run.summary)
            if summary:  # a half-written file reads as {}: try again next poll
                self._summary_key = key
                out.summary = summary
        out.log_reset, out.log_lines = self._log.poll()
        if not self._recipe_seen:
            try:
                out.recipe_text = self.run.recipe.read_text(encoding="utf-8", errors="replace")
                self._recipe_seen = True
            except OSError:
                pass
        return out
