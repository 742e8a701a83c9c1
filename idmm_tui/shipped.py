"""Files idmm ships beside its code: the recipes and the zoo catalogue.

In a source checkout (or an editable install) they are the repository's top-level ``recipes/`` and
``zoo/catalogue.toml``; a wheel carries copies of them in ``idmm_tui/_shipped/`` (``setup.py`` puts
them there at build time), so ``pip install idmm`` works outside the source tree:
``idmm run demo`` (or ``recipes/demo.toml`` where no such file exists) runs the shipped demo, and
``idmm recipes show NAME --out FILE`` copies a recipe out to edit.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _checkout() -> Path | None:
    """The source checkout this package runs from, when it does (editable install, tests)."""
    root = _PACKAGE.parent
    if (root / "pyproject.toml").is_file() and (root / "recipes").is_dir():
        return root
    return None


def _shipped(*parts: str) -> Path:
    return Path(str(files("idmm_tui").joinpath("_shipped", *parts)))


def recipes_dir() -> Path:
    """The folder of shipped recipes."""
    root = _checkout()
    return root / "recipes" if root is not None else _shipped("recipes")


def catalogue_file() -> Path | None:
    """The zoo catalogue that ships with idmm (None when neither the checkout nor the wheel has one)."""
    root = _checkout()
    path = root / "zoo" / "catalogue.toml" if root is not None else _shipped("zoo", "catalogue.toml")
    return path if path.is_file() else None


def recipe_names() -> list[str]:
    folder = recipes_dir()
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def shipped_recipe(ref: str | Path) -> Path | None:
    """The shipped recipe that ``ref`` names when ``ref`` is no file here: ``demo``, ``demo.toml`` or
    ``recipes/demo.toml`` (the README's commands work from any directory)."""
    ref = Path(ref)
    if ref.exists() or (len(ref.parts) > 1 and ref.parts[:-1] != ("recipes",)):
        return None
    path = recipes_dir() / f"{ref.name.removesuffix('.toml')}.toml"
    return path if path.is_file() else None
