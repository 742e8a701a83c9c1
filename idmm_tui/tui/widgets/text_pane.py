"""A Static for text that changes often (headers, title bars): repainted only when it changes."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import Static


def display_rows(text: Text, width: int) -> int:
    """Rows ``text`` takes when wrapped at ``width`` cells."""
    width = max(width, 1)
    return sum(max(1, -(-cell_len(line) // width)) for line in text.plain.split("\n"))


class TextPane(Static):
    """``show(text)``: nothing happens for the same text; no layout pass when its height stays."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.text: Text | None = None

    def show(self, text: Text) -> None:
        if text == self.text:
            return
        width = self.content_region.width or self.size.width
        layout = self.text is None or display_rows(text, width) != display_rows(self.text, width)
        self.text = text
        self.update(text, layout=layout)
