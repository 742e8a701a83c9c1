"""Messages posted by the dashboard's thread workers to its screens (dataclasses, Posting-style).

Textual's ``Message`` sets itself up in ``__post_init__``, which a dataclass's generated ``__init__``
calls: so these are plain dataclasses (``eq=False``: messages stay hashable). Workers never touch
widgets: they read files, then post one of these; the handler on the UI thread updates the widgets.
One message per poll carries everything that changed (no per-line messages).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.message import Message

from idmm_tui.tui.model import RunRow
from idmm_tui.tui.sysinfo import SystemStats
from idmm_tui.tui.tailer import RunPoll


@dataclass(eq=False)
class RunsScanned(Message):
    """The runs directory was scanned: every run's table row and summary."""

    rows: list[RunRow]
    summaries: dict[Path, dict[str, Any]]
    error: str = ""  # the runs directory could not be read


@dataclass(eq=False)
class RunPolled(Message):
    """New metrics lines / summary / log lines of one run."""

    poll: RunPoll


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
