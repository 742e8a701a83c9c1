"""The key reference, built from the ``BINDINGS`` of the app and of the registered screens (no widgets)."""

from __future__ import annotations

from collections.abc import Iterable

from textual.binding import Binding, BindingType

KEY_NAMES = {
    "question_mark": "?",
    "slash": "/",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
    "space": "Space",
    "enter": "Enter",
    "escape": "Esc",
    "ctrl+s": "Ctrl+S",
    "ctrl+q": "Ctrl+Q",
    "ctrl+p": "Ctrl+P",
    "O": "Shift+O",
}

#: One section of the key reference: its title and its (keys, what they do) rows.
Section = tuple[str, list[tuple[str, str]]]


def binding_rows(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    """``(keys, what they do)`` of each binding: its tooltip, else its description."""
    rows = []
    for item in bindings:
        if isinstance(item, Binding):
            keys, description = item.key, item.tooltip or item.description
        else:
            keys, description = item[0], item[2] if len(item) > 2 else item[1]
        rows.append((keys, description or ""))
    return rows


def key_label(keys: str) -> str:
    """``question_mark,escape`` as ``? / Esc``."""
    return " / ".join(KEY_NAMES.get(k.strip(), k.strip()) for k in keys.split(","))


def help_sections(app: type, screens: Iterable[type]) -> list[Section]:
    """ "Everywhere" (the app's bindings and ``HELP_EXTRA``), then one section per screen with a ``HELP_TITLE``."""
    sections: list[Section] = [("Everywhere", binding_rows(app.BINDINGS) + list(getattr(app, "HELP_EXTRA", ())))]
    for screen in screens:
        title = getattr(screen, "HELP_TITLE", "")
        if title:
            sections.append((title, binding_rows(screen.BINDINGS) + list(getattr(screen, "HELP_EXTRA", ()))))
    return sections
