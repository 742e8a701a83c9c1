"""The recipe keys that differ between runs, for the compare screen (pure: no Textual)."""

from __future__ import annotations

import tomllib
from typing import Any

from idmm_tui.recipe import recipe_keys

#: The value of a key that a recipe does not have.
MISSING = object()


def parse_recipe(text_: str | None) -> dict[str, Any]:
    """The recipe's settings as dotted keys (a method's own as ``pretrain.<key>``); ``{}`` if missing or not TOML."""
    if not text_:
        return {}
    try:
        return recipe_keys(tomllib.loads(text_))
    except (tomllib.TOMLDecodeError, ValueError):
        return {}


def recipe_diff(recipes: list[dict[str, Any]], ignore: tuple[str, ...] = ("description",)) -> list[tuple[str, list]]:
    """Keys whose values differ between the flattened recipes: ``[(key, [value or MISSING, …])]``."""
    keys: list[str] = []
    for flat in recipes:
        keys.extend(k for k in flat if k not in keys)
    out = []
    for key in keys:
        if key in ignore:
            continue
        values = [flat.get(key, MISSING) for flat in recipes]
        if any(v != values[0] for v in values[1:]):
            out.append((key, values))
    return out


def fmt_value(value: Any) -> str:
    """A recipe value as TOML would write it (``–`` when missing)."""
    if value is MISSING:
        return "–"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
