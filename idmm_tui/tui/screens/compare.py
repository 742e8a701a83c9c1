"""Compare runs: overlaid curves with a stable colour per run, final metrics, differing recipe keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, TabbedContent, TabPane

from idmm_tui.tui.canvas import Line
from idmm_tui.tui.colors import assign_colors, hex_color
from idmm_tui.tui.curves import METRIC_TITLES, SMOOTHABLE, SMOOTHING_LEVELS, RunCurves, best_test_acc
from idmm_tui.tui.format import STATUS_ICON, STATUS_STYLE, fmt_duration, fmt_num, num, text
from idmm_tui.tui.recipe_diff import fmt_value, parse_recipe, recipe_diff
from idmm_tui.tui.screens.watching import WatchingScreen
from idmm_tui.tui.summary import current_of, plan_of, run_status
from idmm_tui.tui.tailer import RunPoll
from idmm_tui.tui.widgets.curves import CurvePlot
from idmm_tui.tui.widgets.text_pane import TextPane

LEFT_METRICS = ("loss", "lr", "images_per_s")


def knn_final(summary: dict[str, Any], curves: RunCurves) -> float | None:
    """The pretraining's last kNN monitor accuracy (summary's stage metrics, else the metrics lines)."""
    stages = summary.get("stages")
    info = stages.get("pretrain") if isinstance(stages, dict) else None
    value = num(info.get("knn_acc")) if isinstance(info, dict) else None
    if value is None and "pretrain" in curves.stages:
        value = curves.stages["pretrain"].series("knn_acc").last()
    return value


class RunState:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.summary: dict[str, Any] = {}
        self.curves = RunCurves()
        self.recipe: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return text(self.summary.get("name")) or self.path.name


class CompareScreen(WatchingScreen):
    """Several runs side by side (live)."""

    HELP_TITLE = "Compare"
    HELP_ORDER = 30

    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="back to the runs table"),
        Binding("left_square_bracket", "stage(-1)", "Previous stage", show=False, tooltip="previous stage"),
        Binding("right_square_bracket", "stage(1)", "Stage", tooltip="next stage"),
        Binding("m", "metric", "Metric", tooltip="left plot: loss, learning rate, images/s"),
        Binding("e", "x_axis", "Step/epoch", tooltip="x axis: step / epoch"),
        Binding("s", "smoothing", "Smooth", tooltip="smoothing: off, EMA 0.6, 0.9, 0.99"),
        Binding("1", "tab('final')", "Final metrics", show=False, tooltip="final metrics table"),
        Binding("2", "tab('diff')", "Recipe diff", show=False, tooltip="recipe keys that differ"),
    ]

    def __init__(self, paths: list[Path]) -> None:
        super().__init__(paths)
        self.runs = {Path(p): RunState(Path(p)) for p in paths}
        self.run_colors = assign_colors([p.name for p in self.paths])
        self.stage: str | None = None
        self.metric = "loss"
        self.x_axis = "step"
        self.smoothing = 0.0
        self.polls = 0
        self._plotted: tuple | None = None
        self._tables: tuple | None = None

    def compose(self) -> ComposeResult:
        yield TextPane(id="compare-header", classes="run-header")
        with Horizontal(id="compare-plots"):
            yield CurvePlot(id="plot-left", classes="plot")
            yield CurvePlot(id="plot-right", classes="plot")
        with TabbedContent(id="compare-tabs", initial="final"):
            with TabPane("1 Final metrics", id="final"):
                yield DataTable(id="final-table", cursor_type="row", zebra_stripes=True)
            with TabPane("2 Recipe diff", id="diff"):
                yield DataTable(id="diff-table", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        polls = self.take_first_polls()  # read while the screen was composed: shown in its first layout
        if polls:
            self.apply_polls(polls)
        else:
            self._refresh_all()
        self.start_watching()

    def apply_polls(self, polls: list[RunPoll]) -> None:
        for poll in polls:
            run = self.runs.get(poll.path)
            if run is None:
                continue
            self.polls += 1
            if poll.reset:
                run.curves = RunCurves()
            if poll.older:
                run.curves.add_columns(poll.older, older=True)
            if poll.records:
                run.curves.add_columns(poll.columns)
            if poll.summary is not None:
                run.summary = poll.summary
            if poll.recipe_text is not None:
                run.recipe = parse_recipe(poll.recipe_text)
        self._refresh_all()

    # -- drawing ---------------------------------------------------------------------------------

    def stage_names(self) -> list[str]:
        names: list[str] = []
        for run in self.runs.values():
            for name in run.curves.stage_names(run.summary):
                if name not in names:
                    names.append(name)
        return names

    def _default_stage(self) -> str | None:
        names = self.stage_names()
        with_data = [n for n in names if any(n in r.curves.stages for r in self.runs.values())]
        finetune = [n for n in with_data if n.startswith("finetune")]
        return (finetune or with_data or names or [None])[-1]

    def _refresh_all(self) -> None:
        if self.stage is None or self.stage not in self.stage_names():
            self.stage = self._default_stage()
        self._update_header()
        self._update_plots()
        self._update_tables()

    def _update_header(self) -> None:
        out = Text.assemble(("compare ", "bold"), (f"{len(self.runs)} runs  ", ""))
        for run in self.runs.values():
            status = run_status(run.summary) if run.summary else "starting"
            out.append("● ", style=hex_color(self.run_colors[run.path.name]))
            out.append(run.name, style="bold")
            out.append(f" {STATUS_ICON.get(status, '')}  ", style=STATUS_STYLE.get(status, "dim"))
        names = self.stage_names()
        out.append("\nstage ")
        for name in names:
            out.append(f" {name} ", style="reverse bold" if name == self.stage else "dim")
        self.query_one("#compare-header", TextPane).show(out)

    def _lines(self, metric: str) -> list[Line]:
        smoothing = self.smoothing if metric in SMOOTHABLE else 0.0
        lines = []
        for run in self.runs.values():
            stage = run.curves.stages.get(self.stage) if self.stage else None
            if stage is None:
                continue
            series = stage.series(metric, self.x_axis, smoothing)
            lines.append(Line(run.name, series.xs.parts(), series.ys.parts(), self.run_colors[run.path.name]))
        return lines

    def _live(self) -> bool:
        """A run is writing the shown stage (the plots' axes leave room for the points to come)."""
        return any(
            run_status(run.summary) == "running" and current_of(run.summary).get("stage") == self.stage
            for run in self.runs.values()
        )

    def _update_plots(self) -> None:
        key = (
            tuple(r.curves.stage_version(self.stage) for r in self.runs.values()),
            tuple(r.name for r in self.runs.values()),
            self.stage,
            self.metric,
            self.x_axis,
            self.smoothing,
            self._live(),
        )
        if key == self._plotted:
            return  # no new points in the shown stage: nothing to redraw
        self._plotted = key
        live = key[-1]
        left = self.query_one("#plot-left", CurvePlot)
        right = self.query_one("#plot-right", CurvePlot)
        suffix = f" · ema {self.smoothing:g}" if self.smoothing else ""
        left.border_title = METRIC_TITLES[self.metric] + (suffix if self.metric in SMOOTHABLE else "")
        left.border_subtitle = right.border_subtitle = f"{self.stage or '—'} · x: {self.x_axis}"
        left.set_lines(self._lines(self.metric), empty_text="no data for this stage", live=live)
        acc, knn = self._lines("test_acc"), self._lines("knn_acc")
        if any(len(line) for line in acc):
            right.border_title = METRIC_TITLES["test_acc"]
            right.set_lines(acc, live=live)
        elif any(len(line) for line in knn):  # pretraining: the kNN monitor
            right.border_title = METRIC_TITLES["knn_acc"]
            right.set_lines(knn, live=live)
        else:
            right.border_title = METRIC_TITLES["images_per_s"] + suffix
            right.set_lines(self._lines("images_per_s"), empty_text="no data for this stage", live=live)

    def _update_tables(self) -> None:
        runs = list(self.runs.values())
        stages = self.stage_names()
        final_rows = []
        for run in runs:
            summary = run.summary
            status = run_status(summary) if summary else "starting"
            stage_loss = []
            for name in stages:
                info = summary.get("stages", {}).get(name) if isinstance(summary.get("stages"), dict) else None
                value = info.get("loss") if isinstance(info, dict) else None
                if value is None and name in run.curves.stages:
                    value = run.curves.stages[name].series("loss").last()
                stage_loss.append(fmt_num(value, 4))
            acc = num(summary.get("test_acc"))
            if acc is None:
                acc = (
                    num((summary.get("current") or {}).get("test_acc"))
                    if isinstance(summary.get("current"), dict)
                    else None
                )
            final_rows.append(
                (
                    Text("● ", style=hex_color(self.run_colors[run.path.name])) + Text(run.name, style="bold"),
                    Text(status, style=STATUS_STYLE.get(status, "")),
                    text(summary.get("method")),
                    text(summary.get("init")) or "–",
                    Text(fmt_num(acc), justify="right", style="bold"),
                    Text(fmt_num(best_test_acc(run.curves)), justify="right"),
                    Text(fmt_num(knn_final(summary, run.curves)), justify="right"),
                    *[Text(v, justify="right") for v in stage_loss],
                    Text(fmt_duration(summary.get("wall_time_s")), justify="right"),
                    " → ".join(f"{p['name']}:{p.get('epochs')}" for p in plan_of(summary)),
                )
            )
        diff = recipe_diff([run.recipe for run in runs])
        key = (repr(final_rows), repr(diff))
        if key == self._tables:
            return
        self._tables = key
        final = self.query_one("#final-table", DataTable)
        final.clear(columns=True)
        labels = [
            "run",
            "status",
            "method",
            "init",
            "test acc",
            "best acc",
            "kNN acc",
            *[f"loss {n}" for n in stages],
            "wall",
            "plan",
        ]
        # explicit widths (what auto-sizing would give): DataTable measures new rows lazily, and a
        # rebuild right after another one could leave every column at its label's width
        for i, label in enumerate(labels):
            final.add_column(label, width=max([len(label)] + [_cell_width(row[i]) for row in final_rows]))
        final.add_rows(final_rows)
        table = self.query_one("#diff-table", DataTable)
        table.clear(columns=True)
        table.add_column("recipe key")
        for run in runs:
            table.add_column(Text(run.name, style=hex_color(self.run_colors[run.path.name])))
        if not any(run.recipe for run in runs):
            table.add_row(Text("waiting for the recipes…", style="dim"), *["" for _ in runs])
        elif not diff:
            table.add_row(Text("the recipes are identical", style="dim"), *["" for _ in runs])
        for recipe_key, values in diff:
            table.add_row(Text(recipe_key, style="bold"), *[fmt_value(v) for v in values])

    # -- actions ---------------------------------------------------------------------------------

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_stage(self, delta: int) -> None:
        names = self.stage_names()
        if names:
            index = names.index(self.stage) if self.stage in names else 0
            self.stage = names[(index + delta) % len(names)]
            self._refresh_all()

    def action_metric(self) -> None:
        self.metric = LEFT_METRICS[(LEFT_METRICS.index(self.metric) + 1) % len(LEFT_METRICS)]
        self._update_plots()

    def action_x_axis(self) -> None:
        self.x_axis = "epoch" if self.x_axis == "step" else "step"
        self._update_plots()

    def action_smoothing(self) -> None:
        index = SMOOTHING_LEVELS.index(self.smoothing) if self.smoothing in SMOOTHING_LEVELS else 0
        self.smoothing = SMOOTHING_LEVELS[(index + 1) % len(SMOOTHING_LEVELS)]
        self._update_plots()

    def action_tab(self, tab: str) -> None:
        self.query_one("#compare-tabs", TabbedContent).active = tab


def _cell_width(cell: object) -> int:
    """Terminal cells a DataTable cell takes (str cells are read as markup, as DataTable does)."""
    if isinstance(cell, Text):
        return cell.cell_len
    return Text.from_markup(str(cell)).cell_len
