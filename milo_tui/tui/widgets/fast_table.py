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
from textual.geometry import Region, Size, Spacing
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import DuplicateKey, Row, RowKey

from milo_tui.tui.widgets.growth import show_growth
from milo_tui.tui.widgets.ordered_table import OrderedTable

WRITTEN_AGAINST_MAJOR = 8  # Textual 8.2.x
FAST_STYLE_CACHE = 20_000  # cell styles kept by position and state (a few screens' worth)
FAST_LINE_CACHE = 4_000  # drawn body lines kept, by position and text (a few screens' worth)
_PRIVATE_MEMBERS = ("_update_dimensions", "_render_cell", "_render_line", "_get_row_style", "_get_offsets",
                    "_get_row_region", "_get_fixed_offset", "_get_styles_to_render_cell", "_clear_caches",
                    "_highlight_cursor", "_row_label_column_width", "_y_offsets")


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


@dataclass(frozen=True, slots=True)
class _LinePass:
    """What every line of one render pass shares, looked up once per pass: DOM styles, reactives
    and column widths cost microseconds each, and DataTable looks them up for every line."""

    base_style: Style
    width: int
    header_height: int  # 0 when the header is hidden
    scroll_x: int
    scroll_y: int
    columns: list
    widths: tuple[int, ...]
    labels: tuple[str, ...]
    state: tuple  # FastOrderedTable._drawing_state()
    cursor_row: int
    hover_row: int
    draws_itself: bool  # the browser's layout: one-line rows, a row cursor, nothing fixed, no row labels


def _padded(text: str, width: int, pad: str) -> str:
    """A cell's text cut or filled to `width` terminal columns, padding included."""
    return pad + set_cell_size(text, max(0, width - 2 * len(pad))) + pad


