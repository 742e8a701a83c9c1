"""``idmm tui``: the Textual dashboard over the run directories.

Screens (``screens/``): the runs table (home), a run's live view, a comparison of runs, the launch
form, the zoo, and the key reference (built from the app's and the registered screens' bindings).
Widgets (``widgets/``): the curve plot (drawn in a background thread), the runs table (rows edited
in place), the system pane. Screens never import this module: they post request messages
(``OpenRun``, ``LaunchRequested``, ``StopRequested``… in ``messages.py``) that bubble to the app's
``on_…`` handlers, and the app posts ``RunChanged`` back. Thread workers read files and post
messages; the UI thread only paints. Nothing here trains: launching, resuming and stopping run the
same ``idmm run`` command and signals as the CLI (``procs.py``), and the run directory is the only
interface.
"""

from __future__ import annotations

import functools
import gc
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.signal import Signal
from textual.worker import get_current_worker

from idmm_tui.errors import IdmmError
from idmm_tui.tui import procs
from idmm_tui.tui.keys import help_sections
from idmm_tui.tui.messages import (
    LaunchRequested,
    OpenCompare,
    OpenLaunch,
    OpenRun,
    OpenScreen,
    OpenZoo,
    ResumeRequested,
    RunChanged,
    StopRequested,
    SystemSampled,
)
from idmm_tui.tui.screens.base import discover_screens, registered_screens
from idmm_tui.tui.screens.compare import CompareScreen
from idmm_tui.tui.screens.launch import LaunchScreen, find_recipes
from idmm_tui.tui.screens.modals import ConfirmScreen, HelpScreen
from idmm_tui.tui.screens.run import RunScreen
from idmm_tui.tui.screens.runs import RunsScreen
from idmm_tui.tui.screens.zoo import ZooScreen
from idmm_tui.tui.summary import run_status
from idmm_tui.tui.sysinfo import SystemSampler, SystemStats
from idmm_tui.tui.widgets.system import SystemPane

#: How soon (s) a background thread holding the GIL hands it to the UI thread when that asks for it.
#: Python's 5 ms default makes the UI thread wait at each numpy call that lets the GIL go while a
#: worker parses a long run or the drawing thread draws (scripts/bench_tui_plot.py --switch-interval).
SWITCH_INTERVAL = 0.001


def default_recipes_dir() -> Path | None:
    """``./recipes`` when present, else the recipes shipped beside the package (a source checkout)."""
    here = Path.cwd() / "recipes"
    if here.is_dir():
        return here
    shipped = Path(__file__).resolve().parents[2] / "recipes"
    return shipped if shipped.is_dir() else None


