"""The base of the dashboard's screens, what they may read from the app, and the screen registry.

Screens never import the app (``idmm_tui.tui.app``): they read its settings through the small
:class:`Dashboard` protocol and ask it for anything else (open a run, launch, stop…) by posting the
messages of ``messages.py``, which bubble from the screen to the app's ``on_…`` handlers.

A :class:`DashboardScreen` subclass with a ``HELP_TITLE`` registers itself: its ``BINDINGS`` (their
``tooltip``, else ``description``) make a section of the key reference (``?``), and with a
``COMMAND`` it can be opened from the command palette (``ctrl+p``). Every module of this package is
imported when the dashboard starts (and every module named by an ``idmm.screens`` entry point), so a
new screen is one new file.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
from pathlib import Path
from typing import ClassVar, Protocol, cast

from textual.screen import Screen

#: Entry point group of screens shipped by other packages (modules whose import defines them).
ENTRY_POINT_GROUP = "idmm.screens"

_REGISTRY: dict[str, type[DashboardScreen]] = {}
_discovered = False


class Dashboard(Protocol):
    """The app's settings a screen may read (``DashboardScreen.dashboard``)."""

    runs_dir: Path
    recipes_dir: Path | None
    show_system: bool
    scan_interval: float
    tail_interval: float


class DashboardScreen(Screen):
    """A screen of the dashboard: registered (with a ``HELP_TITLE``) and given the app's settings."""

    #: Title of the screen's section in the key reference; "" keeps the screen out of it.
    HELP_TITLE: ClassVar[str] = ""
    #: Where the section goes (ascending); built-in screens use 10-50.
    HELP_ORDER: ClassVar[int] = 100
    #: Keys the screen's widgets handle, not in ``BINDINGS`` (``("up,down", "move")``).
    HELP_EXTRA: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: Command palette entry that opens the screen (only for screens constructed without arguments).
    COMMAND: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("HELP_TITLE") or cls.__dict__.get("COMMAND"):
            _REGISTRY[f"{cls.__module__}.{cls.__qualname__}"] = cls

    @property
    def dashboard(self) -> Dashboard:
        """The app, as far as screens may know it."""
        return cast(Dashboard, self.app)


def discover_screens() -> list[str]:
    """Import this package's modules and the ``idmm.screens`` entry points (once); returns load errors."""
    global _discovered
    if _discovered:
        return []
    _discovered = True
    package = importlib.import_module(__package__ or "idmm_tui.tui.screens")
    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{module.name}")
    errors = []
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            point.load()
        except Exception as exc:  # a broken plugin is reported, the dashboard still starts
            errors.append(f"screen plugin {point.name!r} ({point.value}): {type(exc).__name__}: {exc}")
    return errors


def registered_screens() -> list[type[DashboardScreen]]:
    """The registered screens, in ``HELP_ORDER`` then definition order."""
    screens = list(_REGISTRY.values())
    return sorted(screens, key=lambda cls: cls.HELP_ORDER)


def unregister_screen(cls: type[DashboardScreen]) -> None:
    """Forget a registered screen (tests that define one)."""
    _REGISTRY.pop(f"{cls.__module__}.{cls.__qualname__}", None)
