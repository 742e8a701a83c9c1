"""The runs table: every run of the runs directory, live; the dashboard's home screen."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import get_current_worker

from idmm_tui.tui.format import STATUS_ICON, STATUS_STYLE, fmt_duration, fmt_num, fmt_started
from idmm_tui.tui.messages import (
    OpenCompare,
    OpenLaunch,
    OpenRun,
    OpenZoo,
    ResumeRequested,
    RunChanged,
    RunsScanned,
    StopRequested,
)
from idmm_tui.tui.runs_table import COLUMNS, JOB_COLUMN, RunRow, sort_rows
from idmm_tui.tui.scan import RunsScanner
from idmm_tui.tui.screens.base import DashboardScreen
from idmm_tui.tui.widgets.runs_table import RunsTable
from idmm_tui.tui.widgets.system import SystemPane
from idmm_tui.tui.widgets.text_pane import TextPane


def status_text(status: str) -> Text:
    return Text(f"{STATUS_ICON.get(status, ' ')} {status}", style=STATUS_STYLE.get(status, ""))


#: Table column keys, in the order of ``RunsScreen._cells`` (then ``job`` when some run is a cluster job).
CELL_KEYS = ("mark", *(key for key, _ in COLUMNS))
#: Rows added plus removed above which the table is rebuilt rather than edited row by row.
MAX_ROW_CHANGES = 20
#: Seconds of pause in typing the filter before the table follows it.
FILTER_DELAY = 0.15


class RunsScreen(DashboardScreen):
    """Runs table: sort, filter, mark for comparison, open, stop, resume, launch."""

    HELP_TITLE = "Runs table"
    HELP_ORDER = 10
    HELP_EXTRA = (("up,down", "move"), ("click header", "sort"))

    BINDINGS = [
        Binding("enter", "open", "Open", tooltip="open the run's live view"),
        Binding("space", "mark", "Mark", tooltip="mark / unmark the run for comparison"),
        Binding("c", "compare", "Compare", tooltip="compare the marked runs"),
        Binding("slash", "filter", "Filter", tooltip="filter: rows where every word appears"),
        Binding("o", "sort", "Sort", show=False, tooltip="sort by the next column"),
        Binding("O", "sort_reverse", "Reverse sort", show=False, tooltip="reverse the sort order"),
        Binding("n", "launch", "New", tooltip="launch a new run"),
        Binding("k", "stop", "Stop", tooltip="stop the run (graceful: checkpoint kept)"),
        Binding("r", "resume", "Resume", tooltip="resume an interrupted or failed run"),
        Binding("u", "push", "Push", show=False, tooltip="push the run's finished stage to the zoo"),
        Binding("z", "zoo", "Zoo", tooltip="the model zoo: catalogue, local registry, pull, push"),
        Binding("escape", "clear", "Clear", show=False, tooltip="clear the filter, then the marks"),
    ]

    AUTO_FOCUS = "#runs"

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[RunRow] = []
        self.summaries: dict[Path, dict[str, Any]] = {}
        self.marked: list[Path] = []
        self.query_text = ""
        self.sort_column = "started_at"
        self.sort_reverse = True
        self.scanned = False
        self.error = ""
        self._shown: dict[str, tuple] | None = None  # row key -> cells, in the table's order
        self._cells_of: dict[tuple[RunRow, bool], tuple] = {}  # cells of a row (and its mark), made once
        self._visible_count = 0
        self._with_job = False  # the job column is shown (some run is a cluster job)
        self._filter_timer: Timer | None = None
        self._wake = threading.Event()

    # -- layout ----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield TextPane(id="runs-title", classes="title-bar")
        yield Input(
            placeholder="filter: words that must all appear (status, name, backbone, dataset…)",
            id="filter",
            classes="hidden",
        )
        yield RunsTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static(id="runs-empty", classes="hint hidden")
        yield SystemPane(id="system", classes="" if self.dashboard.show_system else "hidden")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self._add_columns()
        self._update_title()
        self.scan_loop()

    def on_screen_resume(self) -> None:
        self._wake.set()

    def on_unmount(self) -> None:
        self._wake.set()  # the scan worker, cancelled, stops waiting

    @property
    def table(self) -> RunsTable:
        return self.query_one("#runs", RunsTable)

    def _columns(self) -> tuple[tuple[str, str], ...]:
        return (*COLUMNS, JOB_COLUMN) if self._with_job else COLUMNS

    def _cell_keys(self) -> tuple[str, ...]:
        return (*CELL_KEYS, JOB_COLUMN[0]) if self._with_job else CELL_KEYS

    def _labels(self) -> dict[str, str]:
        """Column titles, the sorted column's with its arrow."""
        arrow = " ▼" if self.sort_reverse else " ▲"
        return {key: title + (arrow if key == self.sort_column else "") for key, title in self._columns()}

    def _add_columns(self) -> None:
        table = self.table
        table.clear(columns=True)
        table.add_column(" ", key="mark", width=1)
        for key, label in self._labels().items():
            table.add_column(label, key=key)
        self._shown = None

    # -- scanning (thread worker) ---------------------------------------------------------------

    @work(thread=True, exclusive=True, group="scan", exit_on_error=False)
    def scan_loop(self) -> None:
        worker = get_current_worker()
        scanner = RunsScanner(self.dashboard.runs_dir)
        last: Any = None
        while not worker.is_cancelled:
            if self.app.screen is self or last is None:
                try:
                    rows, summaries = scanner.scan()
                    error = ""
                except OSError as exc:  # the runs directory vanished, permissions…: say so, keep going
                    rows, summaries, error = [], {}, f"cannot read {self.dashboard.runs_dir}: {exc}"
                if (rows, summaries, error) != last:  # (unchanged summaries are the same objects: cheap)
                    last = (rows, summaries, error)
                    self.post_message(RunsScanned(rows, summaries, error))
            self._wake.wait(self.dashboard.scan_interval)
            self._wake.clear()

    def on_runs_scanned(self, message: RunsScanned) -> None:
        self.rows, self.summaries, self.error = message.rows, message.summaries, message.error
        self.scanned = True
        with_job = any(row.job for row in self.rows)
        if with_job != self._with_job:  # a sweep on a cluster appeared (or went): a job column
            self._with_job = with_job
            self._cells_of.clear()
            self._add_columns()
        present = {row.path for row in self.rows}
        self.marked = [p for p in self.marked if p in present]
        self.refresh_table()

    def rescan(self) -> None:
        self._wake.set()

    def on_run_changed(self, message: RunChanged) -> None:
        self.rescan()

    # -- the table -------------------------------------------------------------------------------

    def visible_rows(self) -> list[RunRow]:
        rows = [r for r in self.rows if r.matches(self.query_text)]
        return sort_rows(rows, self.sort_column, self.sort_reverse)

    def _cells(self, row: RunRow) -> tuple:
        """The table cells of a row (new objects per row: ``RunsTable.reorder`` tells rows apart by them)."""
        marked = row.path in self.marked
        cells = self._cells_of.get((row, marked))
        if cells is None:
            cells = self._cells_of[(row, marked)] = (
                Text("●", style="bold magenta") if marked else Text(" "),
                status_text(row.status),
                Text(row.name, style="bold"),
                row.position,
                Text(fmt_num(row.test_acc), justify="right"),
                Text(fmt_num(row.images_per_s, 0), justify="right"),
                Text(fmt_duration(row.duration_s), justify="right"),
                fmt_started(row.started_at),
                row.backbone,
                row.dataset,
                row.method,
                *((Text(row.job, style="magenta"),) if self._with_job else ()),
            )
        return cells

    def refresh_table(self) -> None:
        """Show the rows that pass the filter, in order, changing only what changed.

        Rows whose cells changed are updated in place (``RunsTable.update_cells``); a new order of the
        same rows is a reorder; a few rows more or fewer are added or removed; anything else rebuilds.
        """
        rows = self.visible_rows()
        self._visible_count = len(rows)
        live = {(row, row.path in self.marked) for row in self.rows}
        self._cells_of = {key: cells for key, cells in self._cells_of.items() if key in live}
        wanted = {str(row.path): self._cells(row) for row in rows}
        shown, table = self._shown, self.table
        current = self.current_path()
        if shown is None or len(shown.keys() ^ wanted.keys()) > MAX_ROW_CHANGES:
            table.clear()
            for key, cells in wanted.items():
                table.add_row(*cells, key=key)
        else:
            for key in shown.keys() - wanted.keys():
                table.remove_row(key)
            for key, cells in wanted.items():
                old = shown.get(key)
                if old is None:
                    table.add_row(*cells, key=key)
                elif old is not cells:
                    keys = self._cell_keys()
                    table.update_cells(key, {c: v for c, v, o in zip(keys, cells, old, strict=True) if v != o})
            edited = [key for key in shown if key in wanted] + [key for key in wanted if key not in shown]
            if edited != list(wanted):
                table.reorder(list(wanted))
        if current is not None and str(current) in wanted:
            index = list(wanted).index(str(current))
            if index != table.cursor_row:
                table.move_cursor(row=index, animate=False)
        self._shown = wanted
        self._update_title()

    def _update_title(self) -> None:
        total, shown = len(self.rows), self._visible_count
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.status] = counts.get(row.status, 0) + 1
        title = Text.assemble(("idmm ", "bold"), ("runs ", ""), (str(self.dashboard.runs_dir), "dim"))
        title.append(f"   {total} run{'s' if total != 1 else ''}")
        for status in ("queued", "running", "completed", "interrupted", "failed"):
            if counts.get(status):
                title.append("  ")
                title.append(f"{STATUS_ICON[status]} {counts[status]} {status}", style=STATUS_STYLE[status])
        if self.query_text:
            title.append(f"   filter '{self.query_text}': {shown} shown", style="bold yellow")
        if self.marked:
            title.append(f"   {len(self.marked)} marked", style="bold magenta")
        if self.error:
            title.append(f"   {self.error}", style="bold red")
        self.query_one("#runs-title", TextPane).show(title)
        empty = self.query_one("#runs-empty", Static)
        if not self.scanned:
            empty.update("scanning…")
        elif not total:
            runs_dir = self.dashboard.runs_dir
            empty.update(
                f"No runs in {runs_dir} yet.\nPress n to launch one, or run in another terminal:"
                f"\n  idmm run recipes/demo.toml --runs-dir {runs_dir}"
            )
        elif not shown:
            empty.update("No run matches the filter (Esc clears it).")
        empty.set_class(bool(total) and bool(shown), "hidden")

    def current_path(self) -> Path | None:
        table = self.table
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:  # an empty or refreshing table
            return None
        return Path(key.value) if key.value else None

    # -- events and actions ------------------------------------------------------------------------

    @on(DataTable.RowSelected, "#runs")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    @on(DataTable.HeaderSelected, "#runs")
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key and key != "mark":
            self.set_sort(key, not self.sort_reverse if key == self.sort_column else key != "name")

    def set_sort(self, column: str, reverse: bool) -> None:
        self.sort_column, self.sort_reverse = column, reverse
        if not self.table.relabel(self._labels()):  # the rows stay; refresh_table reorders them
            self._add_columns()
        self.refresh_table()

    def action_sort(self) -> None:
        keys = [key for key, _ in self._columns()]
        column = keys[(keys.index(self.sort_column) + 1) % len(keys)] if self.sort_column in keys else keys[0]
        self.set_sort(column, column in ("started_at", "test_acc", "images_per_s", "duration_s"))

    def action_sort_reverse(self) -> None:
        self.set_sort(self.sort_column, not self.sort_reverse)

    def action_open(self) -> None:
        path = self.current_path()
        if path is not None:
            self.post_message(OpenRun(path))

    def action_mark(self) -> None:
        path = self.current_path()
        if path is None:
            return
        if path in self.marked:
            self.marked.remove(path)
        else:
            self.marked.append(path)
        self.refresh_table()
        self.table.action_cursor_down()

    def action_compare(self) -> None:
        visible = [row.path for row in self.visible_rows()]
        paths = [p for p in visible if p in self.marked] + [p for p in self.marked if p not in visible]
        if len(paths) < 2:
            self.notify("Mark two or more runs with Space, then press c.", title="Compare", severity="warning")
            return
        self.post_message(OpenCompare(paths))

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.remove_class("hidden")
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        """The table follows the filter once typing pauses (one rebuild for a word, not one per key)."""
        self.query_text = event.value.strip()
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(FILTER_DELAY, self._filter_now)

    def _filter_now(self) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None
        self.refresh_table()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self._filter_now()
        if not event.value.strip():
            event.input.add_class("hidden")
        self.table.focus()

    def action_clear(self) -> None:
        box = self.query_one("#filter", Input)
        if self.query_text or not box.has_class("hidden"):
            box.value = ""
            self.query_text = ""
            box.add_class("hidden")
            self.table.focus()
            self.refresh_table()
        elif self.marked:
            self.marked.clear()
            self.refresh_table()

    def action_launch(self) -> None:
        self.post_message(OpenLaunch())

    def action_zoo(self) -> None:
        self.post_message(OpenZoo())

    def action_push(self) -> None:
        self.post_message(OpenZoo(push_run=self.current_path()))

    def action_stop(self) -> None:
        path = self.current_path()
        if path is not None:
            self.post_message(StopRequested(path, self.summaries.get(path, {})))

    def action_resume(self) -> None:
        path = self.current_path()
        if path is not None:
            self.post_message(ResumeRequested(path, self.summaries.get(path, {})))
