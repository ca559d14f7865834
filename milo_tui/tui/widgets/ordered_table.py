"""A DataTable that shows its rows in an order the caller decides, built on Textual's public API.

The model browser keeps its own sorted list of row ids; this table only has
to load rows and put them in that order. `OrderedTable` does both with
`add_row` and `sort` (slow at 10,000 rows, but correct on any Textual).
`make_ordered_table` returns the faster subclass from `fast_table` when the
Textual it was written against is installed, and this one otherwise (or
when `MILO_TUI_FAST_TABLE=0`).
"""

from __future__ import annotations

import os
from typing import Any, Callable

from textual.widgets import DataTable

FAST_TABLE_SWITCH = "MILO_TUI_FAST_TABLE"  # "0" turns the fast table off (tests, a new Textual)


class OrderedTable(DataTable):
    """Public-API table: rows loaded with add_row, ordered with DataTable.sort."""

    uses_fast_paths = False

    def load_rows(self, rows: list[tuple[str, list[Any]]]) -> None:
        """Append rows (key, cells) in the given order."""
        for key, cells in rows:
            self.add_row(*cells, key=key)

    def set_order(self, row_ids: list[str], row_id_of: Callable[[Any], str]) -> None:
        """Show every row of the table in the order of `row_ids`.

        The public API can only sort by cell values, so the rows are sorted
        by the position in `row_ids` of the row that the first column's cell
        belongs to (`row_id_of(cell)`, which the caller provides).
        """
        if self.row_count:
            position = {row_id: index for index, row_id in enumerate(row_ids)}
            first_column = next(iter(self.columns))
            self.sort(first_column, key=lambda cell: position.get(row_id_of(cell), len(position)))


def fast_table_wanted() -> bool:
    return os.environ.get(FAST_TABLE_SWITCH, "1") != "0"


def make_ordered_table(**kwargs: Any) -> OrderedTable:
    """The fast table when it fits the installed Textual (and is not switched off), else the public one."""
    if fast_table_wanted():
        from milo_tui.tui.widgets import fast_table

        if fast_table.available():
            return fast_table.FastOrderedTable(**kwargs)
    return OrderedTable(**kwargs)
