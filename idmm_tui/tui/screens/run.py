"""The run view: live curves per stage, the stage timeline and ETA, the log's tail, the recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.syntax import Syntax
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.widgets import Footer, Log, Static, TabbedContent, TabPane

from idmm_tui.runs.launcher import describe as describe_launch
from idmm_tui.tui.canvas import Line
from idmm_tui.tui.curves import METRIC_TITLES, METRICS, SMOOTHABLE, SMOOTHING_LEVELS, RunCurves, default_stage
from idmm_tui.tui.format import STATUS_ICON, STATUS_STYLE, fmt_duration, fmt_lr, fmt_num, num, text
from idmm_tui.tui.jobs import is_queued, job_text
from idmm_tui.tui.messages import ResumeRequested, StopRequested
from idmm_tui.tui.procs import read_tail
from idmm_tui.tui.screens.watching import WatchingScreen
from idmm_tui.tui.summary import current_of, live_wall_time, plan_of, run_status
from idmm_tui.tui.tailer import RunPoll
from idmm_tui.tui.timeline import stage_eta, timeline
from idmm_tui.tui.widgets.curves import CurvePlot
from idmm_tui.tui.widgets.system import SystemPane
from idmm_tui.tui.widgets.text_pane import TextPane

RAW_COLOR = (96, 96, 110)
CURVE_COLORS = {
    "loss": (78, 121, 167),
    "lr": (242, 142, 43),
    "test_acc": (89, 161, 79),
    "knn_acc": (89, 161, 79),
    "images_per_s": (176, 122, 161),
}
STATE_STYLE = {"done": "cyan", "pending": "dim", "running": "bold green", "interrupted": "yellow", "failed": "bold red"}
STATE_ICON = {"done": "✓", "pending": "·", "running": "▶", "interrupted": "‖", "failed": "✗"}


def fmt_value(metric: str, value: float | None) -> str:
    if metric == "lr":
        return fmt_lr(value)
    if metric == "images_per_s":
        return fmt_num(value, 0)
    if metric in ("test_acc", "knn_acc"):
        return "–" if value is None else f"{value:.2f}%"
    return fmt_num(value, 4)


def render_header(
    path: Path, summary: dict[str, Any], curves: RunCurves, exists: bool, job: dict[str, Any] | None = None
) -> Text:
    """Three lines: identity and status (and how it runs: processes, nodes, cluster job); the stage
    timeline; position, latest metrics and ETA."""
    status = run_status(summary) if summary else ("starting" if exists else "waiting")
    if status == "waiting" and job and is_queued(job):
        status = "queued"
    out = Text()
    out.append(f" {STATUS_ICON.get(status, '…')} {status} ", style=f"reverse {STATUS_STYLE.get(status, 'dim')}")
    out.append(f" {text(summary.get('name')) or path.name}", style="bold")
    ident = " · ".join(
        v for v in (text(summary.get("backbone")), text(summary.get("dataset")), text(summary.get("method"))) if v
    )
    if ident:
        out.append(f"   {ident}")
    if summary.get("seed") is not None:
        out.append(f" · seed {summary.get('seed')}", style="dim")
    if text(summary.get("init")):
        out.append(f" · init {summary.get('init')}", style="dim")
    placement = describe_launch(summary)
    if placement:
        out.append(f" · {placement}", style="dim")
    if job:
        out.append(f" · {text(job.get('executor'))} job {job_text(job)}", style="magenta")
    out.append("\n")
    stages = timeline(summary)
    if not stages:
        out.append("waiting for the run to start…" if not exists else "no stage plan yet", style="dim")
    for i, stage in enumerate(stages):
        if i:
            out.append(" ─ ", style="dim")
        style = STATE_STYLE.get(stage.state, "")
        out.append(f"{STATE_ICON.get(stage.state, '·')} {stage.name}", style=style)
        epochs = "?" if stage.epochs is None else str(stage.epochs)
        detail = f" {stage.epoch}/{epochs} ep" if stage.epoch is not None else f" {epochs} ep"
        if stage.resolution:
            detail += f" @{stage.resolution}px"
        out.append(detail, style="dim" if stage.state in ("pending", "done") else style)
    out.append("\n")
    current = current_of(summary)
    parts: list[tuple[str, str]] = []
    if current:
        step, total = num(current.get("step")), num(current.get("total_steps"))
        if step is not None and total:
            parts.append((f"step {int(step)}/{int(total)} ({100 * step / total:.0f}%)", ""))
        if num(current.get("loss")) is not None:
            parts.append((f"loss {fmt_num(current.get('loss'), 4)}", ""))
        if num(current.get("images_per_s")) is not None:
            parts.append((f"{fmt_num(current.get('images_per_s'), 0)} img/s", ""))
    acc = num(summary.get("test_acc"))
    if acc is None:
        acc = num(current.get("test_acc"))
    if acc is not None:
        parts.append((f"test acc {acc:.2f}%", "bold"))
    wall = live_wall_time(summary, status)
    if wall is not None:
        parts.append((f"wall {fmt_duration(wall)}", ""))
    eta = stage_eta(summary, curves)
    if eta is not None:
        remaining = [s.name for s in stages if s.state == "pending"]
        more = f" (+{len(remaining)} stage{'s' if len(remaining) > 1 else ''})" if remaining else ""
        parts.append((f"ETA {fmt_duration(eta)}{more}", "bold"))
    for i, (part, style) in enumerate(parts):
        if i:
            out.append("  ")
        out.append(part, style=style)
    if status == "failed" and summary.get("error"):
        out.append("  error: ", style="bold red")
        out.append(text(summary.get("error"))[:300], style="red")
    elif status == "interrupted":
        out.append("  r resumes from the last checkpoint", style="yellow")
    return out


class RunScreen(WatchingScreen):
    """One run, live."""

    HELP_TITLE = "Run view"
    HELP_ORDER = 20

    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="back to the previous screen"),
        Binding("left_square_bracket", "stage(-1)", "Previous stage", show=False, tooltip="previous stage"),
        Binding("right_square_bracket", "stage(1)", "Stage", tooltip="next stage"),
        Binding("e", "x_axis", "Step/epoch", tooltip="x axis: step / epoch"),
        Binding("s", "smoothing", "Smooth", tooltip="smoothing: off, EMA 0.6, 0.9, 0.99"),
        Binding("k", "stop", "Stop", tooltip="stop the run (graceful: checkpoint kept)"),
        Binding("r", "resume", "Resume", tooltip="resume this run in the background"),
        Binding("1", "tab('curves')", "Curves", show=False, tooltip="curves tab"),
        Binding("2", "tab('log')", "Log", show=False, tooltip="log tab (tail of run.log)"),
        Binding("3", "tab('recipe')", "Recipe", show=False, tooltip="recipe tab (resolved recipe)"),
    ]

    def __init__(self, path: Path, output: Path | None = None) -> None:
        super().__init__([path])
        self.path = Path(path)
        self.output = output
        self.summary: dict[str, Any] = {}
        self.job: dict[str, Any] = {}  # its cluster job (sweep manifest), {} for none
        self.curves = RunCurves()
        self.exists = self.path.is_dir()
        self.stage: str | None = None
        self.follow = True
        self.x_axis = "step"
        self.smoothing = 0.0
        self.polls = 0
        self.recipe_text = ""
        self._recipe_shown = ""
        self._plotted: dict[str | None, tuple] = {}  # plot id -> what it was last given

    def compose(self) -> ComposeResult:
        yield TextPane(id="run-header", classes="run-header")
        with TabbedContent(id="run-tabs", initial="curves"):
            with TabPane("1 Curves", id="curves"), Grid(id="plots"):
                for metric in METRICS:
                    yield CurvePlot(id=f"plot-{metric}", classes="plot")
            with TabPane("2 Log", id="log"):
                yield Log(id="run-log", max_lines=2000, auto_scroll=True)
            with TabPane("3 Recipe", id="recipe"), VerticalScroll():
                yield Static(id="recipe-text")
        yield SystemPane(id="system", classes="" if self.dashboard.show_system else "hidden")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.sub_title = self.path.name
        polls = self.take_first_polls()  # read while the screen was composed: shown in its first layout
        if polls:
            self.apply_polls(polls)
        else:
            self._update_header()
            self._update_plots()
        self.start_watching()
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        """Keep the wall time and ETA moving between metrics lines."""
        if self.summary and run_status(self.summary) == "running":
            self._update_header()

    # -- data ------------------------------------------------------------------------------------

    def apply_polls(self, polls: list[RunPoll]) -> None:
        log = self.query_one("#run-log", Log)
        for poll in polls:
            self.polls += 1
            self.exists = poll.exists
            if poll.reset:
                self.curves = RunCurves()
            if poll.older:
                self.curves.add_columns(poll.older, older=True)
            if poll.records:
                self.curves.add_columns(poll.columns)
            if poll.summary is not None:
                self.summary = poll.summary
            if poll.job is not None:
                self.job = poll.job
            if poll.log_reset:
                log.clear()
            if poll.log_lines:
                log.write_lines(poll.log_lines)
            if poll.recipe_text is not None:
                self.recipe_text = poll.recipe_text
                self._show_recipe()
        if self.follow or self.stage is None:
            self.stage = default_stage(self.summary, self.curves)
        self._update_header()
        self._update_plots()

    def process_exited(self, returncode: int, output: Path | None) -> None:
        """The process the dashboard started for this run ended (the app's :class:`RunChanged`)."""
        if returncode not in (0, 130) and not self.summary and output is not None:
            tail = read_tail(output, 2000).strip().splitlines()[-8:]
            log = self.query_one("#run-log", Log)
            log.write_lines([f"[idmm run exited with code {returncode}; output in {output}]", *tail])
            self.query_one("#run-tabs", TabbedContent).active = "log"
        self.poll_now()

    # -- drawing ---------------------------------------------------------------------------------

    def _update_header(self) -> None:
        header = render_header(self.path, self.summary, self.curves, self.exists, self.job)
        self.query_one("#run-header", TextPane).show(header)

    def _stage_names(self) -> list[str]:
        return self.curves.stage_names(self.summary)

    def _live(self) -> bool:
        """The shown stage is being written (its plots' axes leave room for the points to come)."""
        return run_status(self.summary) == "running" and current_of(self.summary).get("stage") == self.stage

    def _update_plots(self) -> None:
        """Give each plot its series, if they changed since it last got them (a poll of another stage,
        or with no new metrics, changes nothing)."""
        stage = self.curves.stages.get(self.stage) if self.stage else None
        kind = next((text(p.get("kind")) for p in plan_of(self.summary) if p["name"] == self.stage), "")
        names = self._stage_names()
        position = f" ({names.index(self.stage) + 1}/{len(names)})" if self.stage in names else ""
        live = self._live()
        for metric in METRICS:
            plot = self.query_one(f"#plot-{metric}", CurvePlot)
            pretraining = kind == "pretrain" or (stage is not None and stage.name == "pretrain")
            if metric == "test_acc" and pretraining:
                metric = "knn_acc"  # pretraining has no test accuracy; its kNN monitor is the accuracy to watch
            smoothing = self.smoothing if metric in SMOOTHABLE else 0.0
            key = (self.curves.stage_version(self.stage), metric, self.x_axis, smoothing, live)
            if self._plotted.get(plot.id) == key:
                continue
            self._plotted[plot.id] = key
            title = METRIC_TITLES[metric]
            if smoothing:
                title += f" · ema {smoothing:g}"
            subtitle = f"{self.stage or '—'}{position} · x: {self.x_axis}"
            empty = {
                "test_acc": "test accuracy appears after each fine-tuning epoch",
                "knn_acc": "no test accuracy in pretraining; the kNN monitor's accuracy appears every "
                "pretrain.knn_every epochs (0: off)",
            }.get(metric, "waiting for metrics…")
            lines = []
            if stage is not None:
                if smoothing:
                    raw = stage.series(metric, self.x_axis, 0.0)
                    lines.append(Line("raw", raw.xs.parts(), raw.ys.parts(), RAW_COLOR))
                series = stage.series(metric, self.x_axis, smoothing)
                lines.append(Line(metric, series.xs.parts(), series.ys.parts(), CURVE_COLORS[metric]))
                if len(series):
                    title = f"{title}  {fmt_value(metric, series.last())}"
            if plot.border_title != title:
                plot.border_title = title
            if plot.border_subtitle != subtitle:
                plot.border_subtitle = subtitle
            plot.set_lines(lines, empty_text=empty, live=live)

    # -- actions ---------------------------------------------------------------------------------

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_stage(self, delta: int) -> None:
        names = self._stage_names()
        if not names:
            return
        index = names.index(self.stage) if self.stage in names else len(names) - 1
        self.stage = names[(index + delta) % len(names)]
        self.follow = self.stage == default_stage(self.summary, self.curves)
        self._update_plots()

    def action_x_axis(self) -> None:
        self.x_axis = "epoch" if self.x_axis == "step" else "step"
        self._update_plots()
        self.notify(f"x axis: {self.x_axis}", timeout=1.5)

    def action_smoothing(self) -> None:
        index = SMOOTHING_LEVELS.index(self.smoothing) if self.smoothing in SMOOTHING_LEVELS else 0
        self.smoothing = SMOOTHING_LEVELS[(index + 1) % len(SMOOTHING_LEVELS)]
        self._update_plots()
        self.notify(f"smoothing: {'off' if not self.smoothing else f'EMA {self.smoothing:g}'}", timeout=1.5)

    def action_tab(self, tab: str) -> None:
        self.query_one("#run-tabs", TabbedContent).active = tab

    @on(TabbedContent.TabActivated, "#run-tabs")
    def _tab_activated(self) -> None:
        self._show_recipe()

    def _show_recipe(self) -> None:
        """The recipe, highlighted once its tab is shown (not while the curves are being opened)."""
        if self.recipe_text != self._recipe_shown and self.query_one("#run-tabs", TabbedContent).active == "recipe":
            self._recipe_shown = self.recipe_text
            self.query_one("#recipe-text", Static).update(
                Syntax(self.recipe_text, "toml", background_color="default", line_numbers=False, word_wrap=True)
            )

    def action_stop(self) -> None:
        self.post_message(StopRequested(self.path, self.summary))

    def action_resume(self) -> None:
        self.post_message(ResumeRequested(self.path, self.summary, open_view=False))
