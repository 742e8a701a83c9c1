"""Stable run colours: a run keeps its colour across screens and sessions (pure: no Textual)."""

from __future__ import annotations

import zlib

#: Tableau 10.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (78, 121, 167),
    (242, 142, 43),
    (225, 87, 89),
    (118, 183, 178),
    (89, 161, 79),
    (237, 201, 72),
    (176, 122, 161),
    (255, 157, 167),
    (156, 117, 95),
    (186, 176, 172),
)


def assign_colors(names: list[str]) -> dict[str, tuple[int, int, int]]:
    """A colour per run name: its hashed palette slot, or the next free one on a collision."""
    taken: set[int] = set()
    out = {}
    for name in names:
        slot = zlib.crc32(name.encode()) % len(PALETTE)
        for k in range(len(PALETTE)):
            if (slot + k) % len(PALETTE) not in taken:
                slot = (slot + k) % len(PALETTE)
                break
        taken.add(slot)
        out[name] = PALETTE[slot]
    return out


def hex_color(rgb: tuple[int, int, int]) -> str:
    """``(78, 121, 167)`` as ``#4e79a7``."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)
