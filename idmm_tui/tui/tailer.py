"""Following a run directory as the training process writes it (no Textual here).

The TUI's thread workers call :meth:`RunWatcher.poll` a few times a second and post what it returns
(Toolong's pattern: one merged message per poll, not one per line). Only complete lines are read:
the partial line a writer is in the middle of is left for the next poll, and a malformed line is
skipped, never fatal. A file that shrinks or is replaced (``idmm run --resume`` rewrites
``metrics.jsonl`` atomically without the part it will redo) starts the tail over, and the poll says
``reset`` so that the viewer drops what it had.

A long ``metrics.jsonl`` is read from its end first: the first poll returns its last
``TAIL_FIRST`` bytes (the curves appear at once), and each later poll also returns an older chunk,
twice the size of the previous one (``older``), until the file's start is reached.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from idmm_tui.runs.store import RunDir, read_json
from idmm_tui.tui.curves import StageColumns, columnize
from idmm_tui.tui.jobs import JobIndex

#: Bytes read at most per poll and file: a huge file is caught up over several polls, so that one
#: poll never holds a worker (or the memory) for long.
MAX_READ = 8 << 20
#: Bytes of a metrics file read first, from its end (~850 lines).
TAIL_FIRST = 128 << 10
#: The largest older chunk read in one poll (reading and decoding it holds the GIL: keep it short).
MAX_OLDER = 8 << 20
#: Lines parsed by one ``json.loads`` call (it holds the GIL: ~10 ms).
PARSE_BATCH = 2000


class FileTail:
    """The complete lines appended to a file since the last call.

    ``tail_bytes``: start that far from the end (a log: older lines are never read).
    ``backfill``: start ``TAIL_FIRST`` bytes from the end, and read what came before with :meth:`older`.
    """

    def __init__(self, path: Path, *, start_at_end: bool = False, tail_bytes: int = 0, backfill: bool = False):
        self.path = Path(path)
        self._offset = 0
        self._head = 0  # with backfill: where the lines read so far begin
        self._ident: tuple[int, int] | None = None
        self._start_at_end = start_at_end
        self._tail_bytes = tail_bytes
        self._backfill = backfill
        self._skip_first = False  # started in the middle of a line

    @property
    def has_older(self) -> bool:
        """Lines before those read so far remain (read them with :meth:`older`)."""
        return self._head > 0

    def poll(self) -> tuple[bool, list[str]]:
        """``(reset, lines)``: ``reset`` when the file was replaced, truncated or removed."""
        try:
            st = os.stat(self.path)
        except OSError:
            reset = self._ident is not None
            self._ident, self._offset, self._head = None, 0, 0
            return reset, []
        ident = (st.st_dev, st.st_ino)
        reset = False
        if self._ident is not None and (ident != self._ident or st.st_size < self._offset):
            self._ident, self._offset, self._head, reset = None, 0, 0, True
            self._skip_first = False
        if self._ident is None:
            self._ident = ident
            if self._backfill and st.st_size > TAIL_FIRST:
                self._offset = self._head = st.st_size - TAIL_FIRST
                self._skip_first = True
            elif self._tail_bytes and st.st_size > self._tail_bytes:
                self._offset = st.st_size - self._tail_bytes
                self._skip_first = True
            elif self._start_at_end:
                self._offset = st.st_size
        if st.st_size <= self._offset:
            return reset, []
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read(min(st.st_size - self._offset, MAX_READ))
        except OSError:
            return reset, []
        start = 0
        if self._skip_first:  # the first line read is partial: it belongs to the older part
            cut = chunk.find(b"\n")
            if cut < 0:
                if len(chunk) >= MAX_READ:
                    self._offset += len(chunk)
                return reset, []
            start = cut + 1
            self._skip_first = False
            if self._backfill:
                self._head = self._offset + start
        end = chunk.rfind(b"\n")
        if end < start:
            self._offset += start
            if len(chunk) >= MAX_READ:  # one enormous line: skip it rather than stall forever
                self._offset += len(chunk) - start
            return reset, []
        self._offset += end + 1
        return reset, chunk[start : end + 1].decode("utf-8", errors="replace").splitlines()

    def older(self, max_bytes: int) -> list[str]:
        """Up to ``max_bytes`` of complete lines just before those read so far (oldest first)."""
        if self._head <= 0:
            return []
        try:
            with open(self.path, "rb") as handle:
                if (os.fstat(handle.fileno()).st_dev, os.fstat(handle.fileno()).st_ino) != self._ident:
                    return []  # replaced: the next poll starts over
                start = max(0, self._head - max_bytes)
                while True:
                    handle.seek(start)
                    chunk = handle.read(self._head - start)
                    cut = chunk.find(b"\n") if start > 0 else -1
                    if start == 0 or cut >= 0:
                        break
                    start = max(0, start - max_bytes)  # a line longer than max_bytes: read further back
        except OSError:
            return []
        self._head = start + cut + 1
        return chunk[cut + 1 :].decode("utf-8", errors="replace").splitlines()


def parse_metrics_lines(lines: list[str]) -> list[dict[str, Any]]:
    """JSON objects of ``lines``, skipping blank and malformed ones (the rule of ``store.iter_metrics``).

    Lines that each hold one object are parsed ``PARSE_BATCH`` at a time as one JSON array (several
    times faster than one ``json.loads`` per line, and short enough that the UI thread gets the GIL
    between batches); any doubt (an odd line, a count that does not match) parses line by line.
    """
    lines = [line for line in lines if line.strip()]
    out: list[dict[str, Any]] = []
    for start in range(0, len(lines), PARSE_BATCH):
        out += _parse_batch(lines[start : start + PARSE_BATCH])
    return out


def _parse_batch(lines: list[str]) -> list[dict[str, Any]]:
    if all(line.lstrip().startswith("{") and line.rstrip().endswith("}") for line in lines):
        try:
            records = json.loads("[" + ",".join(lines) + "]")
        except ValueError:
            records = None
        if records is not None and len(records) == len(lines):
            return [record for record in records if isinstance(record, dict)]
    out = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


@dataclass
class RunPoll:
    """What changed in a run directory since the previous poll."""

    path: Path
    reset: bool = False
    records: list[dict[str, Any]] = field(default_factory=list)  # new metrics records
    columns: dict[str, StageColumns] = field(default_factory=dict)  # the records by stage, as columns
    older: dict[str, StageColumns] = field(default_factory=dict)  # records from before those read so far
    backfilling: bool = False  # older records remain to be read
    summary: dict[str, Any] | None = None  # only when summary.json changed
    log_lines: list[str] = field(default_factory=list)
    log_reset: bool = False
    recipe_text: str | None = None  # once, when first readable
    exists: bool = True
    job: dict[str, Any] | None = None  # the run's cluster job record, only when it changed ({}: none)

    @property
    def empty(self) -> bool:
        return not (
            self.reset
            or self.records
            or self.older
            or self.summary is not None
            or self.log_lines
            or self.log_reset
            or self.recipe_text is not None
            or self.job is not None
        )


class RunWatcher:
    """Polls one run directory: new metrics records, summary changes, new log lines, the recipe."""

    def __init__(self, path: Path, *, log_tail_bytes: int = 64 << 10):
        self.run = RunDir(Path(path))
        self._metrics = FileTail(self.run.metrics, backfill=True)
        self._log = FileTail(self.run.log, tail_bytes=log_tail_bytes)
        self._summary_key: tuple[int, int, int] | None = None
        self._recipe_seen = False
        self._existed = False
        self._older_bytes = TAIL_FIRST
        self._tail_sent = False
        self._jobs = JobIndex(self.run.path.parent)  # the sweep manifests beside the run
        self._job: dict[str, Any] = {}

    def poll(self) -> RunPoll:
        out = RunPoll(self.run.path)
        if self._jobs.refresh():
            job = self._jobs.job(self.run.name) or {}
            if job != self._job:
                self._job = out.job = job
        if not self.run.path.is_dir():
            out.exists = False
            out.reset = self._existed
            self._existed = False
            return out
        self._existed = True
        out.reset, lines = self._metrics.poll()
        if out.reset:
            self._older_bytes, self._tail_sent = TAIL_FIRST, False
        out.records = parse_metrics_lines(lines)
        out.columns = columnize(out.records)
        if self._metrics.has_older and self._tail_sent:  # (the end of the file goes first, on its own)
            self._older_bytes = min(2 * self._older_bytes, MAX_OLDER)
            out.older = columnize(parse_metrics_lines(self._metrics.older(self._older_bytes)))
        self._tail_sent = True
        out.backfilling = self._metrics.has_older
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