class IdmmApp(App):
    """The dashboard. Intervals are parameters so that tests can run it fast."""

    CSS_PATH = "app.tcss"
    TITLE = "idmm"
    BINDINGS = [
        Binding("question_mark", "help", "Keys", tooltip="this list of keys"),
        Binding("y", "toggle_system", "System", show=False, tooltip="show / hide the system pane (CPU, memory, GPU)"),
        Binding("q", "quit", "Quit", tooltip="quit (runs keep training in the background)"),
    ]
    #: Keys of the key reference's "Everywhere" section that are not in ``BINDINGS``.
    HELP_EXTRA = (("ctrl+p", "command palette (themes, screenshots)"), ("ctrl+q", "quit"))

    def __init__(
        self,
        runs_dir: Path,
        *,
        recipes_dir: Path | None = None,
        show_system: bool = True,
        scan_interval: float = 1.0,
        tail_interval: float = 0.5,
        system_interval: float = 2.0,
    ) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir).expanduser()
        self.recipes_dir = recipes_dir if recipes_dir is not None else default_recipes_dir()
        self.show_system = show_system
        self.scan_interval = scan_interval
        self.tail_interval = tail_interval
        self.system_interval = system_interval
        self.system_signal: Signal[SystemStats | None] = Signal(self, "system")
        self.system_stats: SystemStats | None = None
        self.processes: dict[int, tuple[subprocess.Popen, Path, Path]] = {}
        self._system_wake = threading.Event()
        self._switch_interval = sys.getswitchinterval()

    def on_mount(self) -> None:
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        for error in discover_screens():
            self.notify(error, title="Screen plugin", severity="error", timeout=10)
        self.push_screen(RunsScreen())
        # What exists now (modules, registries, the app) lives as long as the app: out of the cyclic
        # garbage collector's sight, a full collection scans only what came later (tens of ms, not 100+,
        # each time one lands while a run opens or a plot is painted).
        gc.freeze()
        if self.show_system:
            self.sample_system()
        self.set_interval(0.5, self.reap_children)

    def on_unmount(self) -> None:
        sys.setswitchinterval(self._switch_interval)
        gc.unfreeze()  # a process that makes several apps (the tests) lets the collector see them again

    # -- system pane -----------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="system", exit_on_error=False)
    def sample_system(self) -> None:
        worker = get_current_worker()
        sampler = SystemSampler()
        sampler.sample()  # the first CPU reading needs a previous one
        self._system_wake.wait(0.5)
        while not worker.is_cancelled:
            if self.show_system:
                self.post_message(SystemSampled(sampler.sample()))
            self._system_wake.wait(self.system_interval)
            self._system_wake.clear()

    def on_system_sampled(self, message: SystemSampled) -> None:
        self.system_stats = message.stats
        self.system_signal.publish(message.stats)

    def action_toggle_system(self) -> None:
        self.show_system = not self.show_system
        for screen in self.screen_stack:
            for pane in screen.query(SystemPane):
                pane.set_class(not self.show_system, "hidden")
        if self.show_system:
            if not any(w.group == "system" and not w.is_finished for w in self.workers):
                self.sample_system()
            self._system_wake.set()

    # -- navigation (the screens' requests) ----------------------------------------------------

    def open_run(self, path: Path, output: Path | None = None) -> None:
        self.push_screen(RunScreen(path, output))

    def open_compare(self, paths: list[Path]) -> None:
        self.push_screen(CompareScreen(paths))

    def open_launch(self) -> None:
        self.push_screen(LaunchScreen(find_recipes(self.recipes_dir)))

    def open_zoo(self, push_run: Path | None = None) -> None:
        self.push_screen(ZooScreen(push_run))

    def on_open_run(self, message: OpenRun) -> None:
        self.open_run(message.path, message.output)

    def on_open_compare(self, message: OpenCompare) -> None:
        self.open_compare(message.paths)

    def on_open_launch(self, message: OpenLaunch) -> None:
        self.open_launch()

    def on_open_zoo(self, message: OpenZoo) -> None:
        self.open_zoo(message.push_run)

    def on_open_screen(self, message: OpenScreen) -> None:
        self.push_screen(message.screen)

    def on_launch_requested(self, message: LaunchRequested) -> None:
        self.launch(message.recipe, message.name, message.overrides)

    def on_resume_requested(self, message: ResumeRequested) -> None:
        self.resume(message.path, message.summary, open_view=message.open_view)

    def on_stop_requested(self, message: StopRequested) -> None:
        self.confirm_stop(message.path, message.summary)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's commands, then one per registered screen with a ``COMMAND``."""
        yield from super().get_system_commands(screen)
        for cls in registered_screens():
            if cls.COMMAND:
                doc = (cls.__doc__ or "").strip().splitlines()
                yield SystemCommand(cls.COMMAND, doc[0] if doc else "", functools.partial(self._open_new, cls))

    def _open_new(self, cls: type[Screen]) -> None:
        self.push_screen(cls())

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(help_sections(type(self), registered_screens())))

    # -- processes -------------------------------------------------------------------------------

    def launch(self, recipe: Path, name: str, overrides: list[str]) -> None:
        """Start ``idmm run`` in the background and show the new run (from the launch screen)."""
        try:
            proc, out = procs.launch_run(recipe, self.runs_dir, name, overrides)
        except OSError as exc:
            self.notify(f"cannot start idmm run: {exc}", title="Launch", severity="error")
            return
        path = self.runs_dir / name
        self.processes[proc.pid] = (proc, path, out)
        self.notify(f"{name} started (pid {proc.pid})", title="Launch")
        if isinstance(self.screen, LaunchScreen):
            self.pop_screen()
        self.push_screen(RunScreen(path, out))

    def resume(self, path: Path, summary: dict[str, Any], *, open_view: bool = True) -> None:
        try:
            proc, out = procs.resume_run(path, summary)
        except (IdmmError, OSError) as exc:
            self.notify(str(exc), title="Resume", severity="warning")
            return
        self.processes[proc.pid] = (proc, path, out)
        self.notify(f"resuming {path.name} (pid {proc.pid})", title="Resume")
        if open_view:
            self.push_screen(RunScreen(path, out))
        else:
            self._poke(path)

    def confirm_stop(self, path: Path, summary: dict[str, Any]) -> None:
        status = run_status(summary)
        if status != "running":
            self.notify(f"{path.name} is not running ({status}).", title="Stop", severity="warning")
            return

        def answer(yes: bool | None) -> None:
            if not yes:
                return
            try:
                pid = procs.stop_run(path, summary)
            except IdmmError as exc:
                self.notify(str(exc), title="Stop", severity="error")
                return
            self.notify(f"asked {path.name} (pid {pid}) to stop after this step; its checkpoint is kept", title="Stop")
            self._poke(path)

        self.push_screen(
            ConfirmScreen(
                f"Stop {path.name}?", "It finishes the current step, saves a checkpoint and can be resumed (r)."
            ),
            answer,
        )

    def _poke(self, path: Path, returncode: int | None = None, output: Path | None = None) -> None:
        """Tell every screen of the stack that ``path`` changed (they look again at once)."""
        for screen in self.screen_stack:
            screen.post_message(RunChanged(path, returncode, output))

    def reap_children(self) -> None:
        """Collect the processes this dashboard started (no zombies), report failures."""
        for pid, (proc, path, out) in list(self.processes.items()):
            code = proc.poll()
            if code is None:
                continue
            del self.processes[pid]
            if code not in (0, 130) and procs.stopped_gracefully(path):  # torchrun exits 1 when its ranks exit 130
                code = 130
            if code not in (0, 130):
                tail = procs.read_tail(out, 600).strip().splitlines()
                reason = tail[-1] if tail else f"exit code {code}"
                self.notify(f"{path.name}: {reason}", title="Run ended with an error", severity="error", timeout=10)
            self._poke(path, code, out)
