"""The runs table's DataTable: rows updated in place, only the changed cells rendered again.

``DataTable.update_cell`` bumps the table's update count, which every render cache is keyed on: the
next paint renders every visible row again (~45 ms for 38 rows of 11 cells on a 2-core machine).
:meth:`RunsTable.update_cells` instead forgets only what was rendered for the changed cells and their
row, and repaints that row. It uses DataTable's internal caches (Textual 8.2); where they are not
as expected, or a new value is wider than its column, it falls back to ``update_cell``.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import CellType, ColumnKey, RowKey


def cell_width(cell: object) -> int:
    """Terminal cells a DataTable cell takes (str cells are read as markup, as DataTable does)."""
    if isinstance(cell, Text):
        return cell.cell_len
    return Text.from_markup(str(cell)).cell_len


class RunsTable(DataTable):
    """A DataTable with :meth:`update_cells` (cheap in-place row updates) and :meth:`reorder`."""

    def update_cells(self, row_key: str, values: Mapping[str, CellType]) -> None:
        """Set cells of one row; only they (and their row's line) are rendered again."""
        key = RowKey(row_key)
        if not values or key not in self._row_locations:
            return
        try:
            self._update_in_place(key, values)
        except (AttributeError, IndexError, TypeError, KeyError):  # DataTable internals not as expected
            for column, value in values.items():
                self.update_cell(row_key, column, value, update_width=True)

    def _update_in_place(self, key: RowKey, values: Mapping[str, CellType]) -> None:
        columns = {ColumnKey(column): value for column, value in values.items()}
        if any(cell_width(value) > self.columns[column].content_width for column, value in columns.items()):
            for column, value in values.items():  # a wider value: the columns' widths change, render all
                self.update_cell(key, column, value, update_width=True)
            return
        index = self._row_locations.get(key)
        self._data[key].update(columns)
        # (LRUCache has keys() but no __iter__)
        cells = [k for k in self._cell_render_cache.keys() if k[0] == key and k[1] in columns]  # noqa: SIM118
        rows = [k for k in self._row_render_cache.keys() if k[0] == key]  # noqa: SIM118
        renderables = [k for k in self._row_renderable_cache.keys() if k[1] == index]  # noqa: SIM118
        for cache, keys in (
            (self._cell_render_cache, cells),
            (self._row_render_cache, rows),
            (self._row_renderable_cache, renderables),
        ):
            for cache_key in keys:
                cache.discard(cache_key)
        self._line_cache.clear()
        self.refresh_row(index)

    def reorder(self, order: list[str]) -> None:
        """Put the rows (every one, by key) in this order without adding them again.

        ``DataTable.sort`` hands its key function the cells of one column; each row's cell object in
        the first column is its own (``RunsScreen`` makes a new one per row), so it names the row.
        """
        column = next(iter(self.columns))
        rank = {id(self.get_cell(key, column)): i for i, key in enumerate(order)}
        self.sort(column, key=lambda cell: rank[id(cell)])

    def relabel(self, labels: Mapping[str, str | Text]) -> bool:
        """Change column labels in place (False: not possible here; clear and add the columns again)."""
        try:
            for key, label in labels.items():
                column = self.columns[ColumnKey(key)]
                column.label = Text(label) if isinstance(label, str) else label
                column.content_width = max(column.content_width, column.label.cell_len)
            self._require_update_dimensions = True
            self._update_count += 1
        except (AttributeError, KeyError):
            return False
        self.refresh()
        return True