def _plain(cell: Any) -> bool:
    """A cell drawn as its own text: a str without markup escapes (DataTable reads str cells as markup)."""
    return isinstance(cell, str) and "\\" not in cell


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
    draws_lines_itself = True  # False: every line is drawn DataTable's way (tests compare the two)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Before super(): its watchers clear them.
        self._fast_styles: dict[tuple, Style] = {}  # cell, row and line-end styles by position and state
        self._fast_lines: dict[tuple, Strip] = {}  # body lines by position, text and state
        self._single_line_rows = True  # every row is one line high (load_rows; add_row may say otherwise)
        self._pass: _LinePass | None = None
        self._rendering = False
        self._loaded: dict[str, _LoadedRow] = {}  # row key -> its last loaded form, shown or not
        super().__init__(*args, **kwargs)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._forget_drawing()  # a theme change: component styles differ under the same keys

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._forget_drawing()

    def _forget_drawing(self) -> None:
        self._pass = None
        self._fast_styles.clear()
        self._fast_lines.clear()

    def clear(self, columns: bool = False):
        # DataTable.clear empties its list of every line (`_y_offsets.clear()`), building it first if
        # this update has none; the fast table never asks for that list, so it would be built (O(rows),
        # ~0.1 s at 10,000) only to be emptied. An empty one for this update count is what clear leaves.
        self._offset_cache[self._update_count] = []
        self._single_line_rows = True
        return super().clear(columns)

    def add_row(self, *cells: Any, height: int | None = 1, key: str | None = None, label: Any = None) -> RowKey:
        if height != 1:
            self._single_line_rows = False  # rows no longer map one to one onto lines: DataTable draws
        return super().add_row(*cells, height=height, key=key, label=label)

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

    @property
    def _header_lines(self) -> int:
        """Lines above the first row: the header's height, 0 when it is hidden."""
        return self.header_height if self.show_header else 0

    def _window_rows(self) -> range:
        """The row indexes in the table's window now (rows are one line high: the fast paths' rows)."""
        top = round(self.scroll_offset.y)
        lines = max(0, self.size.height - self._header_lines)
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
        """Body cells drawn as one padded segment (headers, labels, markup escapes and taller rows
        take DataTable's normal path)."""
        if row_index < 0 or column_index < 0:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        row = self.rows.get(row_key)
        value = self._data.get(row_key, {}).get(self._column_locations.get_key(column_index))
        if row is None or row.height != 1 or not _plain(value):
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        return [[Segment(_padded(value, width, " " * self.cell_padding),
                         self._cell_style(row_index, column_index, base_style, cursor, hover))]]

    def _cell_style(self, row_index: int, column_index: int, row_style: Style, cursor: bool, hover: bool,
                    state: tuple | None = None) -> Style:
        """A body cell's style, as DataTable composes it (row style, the cell's place as meta for the
        mouse, the cursor's component style). Kept by position, not by row: rows move, places stay.
        `state`: _drawing_state(), when the caller has it."""
        key = ("cell", row_index, column_index, row_style, cursor, hover, state or self._drawing_state())
        style = self._fast_styles.get(key)
        if style is None:
            if len(self._fast_styles) > FAST_STYLE_CACHE:
                self._fast_styles.clear()
            component_style, post_style = self._get_styles_to_render_cell(
                False, False, row_index < self.fixed_rows or column_index < self.fixed_columns, hover, cursor,
                self.show_cursor, self._show_hover_cursor, self.cursor_foreground_priority == "css",
                self.cursor_background_priority == "css")
            style = row_style + Style.from_meta({"row": row_index, "column": column_index}) + component_style
            style = self._fast_styles[key] = style + post_style
        return style

    def _drawing_state(self) -> tuple:
        """What else a drawn body cell depends on (a change of any of these draws it anew)."""
        return (self.show_cursor, self._show_hover_cursor, self._pseudo_class_state, self.fixed_rows,
                self.fixed_columns, self.cursor_foreground_priority, self.cursor_background_priority)

    # ----- lines ---------------------------------------------------------------------------------
    def render_lines(self, crop: Region) -> list[Strip]:
        self._rendering = True  # lines drawn in this call share one _LinePass, taken on the first line
        try:
            return super().render_lines(crop)
        finally:
            self._rendering, self._pass = False, None

    def render_line(self, y: int) -> Strip:
        """DataTable's render_line, with what its lines share looked up once per pass (_LinePass)."""
        now = self._line_pass()
        if not now.draws_itself:
            return super().render_line(y)
        if y >= now.header_height:
            y += now.scroll_y
        return self._render_line(y, now.scroll_x, now.scroll_x + now.width, now.base_style)

    def _line_pass(self) -> _LinePass:
        """The current pass's shared lookups: kept for the rest of a render_lines call, taken afresh
        for a line drawn outside one (the compositor asks for single lines to find the mouse)."""
        if self._pass is not None:
            return self._pass
        columns = self.ordered_columns
        scroll = self.scroll_offset
        now = _LinePass(
            self.rich_style, self.size.width, self._header_lines, scroll.x, scroll.y,
            columns, tuple(column.get_render_width(self) for column in columns),
            tuple(column.label.plain for column in columns), self._drawing_state(), self.cursor_coordinate.row,
            self.hover_coordinate.row,
            draws_itself=(self.draws_lines_itself and self._single_line_rows and self.cursor_type == "row"
                          and not self.fixed_rows and not self.fixed_columns and not self._row_label_column_width))
        if self._rendering:
            self._pass = now
        return now

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:  # type: ignore[override]
        """A body line drawn from its cells' text, and kept by what it shows and where.

        DataTable keys its drawn lines and cells by the table's update count, so after any change
        (a row added or moved) it draws every line of the window again, cell by cell with their
        styles, and finds each line's row in a list of every line of the table that it rebuilds
        per change. Our rows are one line each, so line y is row y - header; a line is kept by its
        position and text, and cell styles by position, so a tick that moves rows draws only the
        lines whose text changed, from styles it already has. The result is the same strip DataTable
        draws (tests/tui/test_fast_table.py compares them); any other layout takes DataTable's path.
        """
        now = self._line_pass()
        if not now.draws_itself:
            return super()._render_line(y, x1, x2, base_style)
        row_index = y - now.header_height
        if row_index < 0:
            return self._header_line(now, y, x1, x2, base_style)
        row_key = self._row_locations.get_key(row_index)
        values = self._data.get(row_key) if row_key is not None else None
        if values is None:
            return Strip.blank(now.width, base_style)
        cells = tuple(values.get(column.key) for column in now.columns)
        if not all(map(_plain, cells)) or self.rows[row_key].height != 1:
            return super()._render_line(y, x1, x2, base_style)
        cursor, hover = now.cursor_row == row_index, now.hover_row == row_index
        key = (row_index, cells, cursor, hover, x1, x2, now.width, now.widths, base_style, now.state)
        strip = self._fast_lines.get(key)
        if strip is None:
            if len(self._fast_lines) > FAST_LINE_CACHE:
                self._fast_lines.clear()
            strip = self._fast_lines[key] = self._draw_line(now, row_index, cells, cursor, hover, x1, x2, base_style)
        return strip

    def _header_line(self, now: _LinePass, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        """DataTable's header line (drawn through rich, milliseconds), kept until what it shows changes."""
        key = ("header", y, x1, x2, now.width, now.widths, now.labels, base_style, now.header_height,
               now.cursor_row == -1, now.hover_row == -1, now.state)
        strip = self._fast_lines.get(key)
        if strip is None:
            strip = self._fast_lines[key] = super()._render_line(y, x1, x2, base_style)
        return strip

    def _draw_line(self, now: _LinePass, row_index: int, cells: tuple[str, ...], cursor: bool, hover: bool,
                   x1: int, x2: int, base_style: Style) -> Strip:
        """DataTable's _render_line_in_row and _render_line for one body row, with a row cursor. Cells
        wholly right of the window are left out: DataTable draws them and then cuts them off."""
        state = now.state
        row_style = self._row_style(row_index, base_style, state)
        pad = " " * self.cell_padding
        segments, x = [], 0
        for column_index, (cell, cell_width) in enumerate(zip(cells, now.widths)):
            if x >= x2:
                break
            segments.append(Segment(_padded(cell, cell_width, pad),
                                    self._cell_style(row_index, column_index, row_style, cursor, hover, state)))
            x += cell_width
        else:
            segments.append(Segment(" " * max(0, now.width - x),
                                    self._line_end_style(row_index, row_style, cursor, hover, state)))
        return Strip(segments).crop(x1).adjust_cell_length(now.width, base_style).simplify()

    def _row_style(self, row_index: int, base_style: Style, state: tuple) -> Style:
        key = ("row", row_index % 2, self.zebra_stripes, base_style, state)
        style = self._fast_styles.get(key)
        if style is None:  # a DOM style lookup: once per row parity, not once per line
            style = self._fast_styles[key] = self._get_row_style(row_index, base_style)
        return style

    def _line_end_style(self, row_index: int, row_style: Style, cursor: bool, hover: bool, state: tuple) -> Style:
        """The style of the blank that extends a row to the widget's edge (row cursor)."""
        key = ("end", row_index, row_style, cursor, hover, state)
        style = self._fast_styles.get(key)
        if style is None:
            extend_style, _ = self._get_styles_to_render_cell(False, False, False, hover, cursor, self.show_cursor,
                                                              self._show_hover_cursor, False, False)
            style = row_style + extend_style + Style.from_meta({"row": row_index, "column": 0, "out_of_bounds": True})
            self._fast_styles[key] = style
        return style

    # ----- geometry of one-line rows ---------------------------------------------------------------
    # DataTable finds where a row is by walking a list of every row (or every line) of the table,
    # rebuilt after each change: O(rows) per tick for the header line, the cursor's row and the
    # fixed offset. With one-line rows, row i is line i below the header.

    def _get_offsets(self, y: int) -> tuple[RowKey, int]:  # type: ignore[override]
        if not self._single_line_rows:
            return super()._get_offsets(y)
        header_height = self.header_height
        if self.show_header:
            if y < header_height:
                return self._header_row_key, y
            y -= header_height
        row_key = self._row_locations.get_key(y)
        if row_key is None:
            raise LookupError(f"Y coord {y!r} is greater than total height")
        return row_key, 0

    def _get_row_region(self, row_index: int) -> Region:  # type: ignore[override]
        if not self._single_line_rows or not self.is_valid_row_index(row_index):
            return super()._get_row_region(row_index)
        row_width = sum(column.get_render_width(self) for column in self.columns.values()) + \
            self._row_label_column_width
        y = row_index + self._header_lines
        return Region(0, y, max(self.size.width, row_width), 1)

    def _get_fixed_offset(self) -> Spacing:  # type: ignore[override]
        if self.fixed_rows or self.fixed_columns:
            return super()._get_fixed_offset()
        return Spacing(self._header_lines, 0, 0, self._row_label_column_width)

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
        header_height = self._header_lines
        # The rows' total height (DataTable's _total_row_height builds a list of every line of the table
        # for that: ~10 ms a tick at 10,000 rows).
        rows_height = self.row_count if self._single_line_rows else sum(row.height for row in self.rows.values())
        size = Size(total_width, rows_height + header_height)
        if size != self.virtual_size:
            # Setting virtual_size repaints the whole table; a table that only grew needs its scrollbar
            # moved (growth.py) and no repaint: rows that show in the window repaint themselves
            # (load_rows, set_order), and a width change repainted everything above.
            before = self.virtual_size
            self.set_reactive(DataTable.virtual_size, size)
            show_growth(self, before, size)
