"""Quarantine: the only code that reaches into DataTable's private internals.

Written against Textual 8.2 (tested with 8.2.8). `available()` says whether the
installed Textual is that major version and still has the members used here;
if not, `ordered_table.make_ordered_table` falls back to the public-API
`OrderedTable`, which does the same job more slowly. `MILO_TUI_FAST_TABLE=0`
forces the fallback (tests/tui/test_tui_app.py runs the browser that way).

Why it exists, measured (docs/PERFORMANCE.md, TUI): DataTable measures every
cell of every new row through rich and pays a reactive update per add_row, so
a 10,000-row rebuild took seconds; and it re-renders every visible cell
through rich whenever any row is added or moves, a third of a second per
refresh tick on a loaded machine. Our cells are one line of plain text, so
widths are cell lengths, bulk loads set the row bookkeeping once, a new order
is one pass over the row-position map, and body cells are one cached segment.
A tick repaints the table only when the rows in its window changed (during a
run most new rows land below it), and a table that grew is laid out without
being repainted (docs/PERFORMANCE.md, TUI, evening session).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from operator import itemgetter
from typing import Any, Callable, Iterable

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.widgets import DataTable
from textual.widgets.data_table import DuplicateKey, Row, RowKey

from milo_tui.tui.widgets.ordered_table import OrderedTable

WRITTEN_AGAINST_MAJOR = 8  # Textual 8.2.x
FAST_CELL_CACHE = 20_000  # rendered body cells kept (a few screens' worth, with cursor/zebra variants)
_PRIVATE_MEMBERS = ("_update_dimensions", "_render_cell", "_get_styles_to_render_cell", "_clear_caches",
                    "_highlight_cursor")


@dataclass(slots=True)
class _LoadedRow:
    """A row as DataTable keeps it, built once from the caller's cells and re-used when the row is
    loaded again (a filter cleared): no per-cell dict building or measuring the second time."""

    cells: list[Any]  # the caller's list this was built from (compared by identity)
    key: RowKey
    data: dict  # column key -> cell, DataTable's _data entry
    row: Row
    widths: tuple[int, ...]  # each cell's width in terminal columns, in column order


def _width(cell: Any) -> int:
    text = cell if isinstance(cell, str) else ("" if cell is None else str(cell))  # no copy of a str cell
    return len(text) if text.isascii() else cell_len(text)


def available() -> bool:
    """True when the installed Textual is the major version this was written against, with its internals."""
    try:
        major = int(version("textual").split(".")[0])
    except (PackageNotFoundError, ValueError):
        return False
    return major == WRITTEN_AGAINST_MAJOR and all(hasattr(DataTable, name) for name in _PRIVATE_MEMBERS)


class FastOrderedTable(OrderedTable):
    """OrderedTable with bulk loads, one-pass reordering and cached plain body cells."""

    uses_fast_paths = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._fast_cell_cache: dict[tuple, list[list[Segment]]] = {}  # before super(): its watchers clear it
        self._loaded: dict[str, _LoadedRow] = {}  # row key -> its last loaded form, shown or not
        super().__init__(*args, **kwargs)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._fast_cell_cache.clear()  # a theme change: component styles differ under the same keys

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._fast_cell_cache.clear()

    def set_order(self, row_ids: list[str], row_id_of: Callable[[Any], str]) -> None:
        """One pass that sets the row positions, instead of DataTable.sort's key calls and sort.

        Repaints only when the rows in the window changed: during a run most
        new rows land below the window, and repainting the table on every
        tick was the largest part of a tick's screen update.
        """
        before = self._window_keys()
        keys = {key.value: key for key in self.rows}
        locations = type(self._row_locations)  # DataTable's two-way dict, whatever it is called
        self._row_locations = locations({keys[row_id]: index for index, row_id in enumerate(row_ids)})
        self._update_count += 1
        if self._window_keys() != before:
            self.refresh()

    def _window_rows(self) -> range:
        """The row indexes in the table's window now (rows are one line high: the fast paths' rows)."""
        top = round(self.scroll_offset.y)
        lines = max(0, self.size.height - (self.header_height if self.show_header else 0))
        return range(top, min(self.row_count, top + lines))

    def _window_keys(self) -> list[RowKey]:
        get_key = self._row_locations.get_key
        return [get_key(index) for index in self._window_rows()]

    def load_rows(self, rows: list[tuple[str, list[Any]]]) -> None:
        """Append many rows with their bookkeeping set directly (no per-row measuring or refresh)."""
        was_empty = self.row_count == 0
        column_keys = [column.key for column in self.ordered_columns]
        data, table_rows = self._data, self.rows
        start = len(data)
        keys: list[RowKey] = []
        for key, cells in rows:
            loaded = self._loaded.get(key)
            if loaded is None or loaded.cells is not cells:
                row_key = RowKey(key)
                loaded = _LoadedRow(cells, row_key, dict(zip(column_keys, cells)),
                                    Row(row_key, 1, None, False), tuple(map(_width, cells)))
                self._loaded[key] = loaded
            row_key = loaded.key
            if row_key in data:
                raise DuplicateKey(f"The row key {row_key!r} already exists.")
            data[row_key] = loaded.data
            table_rows[row_key] = loaded.row
            keys.append(row_key)
        if was_empty:  # a refill: build the row-position map in one go
            self._row_locations = type(self._row_locations)({key: index for index, key in enumerate(keys)})
        else:
            for index, row_key in enumerate(keys, start):
                self._row_locations[row_key] = index
        self.cursor_coordinate = self.cursor_coordinate
        if was_empty and rows and self.show_cursor and self.cursor_type != "none":
            self._highlight_cursor()
        self._update_count += 1
        # Sized now rather than when the table next goes idle (DataTable's way): the new size is then
        # laid out in the same screen update as the new rows, not in a second one right after.
        self._update_dimensions(keys)
        window = self._window_rows()
        if start < window.stop or not window:
            self.refresh()  # appended rows that show in the window (set_order may not move any)

    def update_cell(self, row_key: RowKey | str, column_key: Any, value: Any, *, update_width: bool = False) -> None:
        """DataTable's, after forgetting the row's loaded form (its cells are no longer the caller's list)."""
        self._loaded.pop(row_key.value if isinstance(row_key, RowKey) else row_key, None)
        super().update_cell(row_key, column_key, value, update_width=update_width)

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,  # type: ignore[override]
                     cursor: bool = False, hover: bool = False):
        """Body cells drawn as one padded segment, cached by their text rather than the table's update count.

        Headers, labels and anything unusual (markup escapes, taller rows)
        take DataTable's normal path.
        """
        if row_index < 0 or column_index < 0:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        row = self.rows.get(row_key)
        value = self._data.get(row_key, {}).get(column_key)
        if row is None or row.height != 1 or not isinstance(value, str) or "\\" in value:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        cache_key = (value, row_index, column_index, base_style, width, cursor, hover, self._show_hover_cursor,
                     self.show_cursor, self._pseudo_class_state)
        lines = self._fast_cell_cache.get(cache_key)
        if lines is None:
            component_style, post_style = self._get_styles_to_render_cell(
                False, False, row_index < self.fixed_rows or column_index < self.fixed_columns, hover, cursor,
                self.show_cursor, self._show_hover_cursor, self.cursor_foreground_priority == "css",
                self.cursor_background_priority == "css")
            style = base_style + Style.from_meta({"row": row_index, "column": column_index}) + component_style
            pad = " " * self.cell_padding
            text = pad + set_cell_size(value, max(0, width - 2 * self.cell_padding)) + pad
            lines = [[Segment(text, style + post_style)]]
            if len(self._fast_cell_cache) > FAST_CELL_CACHE:
                self._fast_cell_cache.clear()
            self._fast_cell_cache[cache_key] = lines
        return lines

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:  # type: ignore[override]
        """Column widths from the cells' lengths (plain one-line text) instead of rich measuring,
        taken from the widths recorded when the rows were loaded."""
        columns = self.ordered_columns
        data, loaded = self._data, self._loaded
        widths: list[tuple[int, ...]] = []
        for key in new_rows:
            row_data = data.get(key)
            if row_data is None:
                continue  # removed before the table went idle
            entry = loaded.get(key.value)
            if entry is not None and entry.data is row_data:
                widths.append(entry.widths)
            else:
                widths.append(tuple(_width(row_data.get(column.key)) for column in columns))
        widths_before = [column.content_width for column in columns]
        for index, column in enumerate(columns):
            width = max(map(itemgetter(index), widths), default=0)
            column.content_width = max(column.content_width, width, cell_len(str(column.label)))
        if [column.content_width for column in columns] != widths_before:
            # Every row is drawn at the new widths (set_order repaints only a changed window). Unchanged
            # widths keep the drawn lines: clearing them each tick re-rendered the whole window.
            self._line_cache.clear()
            self._styles_cache.clear()
            self.refresh()
        total_width = sum(column.get_render_width(self) for column in columns) + self._row_label_column_width
        header_height = self.header_height if self.show_header else 0
        # The rows' total height (DataTable's _total_row_height builds a list of every line of the table
        # for that: ~10 ms a tick at 10,000 rows).
        size = Size(total_width, sum(row.height for row in self.rows.values()) + header_height)
        if size != self.virtual_size:
            # Setting virtual_size repaints the whole table; a table that only grew needs a layout (its
            # scrollbar) and no repaint: rows that show in the window repaint themselves (load_rows,
            # set_order), and a width change repainted everything above.
            self.set_reactive(DataTable.virtual_size, size)
            self.refresh(layout=True, repaint=False)
