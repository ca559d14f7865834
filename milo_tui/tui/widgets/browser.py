"""The model browser: every model of the run, best first, re-sortable, filterable.

Built for 10,000+ rows. The browser keeps its own sorted list of
(sort key, row id); rows that finish during a run are appended to the table
and merged into that list at their sorted place (Timsort merges the two sorted
runs in linear time), and the table's row positions are set from it in one
pass: no full re-sort per refresh tick. Only a sort change sorts everything
(keys computed once per row), and only a filter change (debounced while
typing) rebuilds the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from rich.cells import cell_len, set_cell_size
from rich.markup import escape
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.timer import Timer
from textual.geometry import Size
from textual.widgets import DataTable, Input, Static
from textual.widgets._data_table import DuplicateKey, Row, RowKey

try:  # DataTable's own row-position map (textual 8.x); without it we fall back to DataTable.sort
    from textual._two_way_dict import TwoWayDict
except ImportError:  # pragma: no cover - depends on the textual version
    TwoWayDict = None  # type: ignore[assignment,misc]

from milo_tui.tui import formatting as fmt
from milo_tui.tui.widgets.ordered_input import OrderedInput
from milo_tui.runstate import ModelRow, RunState

PHASE_FILTERS = ("all", "main", "per-class", "ovr")
FILTER_DEBOUNCE = 0.25
FULL_REBUILD_AT = 400  # more changed rows than this in one tick: rebuild instead of patching
FAST_CELL_CACHE = 20_000  # rendered body cells kept (a few screens' worth, with cursor/zebra variants)


class RowCell(str):
    """The first cell of a row: displays the algorithm, carries the row id for sorting."""

    row_id: str

    def __new__(cls, text: str, row_id: str) -> "RowCell":
        cell = super().__new__(cls, text)
        cell.row_id = row_id
        return cell


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    value: Callable[[ModelRow], Any]  # sort value
    render: Callable[[ModelRow], str]
    descending_first: bool = False  # metrics: best (highest) first


def _metric_column(key: str, label: str, name: str, lower_is_better: bool = False) -> Column:
    def value(row: ModelRow) -> float:
        metric = row.metric(name)
        if metric is None:
            return float("inf") if lower_is_better else float("-inf")
        return metric

    return Column(key, label, value, lambda row: fmt.metric(row.metric(name)), not lower_is_better)


def _class_text(row: ModelRow) -> str:
    if row.class_index is None:
        return row.kind
    return f"{row.kind}:{row.class_label or row.class_index}"


COLUMNS: tuple[Column, ...] = (
    Column("algorithm", "Alg", lambda r: r.algorithm, lambda r: r.algorithm),
    Column("scaler", "Scaler", lambda r: r.scaler, lambda r: r.scaler),
    Column("selector", "Selector", lambda r: r.selector, lambda r: r.selector),
    Column("searcher", "Search", lambda r: r.searcher, lambda r: r.searcher),
    Column("scorer", "Scorer", lambda r: r.scorer, lambda r: r.scorer),
    Column("rank", "#", lambda r: r.rank, lambda r: r.rank),
    Column("kind", "Phase:class", lambda r: (r.kind, r.class_index or 0), _class_text),
    _metric_column("avg_sn_sp", "SnSp", "avg_sn_sp"),
    _metric_column("roc_auc", "AUC", "roc_auc"),
    _metric_column("sensitivity", "Sens", "sensitivity"),
    _metric_column("specificity", "Spec", "specificity"),
    _metric_column("f1", "F1", "f1"),
    _metric_column("accuracy", "Acc", "accuracy"),
    _metric_column("mcc", "MCC", "mcc"),
    _metric_column("brier_score", "Brier", "brier_score", lower_is_better=True),
    Column("key", "Key", lambda r: r.key, lambda r: r.key),
)
COLUMN_BY_KEY = {c.key: c for c in COLUMNS}
BEST = "best"  # the default order: avg_sn_sp, sensitivity, f1 (all descending)


def best_key(row: ModelRow) -> tuple:
    order = row.best_order_key()
    return (-order[0], -order[1], -order[2], row.row_id)


def sort_key_function(sort_column: str, descending: bool) -> Callable[[ModelRow], Any]:
    """A key for sorted(..., key=) that puts rows in the browser's order (ties: best first)."""
    if sort_column == BEST:
        return best_key
    column = COLUMN_BY_KEY[sort_column]
    if isinstance(column.value(ModelRow(key="")), float):
        sign = -1.0 if descending else 1.0
        return lambda row: (sign * column.value(row), best_key(row))
    return lambda row: (_Reversed(column.value(row)) if descending else column.value(row), best_key(row))


