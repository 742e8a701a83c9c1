"""The zoo: the catalogue and the local registry; pull, push and remove with progress and clear errors.

Every operation is the zoo's own function (``idmm_tui.zoo.ops``: what ``idmm zoo …`` runs), called in
a thread worker (importing it loads torch; pulling and pushing use the network). Its ``say``
callback becomes progress lines in the activity log; its one-line errors are shown as they are.
The Hub endpoint and token come from the environment (``$HF_ENDPOINT``, ``$HF_TOKEN`` or the
logged-in token), as for the CLI.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Input, Label, RichLog, Select, Static

from idmm_tui.errors import IdmmError
from idmm_tui.runs.store import finished_stages
from idmm_tui.tui.core_imports import CORE_IMPORT
from idmm_tui.tui.format import text
from idmm_tui.tui.messages import ZooDone, ZooProgress
from idmm_tui.tui.screens.base import DashboardScreen

STATUS_STYLE = {"published": "green", "local-only": "cyan", "not-published": "dim", "local": "bold cyan"}


def fmt_metrics(metrics: Any) -> str:
    if not isinstance(metrics, dict) or not metrics:
        return "–"
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


class PushScreen(ModalScreen[dict | None]):
    """Which run and stage to push, under which name, to which Hub repo (optional)."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", tooltip="close without pushing"),
        Binding("ctrl+s", "push", "Push", priority=True, tooltip="push"),
    ]

    def __init__(self, runs: list[tuple[Path, dict[str, Any]]], selected: Path | None = None) -> None:
        super().__init__()
        self.runs = {path: summary for path, summary in runs if finished_stages(summary)}
        self.selected = selected if selected in self.runs else next(iter(self.runs), None)

    def compose(self) -> ComposeResult:
        with Vertical(id="push-box"):
            yield Static(Text("push a run's stage to the zoo", style="bold"), classes="modal-title")
            if not self.runs:
                yield Static(Text("No run has a finished stage yet: finish (or resume) one first.", style="yellow"))
                yield Button("Close (esc)", id="cancel", compact=True)
                return
            options = [(path.name, path) for path in self.runs]
            with Horizontal(classes="form-row"):
                yield Label("Run", classes="form-label")
                yield Select(options, id="push-run", value=self.selected, allow_blank=False, compact=True)
            with Horizontal(classes="form-row"):
                yield Label("Stage", classes="form-label")
                yield Select([], id="push-stage", compact=True, prompt="the last finished stage")
            with Horizontal(classes="form-row"):
                yield Label("Zoo name", classes="form-label")
                yield Input(id="push-name", compact=True, placeholder="<run>-<stage>")
            with Horizontal(classes="form-row"):
                yield Label("Hub repo", classes="form-label")
                yield Input(id="push-repo", compact=True, placeholder="ORG/NAME to upload (empty: local registry only)")
            yield Static(
                Text("Uploading uses $HF_ENDPOINT and $HF_TOKEN (or the logged-in token).", style="dim"),
                classes="hint-line",
            )
            with Horizontal(id="push-buttons"):
                yield Button("Push (ctrl+s)", id="push", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        if self.runs:
            self._fill_stages()

    @on(Select.Changed, "#push-run")
    def _fill_stages(self) -> None:
        path = self.query_one("#push-run", Select).value
        stages = finished_stages(self.runs.get(path, {})) if isinstance(path, Path) else []
        select = self.query_one("#push-stage", Select)
        select.set_options([(s, s) for s in stages])
        if stages:
            select.value = stages[-1]

    @on(Button.Pressed, "#push")
    def _pressed_push(self) -> None:
        self.action_push()

    @on(Button.Pressed, "#cancel")
    def _pressed_cancel(self) -> None:
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_push(self) -> None:
        if not self.runs:
            return
        run = self.query_one("#push-run", Select).value
        stage = self.query_one("#push-stage", Select).value
        self.dismiss(
            {
                "run": run,
                "stage": None if stage is Select.NULL else stage,
                "name": self.query_one("#push-name", Input).value.strip() or None,
                "repo": self.query_one("#push-repo", Input).value.strip() or None,
            }
        )


class ZooScreen(DashboardScreen):
    """The catalogue and the local registry."""

    HELP_TITLE = "Zoo"
    HELP_ORDER = 50
    COMMAND = "Zoo"

    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="back to the runs table"),
        Binding("p", "pull", "Pull", tooltip="pull the selected model from the Hub into the local registry"),
        Binding("u", "push", "Push a run", tooltip="push a run's stage to the zoo (local registry, optionally Hub)"),
        Binding("x", "remove", "Remove", tooltip="remove the selected model from the local registry"),
        Binding("g", "reload", "Reload", tooltip="reload the catalogue and the local registry"),
    ]
    AUTO_FOCUS = "#zoo-table"

    def __init__(self, push_run: Path | None = None) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self.busy = ""
        self.loaded = False
        self.zoo_dir = ""
        self._push_run = push_run

    def compose(self) -> ComposeResult:
        yield Static(id="zoo-title", classes="title-bar")
        yield DataTable(id="zoo-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="zoo-detail", classes="run-header")
        yield RichLog(id="zoo-log", max_lines=500, wrap=True, markup=False)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one("#zoo-table", DataTable)
        for column in ("name", "status", "local", "backbone", "method", "dataset", "stage", "px", "metrics", "repo"):
            table.add_column(column, key=column)
        self._update_title()
        self.action_reload()
        if self._push_run is not None:
            self.call_after_refresh(self.action_push, self._push_run)

    # -- workers ---------------------------------------------------------------------------------

    def _say(self, line: str) -> None:
        self.post_message(ZooProgress(line))

    @work(thread=True, exclusive=True, group="zoo-list", exit_on_error=False)
    def load_list(self) -> None:
        try:
            with CORE_IMPORT:
                from idmm_tui.zoo.ops import list_models
                from idmm_tui.zoo.registry import default_zoo_dir

            self.post_message(ZooDone("list", True, str(default_zoo_dir()), list_models()))
        except IdmmError as exc:
            self.post_message(ZooDone("list", False, str(exc)))
        except Exception as exc:  # shown, never fatal
            self.post_message(ZooDone("list", False, f"{type(exc).__name__}: {exc}"))

    @work(thread=True, exclusive=True, group="zoo-op", exit_on_error=False)
    def run_op(self, action: str, kwargs: dict[str, Any]) -> None:
        # huggingface_hub's tqdm bars would write to the terminal the dashboard draws on; progress
        # comes through the zoo's `say` lines instead (read by huggingface_hub when first imported)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            with CORE_IMPORT:
                from idmm_tui.zoo import ops

            if action == "pull":
                result = ops.pull_model(kwargs["ref"], say=self._say)
                message = f"pulled {result['name']} into {result.get('path')}"
            elif action == "push":
                result = ops.push_run(
                    kwargs["run"],
                    runs_dir=self.dashboard.runs_dir,
                    stage=kwargs.get("stage"),
                    name=kwargs.get("name"),
                    repo=kwargs.get("repo"),
                    say=self._say,
                )
                where = f" and uploaded to {result['url']}" if result.get("url") else " (local registry)"
                message = f"pushed {result['name']}{where}"
            elif action == "remove":
                result = ops.remove_model(kwargs["name"])
                message = f"removed {kwargs['name']} ({result})"
            else:
                raise ValueError(f"unknown zoo action {action!r}")
            self.post_message(ZooDone(action, True, message, result))
        except IdmmError as exc:
            self.post_message(ZooDone(action, False, str(exc)))
        except Exception as exc:  # a network or library error: shown, never fatal
            self.post_message(ZooDone(action, False, f"{type(exc).__name__}: {exc}"))

    # -- messages --------------------------------------------------------------------------------

    def on_zoo_progress(self, message: ZooProgress) -> None:
        self.query_one("#zoo-log", RichLog).write(message.text)

    def on_zoo_done(self, message: ZooDone) -> None:
        log = self.query_one("#zoo-log", RichLog)
        if message.action == "list":
            self.loaded = True
            if message.ok:
                self.zoo_dir = message.message
                self.rows = list(message.data or [])
                self._fill_table()
            else:
                log.write(f"error: {message.message}")
                self.notify(message.message, title="Zoo", severity="error", timeout=10)
            self._update_title()
            return
        self.busy = ""
        if message.ok:
            log.write(f"✓ {message.message}")
            self.notify(message.message, title=f"Zoo {message.action}")
            self.action_reload()
        else:
            log.write(f"✗ {message.action} failed: {message.message}")
            self.notify(message.message, title=f"Zoo {message.action} failed", severity="error", timeout=10)
        self._update_title()

    # -- drawing ---------------------------------------------------------------------------------

    def _fill_table(self) -> None:
        table = self.query_one("#zoo-table", DataTable)
        table.clear()
        for row in self.rows:
            status = text(row.get("status"))
            local = "yes" if row.get("local") else "–"
            if row.get("local") and status != "local" and row.get("sha256") and not row.get("local_matches"):
                local = "yes (other weights)"
            table.add_row(
                Text(text(row.get("name")), style="bold"),
                Text(status, style=STATUS_STYLE.get(status, "")),
                local,
                text(row.get("backbone")),
                text(row.get("method")),
                text(row.get("dataset")),
                text(row.get("stage")),
                text(row.get("resolution")),
                fmt_metrics(row.get("metrics")),
                text(row.get("repo")),
                key=text(row.get("name")),
            )
        self._show_detail()

    def _update_title(self) -> None:
        title = Text.assemble(("idmm ", "bold"), ("zoo", ""))
        if self.zoo_dir:
            title.append(f"   local registry {self.zoo_dir}", style="dim")
        title.append(f"   {len(self.rows)} models" if self.loaded else "   loading…")
        if self.busy:
            title.append(f"   ⏳ {self.busy}…", style="bold yellow")
        self.query_one("#zoo-title", Static).update(title)

    def current(self) -> dict[str, Any] | None:
        table = self.query_one("#zoo-table", DataTable)
        if not table.row_count:
            return None
        row = table.cursor_row
        return self.rows[row] if 0 <= row < len(self.rows) else None

    @on(DataTable.RowHighlighted, "#zoo-table")
    def _show_detail(self) -> None:
        row = self.current()
        detail = self.query_one("#zoo-detail", Static)
        if row is None:
            detail.update(
                Text("The catalogue is empty and the local registry holds no model: push a run with u.", style="dim")
                if self.loaded
                else ""
            )
            return
        out = Text.assemble(
            (text(row.get("name")), "bold"),
            f"  {text(row.get('kind'))} · "
            f"{text(row.get('backbone'))} / {text(row.get('method'))} on {text(row.get('dataset'))}",
        )
        if row.get("repo"):
            out.append(f"  repo {row.get('repo')}@{text(row.get('revision')) or 'main'}", style="dim")
        if row.get("path"):
            out.append(f"\nlocal: {row.get('path')}", style="cyan")
        for key in ("recipe", "paper", "notes"):
            if row.get(key):
                out.append(f"\n{key}: {row.get(key)}", style="dim")
        detail.update(out)

    # -- actions ---------------------------------------------------------------------------------

    def _start(self, action: str, label: str, **kwargs: Any) -> None:
        if self.busy:
            self.notify(f"wait: {self.busy}", title="Zoo", severity="warning")
            return
        self.busy = label
        self._update_title()
        self.query_one("#zoo-log", RichLog).write(f"{label} …")
        self.run_op(action, kwargs)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reload(self) -> None:
        self.load_list()

    def action_pull(self) -> None:
        row = self.current()
        if row is None:
            return
        self._start("pull", f"pulling {row.get('name')}", ref=text(row.get("name")))

    def action_remove(self) -> None:
        row = self.current()
        if row is None:
            return
        if not row.get("local"):
            self.notify(f"{row.get('name')} is not in the local registry", title="Zoo", severity="warning")
            return
        from idmm_tui.tui.screens.modals import ConfirmScreen

        name = text(row.get("name"))

        def answer(yes: bool | None) -> None:
            if yes:
                self._start("remove", f"removing {name}", name=name)

        self.app.push_screen(
            ConfirmScreen(f"Remove {name} from the local registry?", str(row.get("path") or "")), answer
        )

    def action_push(self, selected: Path | None = None) -> None:
        from idmm_tui.runs.store import list_runs

        runs = [(run.path, run.read_summary()) for run in list_runs(self.dashboard.runs_dir)]

        def chosen(choice: dict | None) -> None:
            if choice:
                self._start("push", f"pushing {Path(choice['run']).name}", **choice)

        self.app.push_screen(PushScreen(runs, selected), chosen)
