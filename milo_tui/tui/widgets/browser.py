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
from functools import partial
from typing import Any, Callable

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import var
from textual.timer import Timer
from textual.widgets import DataTable, Input, Static

from milo_tui.tui import formatting as fmt
from milo_tui.tui.widgets.ordered_input import OrderedInput
from milo_tui.tui.widgets.ordered_table import OrderedTable, make_ordered_table
from milo_tui.runstate import ModelRow, RunState

PHASE_FILTERS = ("all", "main", "per-class", "ovr")
FILTER_DEBOUNCE = 0.25
FULL_REBUILD_AT = 400  # more changed rows than this in one tick: rebuild instead of patching


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


class ModelBrowser(Vertical):
    DEFAULT_CSS = """
    ModelBrowser { height: 1fr; }
    ModelBrowser #browser-bar { height: 1; }
    ModelBrowser #browser-filter { width: 1fr; height: 1; border: none; padding: 0 1; }
    ModelBrowser #browser-info { width: auto; height: 1; padding: 0 1; color: $text-muted; }
    ModelBrowser #browser-table { height: 1fr; }
    """

    class Selected(Message):
        def __init__(self, row: ModelRow) -> None:
            super().__init__()
            self.row = row

    # UI-local state; each change is applied by its watch_ method (sort: one sort; filters: a rebuild).
    sort: var[tuple[str, bool]] = var((BEST, True), init=False)  # (column key or BEST, descending)
    phase_filter: var[str] = var("all", init=False)
    class_filter: var[str | None] = var(None, init=False)
    text_filter: var[str] = var("", init=False)
    marked: var[tuple[str, ...]] = var((), init=False)  # model keys marked for comparison (two at most)

    def __init__(self, state: RunState, **kwargs) -> None:
        super().__init__(**kwargs)
        self.state = state
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
        table = make_ordered_table(id="browser-table", cursor_type="row", zebra_stripes=True)
        table.cursor_blink = False  # deterministic snapshots, calmer over SSH
        yield table

    def on_mount(self) -> None:
        table = self.table
        for column in COLUMNS:
            table.add_column(column.label, key=column.key)
        self.rebuild()

    @property
    def table(self) -> OrderedTable:
        return self.query_one("#browser-table", OrderedTable)

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
                             first_cell_key=lambda cell: order_key(rows.get(cell.row_id, placeholder)))

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
        if self.marked:
            info += f" · marked {len(self.marked)}/2"
        self.query_one("#browser-info", Static).update(Text(info))

    # ----- state and its watchers ---------------------------------------------
    @property
    def sort_column(self) -> str:
        return self.sort[0]

    @property
    def sort_descending(self) -> bool:
        return self.sort[1]

    def watch_sort(self) -> None:
        keep = self.highlighted_row_id()
        self._sort_all()
        self._restore_cursor(keep)
        self.update_info()

    def watch_phase_filter(self) -> None:
        self.rebuild()

    def watch_class_filter(self) -> None:
        self.rebuild()

    def watch_text_filter(self) -> None:
        self.rebuild()

    def watch_marked(self) -> None:
        self.update_info()

    def toggle_mark(self) -> None:
        """Mark the highlighted model (a third mark drops the oldest); marking it again unmarks it."""
        row = self.highlighted_row()
        if row is None:
            return
        key = row.model_key
        if key in self.marked:
            self.marked = tuple(k for k in self.marked if k != key)
        else:
            self.marked = (*self.marked, key)[-2:]

    # ----- actions -----------------------------------------------------------
    def sort_by(self, column_key: str, descending: bool | None = None) -> None:
        if column_key == BEST:
            self.sort = (BEST, True)
            return
        column = COLUMN_BY_KEY[column_key]
        if descending is None:
            descending = (not self.sort_descending) if self.sort_column == column_key else column.descending_first
        self.sort = (column_key, descending)

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

    def cycle_phase_filter(self) -> None:
        position = PHASE_FILTERS.index(self.phase_filter)
        self.set_phase_filter(PHASE_FILTERS[(position + 1) % len(PHASE_FILTERS)])

    def cycle_class_filter(self) -> None:
        labels = self.class_choices()
        options: list[str | None] = [None, *labels]
        position = options.index(self.class_filter) if self.class_filter in options else 0
        self.class_filter = options[(position + 1) % len(options)]

    def class_choices(self) -> list[str]:
        if self.state.class_labels:
            return list(self.state.class_labels)
        seen = {r.class_label or str(r.class_index) for r in self.state.models.values() if r.class_index is not None}
        return sorted(seen)

    def set_text_filter(self, text: str, immediate: bool = False) -> None:
        """Filter by words; while typing, applied once the keys pause (FILTER_DEBOUNCE)."""
        if self._debounce is not None:
            self._debounce.stop()
            self._debounce = None
        if immediate:
            self.text_filter = text.strip()
        else:
            self._debounce = self.set_timer(FILTER_DEBOUNCE, partial(self.set_text_filter, text, True))

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