class _Reversed:
    """Wraps a value so that sorting ascending puts it in descending order."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: "_Reversed") -> bool:
        return other.value < self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and other.value == self.value


def row_matches(row: ModelRow, text: str, phase: str, class_filter: str | None) -> bool:
    if phase != "all" and row.kind != phase:
        return False
    if class_filter is not None and (row.class_label or str(row.class_index)) != class_filter:
        return False
    return not text or all(word in row.search_text() for word in text.lower().split())


def _plain(text: str) -> str:
    return escape(text) if "[" in text else text


class ModelTable(DataTable):
    """The DataTable of the browser; Enter (row selected) opens the model details.

    DataTable measures every cell of every new row with rich and pays a reactive
    update per add_row; at 10,000 rows that is seconds. Our cells are one-line
    plain text, so widths are their cell lengths, and bulk loads set the row
    bookkeeping once. Both lean on DataTable internals (textual 8.x); if those
    change, `_fast_paths` turns off and the public API is used instead.
    """

    _fast_paths = hasattr(DataTable, "_update_dimensions") and hasattr(DataTable, "_total_row_height")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._fast_cell_cache: dict[tuple, list[list[Segment]]] = {}  # before super(): its watchers clear it
        super().__init__(*args, **kwargs)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._fast_cell_cache.clear()  # a theme change: component styles differ under the same keys

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._fast_cell_cache.clear()
    _can_set_order = TwoWayDict is not None

    def set_order(self, row_ids: list[str], fallback_key: Callable[[Any], Any]) -> None:
        """Show the rows in this order (every row of the table, each once).

        One pass that sets the row positions, instead of DataTable.sort's
        key calls and sort; `fallback_key` (a sort key over the first cell)
        is used if the internals are not there.
        """
        if not self._can_set_order or not hasattr(self, "_row_locations"):
            self.sort(COLUMNS[0].key, key=fallback_key)
            return
        keys = {key.value: key for key in self.rows}
        self._row_locations = TwoWayDict({keys[row_id]: index for index, row_id in enumerate(row_ids)})
        self._update_count += 1
        self.refresh()

    def load_rows(self, rows: list[tuple[str, list[Any]]]) -> None:
        """Append many rows at once (the table is usually empty: a rebuild)."""
        if not self._fast_paths:
            for key, cells in rows:
                self.add_row(*cells, key=key)
            return
        try:
            was_empty = self.row_count == 0
            columns = self.ordered_columns
            for key, cells in rows:
                row_key = RowKey(key)
                if row_key in self._row_locations:
                    raise DuplicateKey(f"The row key {row_key!r} already exists.")
                self._row_locations[row_key] = len(self._data)
                self._data[row_key] = {column.key: cell for column, cell in zip(columns, cells)}
                self.rows[row_key] = Row(row_key, 1, None, False)
                self._new_rows.add(row_key)
        except AttributeError:
            type(self)._fast_paths = False
            raise
        self._require_update_dimensions = True
        self.cursor_coordinate = self.cursor_coordinate
        if was_empty and rows and self.show_cursor and self.cursor_type != "none":
            self._highlight_cursor()
        self._update_count += 1
        self.check_idle()

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,  # type: ignore[override]
                     cursor: bool = False, hover: bool = False):
        """Body cells drawn as one padded segment, cached by their text rather than the table's
        update count.

        DataTable renders each cell through rich (markup parse, padding,
        line splitting) and drops its cell cache whenever any row is added or
        moves, so every tick of a live run re-rendered every visible cell
        (~0.5 ms each on a loaded machine: a third of a second per tick).
        Our body cells are one line of plain text, so the segment is built
        directly; headers, labels and anything unusual take the normal path.
        """
        if row_index < 0 or column_index < 0 or not self._fast_paths:
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

    def _update_dimensions(self, new_rows) -> None:  # type: ignore[override]
        if not self._fast_paths:
            super()._update_dimensions(new_rows)
            return
        columns = list(self.columns.values())
        data = self._data
        rows = [data[key] for key in new_rows if key in data]
        for column in columns:
            texts = [row.get(column.key) or "" for row in rows]
            width = max((len(t) if t.isascii() else cell_len(t) for t in map(str, texts)), default=0)
            column.content_width = max(column.content_width, width, cell_len(str(column.label)))
        self._line_cache.clear()
        self._styles_cache.clear()
        total_width = sum(column.get_render_width(self) for column in columns) + self._row_label_column_width
        header_height = self.header_height if self.show_header else 0
        self.virtual_size = Size(total_width, self._total_row_height + header_height)


class ModelBrowser(Vertical):
    DEFAULT_CSS = """
    ModelBrowser { height: 1fr; }
    ModelBrowser #browser-bar { height: 1; }
    ModelBrowser #browser-filter { width: 1fr; height: 1; border: none; padding: 0 1; }
    ModelBrowser #browser-info { width: auto; height: 1; padding: 0 1; color: $text-muted; }
    ModelBrowser ModelTable { height: 1fr; }
    """

    class Selected(Message):
        def __init__(self, row: ModelRow) -> None:
            super().__init__()
            self.row = row

    def __init__(self, state: RunState, **kwargs) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.sort_column = BEST
        self.sort_descending = True
        self.phase_filter = "all"
        self.class_filter: str | None = None
        self.text_filter = ""
        self.shown: set[str] = set()
        self._debounce: Timer | None = None
        self._cell_cache: dict[str, tuple[ModelRow, list[Any]]] = {}
        self._order: list[tuple[Any, str]] = []  # (sort key, row id) of the shown rows, in display order
        self.rebuilds = 0
        self.full_sorts = 0

    def compose(self) -> ComposeResult:
        with Horizontal(id="browser-bar"):
            yield OrderedInput(placeholder="/ filter: words in key, class, phase", id="browser-filter")
            yield Static(id="browser-info")
        table = ModelTable(id="browser-table", cursor_type="row", zebra_stripes=True)
        table.cursor_blink = False  # deterministic snapshots, calmer over SSH
        yield table

    def on_mount(self) -> None:
        table = self.table
        for column in COLUMNS:
            table.add_column(column.label, key=column.key)
        self.rebuild()

    @property
    def table(self) -> ModelTable:
        return self.query_one(ModelTable)

    # ----- what is shown ---------------------------------------------------
    def visible_rows(self) -> list[ModelRow]:
        rows = [r for r in self.state.models.values()
                if row_matches(r, self.text_filter, self.phase_filter, self.class_filter)]
        rows.sort(key=sort_key_function(self.sort_column, self.sort_descending))
        return rows

    def rebuild(self) -> None:
        """Clear and refill the table (filter change, or a large batch of changed rows)."""
        table = self.table
        keep = self.highlighted_row_id()
        table.clear()
        order_key = sort_key_function(self.sort_column, self.sort_descending)
        models = self.state.models
        self._order = sorted((order_key(r), r.row_id) for r in models.values()
                             if row_matches(r, self.text_filter, self.phase_filter, self.class_filter))
        table.load_rows([(row_id, self._cells(models[row_id])) for _, row_id in self._order])
        self.shown = {row_id for _, row_id in self._order}
        self.rebuilds += 1
        self._restore_cursor(keep)
        self.update_info()

    def add_changed(self, row_ids: list[str]) -> None:
        """New or updated rows since the last tick: append or patch them, then place them in order.

        New rows are merged into the sorted order at their place; nothing is
        re-sorted as a whole, so a tick costs O(shown rows) of cheap work
        however large the table is.
        """
        if not row_ids:
            return
        if len(row_ids) > FULL_REBUILD_AT:
            self.rebuild()
            return
        table = self.table
        keep = self.highlighted_row_id()
        order_key = sort_key_function(self.sort_column, self.sort_descending)
        placed: list[tuple[Any, str]] = []
        moved: set[str] = set()
        new_rows: list[tuple[str, list[Any]]] = []
        for row_id in dict.fromkeys(row_ids):
            row = self.state.models.get(row_id)
            if row is None or not row_matches(row, self.text_filter, self.phase_filter, self.class_filter):
                continue
            cells = self._cells(row)
            if row_id in self.shown:
                for column, cell in zip(COLUMNS, cells):
                    table.update_cell(row_id, column.key, cell)
                moved.add(row_id)  # its metrics may have changed: place it again
            else:
                new_rows.append((row_id, cells))
                self.shown.add(row_id)
            placed.append((order_key(row), row_id))
        if not placed:
            return
        if new_rows:
            table.load_rows(new_rows)
        if moved:
            self._order = [entry for entry in self._order if entry[1] not in moved]
        self._order.extend(sorted(placed))
        self._order.sort()  # two sorted runs: Timsort merges them in one linear pass
        self._apply_order()
        self._restore_cursor(keep)
        self.update_info()

    def _cells(self, row: ModelRow) -> list[Any]:
        """Plain strings (escaped: DataTable reads str cells as markup); cached per row object,
        so a filter change re-uses them instead of formatting 10,000 rows again."""
        cached = self._cell_cache.get(row.row_id)
        if cached is not None and cached[0] is row:
            return cached[1]
        cells: list[Any] = [RowCell(_plain(row.algorithm or "?"), row.row_id)]
        cells.extend(_plain(column.render(row)) for column in COLUMNS[1:])
        self._cell_cache[row.row_id] = (row, cells)
        return cells

    def _sort_all(self) -> None:
        """A new sort order: one key per shown row, one sort."""
        order_key = sort_key_function(self.sort_column, self.sort_descending)
        models = self.state.models
        self._order = sorted((order_key(models[row_id]), row_id) for row_id in self.shown if row_id in models)
        self.full_sorts += 1
        self._apply_order()

    def _apply_order(self) -> None:
        rows = self.state.models
        order_key = sort_key_function(self.sort_column, self.sort_descending)
        placeholder = ModelRow(key="")
        self.table.set_order([row_id for _, row_id in self._order],
                             fallback_key=lambda cell: order_key(rows.get(cell.row_id, placeholder)))

    def _restore_cursor(self, row_id: str | None) -> None:
        table = self.table
        if row_id is None or row_id not in self.shown:
            return
        try:
            index = table.get_row_index(row_id)
        except Exception:  # noqa: BLE001 - the row vanished between calls
            return
        table.move_cursor(row=index, animate=False, scroll=True)

    def highlighted_row_id(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - cursor outside the table
            return None

    def highlighted_row(self) -> ModelRow | None:
        row_id = self.highlighted_row_id()
        return self.state.models.get(row_id) if row_id else None

    def update_info(self) -> None:
        label = "best" if self.sort_column == BEST else COLUMN_BY_KEY[self.sort_column].label
        arrow = "" if self.sort_column == BEST else (" ↓" if self.sort_descending else " ↑")
        class_text = self.class_filter if self.class_filter is not None else "all"
        info = (f"{len(self.shown)}/{len(self.state.models)} · sort {label}{arrow} · "
                f"phase {self.phase_filter} · class {class_text}")
        self.query_one("#browser-info", Static).update(Text(info))

    # ----- actions -----------------------------------------------------------
    def sort_by(self, column_key: str, descending: bool | None = None) -> None:
        if column_key == BEST:
            self.sort_column, self.sort_descending = BEST, True
        else:
            column = COLUMN_BY_KEY[column_key]
            if descending is None:
                descending = (not self.sort_descending) if self.sort_column == column_key else column.descending_first
            self.sort_column, self.sort_descending = column_key, descending
        keep = self.highlighted_row_id()
        self._sort_all()
        self._restore_cursor(keep)
        self.update_info()

    def sort_by_cursor_column(self) -> None:
        """Sort by the column under the cursor (press again to reverse)."""
        table = self.table
        index = table.cursor_column if table.cursor_type == "cell" else None
        if index is None:
            # Row cursor: cycle through the columns, metrics first.
            order = [BEST] + [c.key for c in COLUMNS if c.descending_first] + [c.key for c in COLUMNS if not c.descending_first]
            position = order.index(self.sort_column) if self.sort_column in order else 0
            self.sort_by(order[(position + 1) % len(order)])
            return
        self.sort_by(COLUMNS[index].key)

    def set_phase_filter(self, phase: str) -> None:
        self.phase_filter = phase
        self.rebuild()

    def cycle_phase_filter(self) -> None:
        position = PHASE_FILTERS.index(self.phase_filter)
        self.set_phase_filter(PHASE_FILTERS[(position + 1) % len(PHASE_FILTERS)])

    def cycle_class_filter(self) -> None:
        labels = self.class_choices()
        options: list[str | None] = [None, *labels]
        position = options.index(self.class_filter) if self.class_filter in options else 0
        self.class_filter = options[(position + 1) % len(options)]
        self.rebuild()

    def class_choices(self) -> list[str]:
        if self.state.class_labels:
            return list(self.state.class_labels)
        seen = {r.class_label or str(r.class_index) for r in self.state.models.values() if r.class_index is not None}
        return sorted(seen)

    def set_text_filter(self, text: str, immediate: bool = False) -> None:
        self.text_filter = text.strip()
        if self._debounce is not None:
            self._debounce.stop()
            self._debounce = None
        if immediate:
            self.rebuild()
        else:
            self._debounce = self.set_timer(FILTER_DEBOUNCE, self.rebuild)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "browser-filter":
            event.stop()
            self.set_text_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "browser-filter":
            event.stop()
            self.set_text_filter(event.value, immediate=True)
            self.table.focus()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by(str(event.column_key.value))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        row = self.state.models.get(str(event.row_key.value))
        if row is not None:
            self.post_message(self.Selected(row))
