"""The dashboard's messages (dataclasses, Posting-style).

Textual's ``Message`` sets itself up in ``__post_init__``, which a dataclass's generated ``__init__``
calls: so these are plain dataclasses (``eq=False``: messages stay hashable).

* Requests a screen posts to itself; they bubble to the app, whose ``on_…`` handler acts
  (Harlequin's pattern: screens never import the app): :class:`OpenRun`, :class:`OpenCompare`,
  :class:`OpenLaunch`, :class:`OpenZoo`, :class:`OpenScreen`, :class:`LaunchRequested`,
  :class:`ResumeRequested`, :class:`StopRequested`.
* News the app posts to the screens of its stack (they do not bubble): :class:`RunChanged`.
* Results a thread worker posts to its screen: workers never touch widgets, they read files, then post
  one of these; the handler on the UI thread updates the widgets. One message per poll carries
  everything that changed (no per-line messages).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.message import Message
from textual.screen import Screen

from idmm_tui.tui.runs_table import RunRow
from idmm_tui.tui.sysinfo import SystemStats
from idmm_tui.tui.tailer import RunPoll

# -- requests: screen -> app ------------------------------------------------------------------


@dataclass(eq=False)
class OpenRun(Message):
    """Show a run's live view (``output``: the file holding the output of a process the app started)."""

    path: Path
    output: Path | None = None


@dataclass(eq=False)
class OpenCompare(Message):
    """Compare these runs."""

    paths: list[Path]


@dataclass(eq=False)
class OpenLaunch(Message):
    """Show the launch form."""


@dataclass(eq=False)
class OpenZoo(Message):
    """Show the zoo (``push_run``: then offer to push this run)."""

    push_run: Path | None = None


@dataclass(eq=False)
class OpenScreen(Message):
    """Push this screen (any screen, e.g. one registered by a plugin)."""

    screen: Screen


@dataclass(eq=False)
class LaunchRequested(Message):
    """Start ``idmm run RECIPE --name NAME --set …`` in the background and show it."""

    recipe: Path
    name: str
    overrides: list[str]


@dataclass(eq=False)
class ResumeRequested(Message):
    """Resume an interrupted or failed run in the background (``open_view``: then show it)."""

    path: Path
    summary: dict[str, Any]
    open_view: bool = True


@dataclass(eq=False)
class StopRequested(Message):
    """Ask to stop a running run (the app confirms first)."""

    path: Path
    summary: dict[str, Any]


# -- news: app -> screens --------------------------------------------------------------------


@dataclass(eq=False)
class RunChanged(Message, bubble=False):
    """A run was started, stopped or resumed from here, or its process exited (``returncode``)."""

    path: Path
    returncode: int | None = None
    output: Path | None = None


# -- results: worker -> screen ---------------------------------------------------------------


@dataclass(eq=False)
class RunsScanned(Message):
    """The runs directory was scanned: every run's table row and summary."""

    rows: list[RunRow]
    summaries: dict[Path, dict[str, Any]]
    error: str = ""  # the runs directory could not be read


@dataclass(eq=False)
class RunsPolled(Message, bubble=False):
    """What changed in the watched runs since the previous poll (one message per poll, for all runs)."""

    polls: list[RunPoll]


@dataclass(eq=False)
class SystemSampled(Message):
    stats: SystemStats


@dataclass(eq=False)
class RegistriesLoaded(Message):
    """Names of the backbones, datasets and methods (importing the registries loads torch: a worker does it)."""

    backbones: list[str]
    datasets: list[str]
    methods: list[str]
    error: str = ""


@dataclass(eq=False)
class RecipeChecked(Message):
    """The result of validating the launch form (``resolve_recipe`` in a worker)."""

    token: int
    ok: bool
    message: str
    defaults: dict[str, Any]  # the recipe's own backbone / dataset / method / name
    plan: str = ""
    recipe: Any = None  # the resolved Recipe when ok
    overrides: list[str] = field(default_factory=list)  # the --set items the form amounts to


@dataclass(eq=False)
class ZooProgress(Message):
    """A progress line from a zoo operation (its ``say`` callback)."""

    text: str


@dataclass(eq=False)
class ZooDone(Message):
    """A zoo operation (list / pull / push) finished in a worker."""

    action: str
    ok: bool
    message: str
    data: Any = None
