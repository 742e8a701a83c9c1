"""One registration mechanism for methods, datasets and backbones (timm's ``@register_model`` pattern).

A :class:`Registry` maps names to entries. Entries register themselves with a decorator placed beside
their definition (``@register_method``, ``@register_dataset(...)``, ``@register_backbone(...)``); the
registry finds the definitions by importing, on first use,

* every module of its package (``idmm_tui.methods``, ``idmm_tui.data``, ``idmm_tui.models``): adding
  a file there is enough, and
* every module named by an entry point of its group (``idmm.methods``, ``idmm.datasets``,
  ``idmm.backbones``): a separately installed package adds entries without touching idmm::

      [project.entry-points."idmm.methods"]
      my_method = "my_package.my_method"      # a module whose import registers the method

Discovery is lazy, so commands that never look a name up never import torch through a registry.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
from collections.abc import Iterator
from typing import Generic, TypeVar

from idmm_tui.errors import IdmmError, UnknownNameError

T = TypeVar("T")


class PluginError(IdmmError):
    """A plugin named by an entry point could not be imported (exit code 2)."""

    exit_code = 2


class Registry(Generic[T]):
    """Names → entries of one kind, filled by decorators and found by package / entry-point discovery."""

    def __init__(self, kind: str, package: str, entry_point_group: str) -> None:
        self.kind = kind
        self.package = package
        self.entry_point_group = entry_point_group
        self._entries: dict[str, T] = {}
        self._discovered = False

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` as ``name``; the same entry twice is a no-op, another one under a taken name an error."""
        old = self._entries.get(name)
        if old is not None and old is not entry and old != entry:
            raise ValueError(f"{self.kind} {name!r} is already registered ({old!r})")
        self._entries[name] = entry
        return entry

    def discover(self) -> None:
        """Import the package's modules and the entry points' modules, once."""
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{self.package}.{module.name}")
        for point in importlib.metadata.entry_points(group=self.entry_point_group):
            try:
                point.load()
            except Exception as exc:  # a broken plugin names itself instead of a traceback
                raise PluginError(
                    f"{self.kind} plugin {point.name!r} ({point.value}, entry point group "
                    f"{self.entry_point_group!r}) failed to load: {type(exc).__name__}: {exc}"
                ) from exc

    def get(self, name: str) -> T:
        """The entry called ``name``; an :class:`UnknownNameError` suggesting close names otherwise."""
        self.discover()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._entries) from None

    def names(self) -> list[str]:
        """Registered names in registration order."""
        self.discover()
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        self.discover()
        return iter(list(self._entries.values()))
