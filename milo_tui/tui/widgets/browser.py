"""The model browser: every model of the run, best first, re-sortable, filterable.

Built for 10,000+ rows. The browser keeps every row of the run, shown or
filtered out, in one sorted list of (sort key, row id) for the current sort.
Rows that finish during a run are inserted into that list at their sorted place
(a binary search each, or for a large batch one Timsort merge of two sorted
runs) and the table's row positions are set from it in one pass: no full
re-sort per refresh tick. A
filter change picks the matching rows from that list in order, so it never
sorts; only a sort change sorts everything. What a row costs to show (its
cells, its best-order key, its search text) is computed once per row object
and cached, so re-sorting or clearing a filter does not format 10,000 rows
again.
"""

from __future__ import annotations

from bisect import insort
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
from textual.widgets import DataTable, Input

from milo_tui.tui import formatting as fmt
from milo_tui.tui.widgets.live_text import LiveText
from milo_tui.tui.widgets.ordered_input import OrderedInput
from milo_tui.tui.widgets.ordered_table import OrderedTable, make_ordered_table
from milo_tui.runstate import ModelRow, RunState

PHASE_FILTERS = ("all", "main", "per-class", "ovr")
FILTER_DEBOUNCE = 0.25
FULL_REBUILD_AT = 400  # more changed rows already shown than this in one tick: rebuild instead of patching
INSERT_ONE_BY_ONE_UP_TO = 64  # changed rows in a tick placed by binary search; more: one merge of sorted runs


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
    missing = float("inf") if lower_is_better else float("-inf")

    def value(row: ModelRow) -> float:
        metric = row.metrics.get(name)
        if metric.__class__ is float:  # the usual case (rows are built with finite floats): a sort calls this per row
            return metric  # type: ignore[return-value]
        metric = row.metric(name)
        return missing if metric is None else metric

    def render(row: ModelRow) -> str:
        metric = row.metrics.get(name)
        if metric.__class__ is float:  # the usual case again: every new row formats eight metrics
            return fmt.metric(metric)  # type: ignore[arg-type]
        return fmt.metric(row.metric(name))

    return Column(key, label, value, render, not lower_is_better)


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


def _order_key(sort_column: str, descending: bool) -> Callable[[ModelRow, tuple], Any]:
    """The browser's order as key(row, best_key(row)): the sort column, then best first on ties.

    Taking the best key as an argument lets the browser pass the one it
    cached for the row instead of recomputing it per sort.
    """
    if sort_column == BEST:
        return lambda row, best: best
    value = COLUMN_BY_KEY[sort_column].value
    if isinstance(value(ModelRow(key="")), float):
        sign = -1.0 if descending else 1.0
        return lambda row, best: (sign * value(row), best)
    if descending:
        return lambda row, best: (_Reversed(value(row)), best)
    return lambda row, best: (value(row), best)


def sort_key_function(sort_column: str, descending: bool) -> Callable[[ModelRow], Any]:
    """A key for sorted(..., key=) that puts rows in the browser's order (ties: best first)."""
    key = _order_key(sort_column, descending)
    return lambda row: key(row, best_key(row))


class _Reversed:
    """Wraps a value so that sorting ascending puts it in descending order."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: "_Reversed") -> bool:
        return other.value < self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and other.value == self.value


def row_matches(row: ModelRow, text: str, phase: str, class_filter: str | None,
                search_text: str | None = None) -> bool:
    """Whether the filters show the row (`search_text`: the row's, if already computed)."""
    if phase != "all" and row.kind != phase:
        return False
    if class_filter is not None and (row.class_label or str(row.class_index)) != class_filter:
        return False
    if not text:
        return True
    haystack = row.search_text() if search_text is None else search_text
    return all(word in haystack for word in text.lower().split())


def _plain(text: str) -> str:
    return escape(text) if "[" in text else text


@dataclass(slots=True)
class _RowView:
    """What the browser derives from one row object, computed once: cells, best-order key, search text."""

    row: ModelRow
    cells: list[Any]
    best: tuple
    text: str

    def matches(self, text: str, phase: str, class_filter: str | None) -> bool:
        return row_matches(self.row, text, phase, class_filter, self.text)


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

    # UI-local state; each change is applied by its watch_ method (sort: one sort; filters: a refill, no sort).
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
        self._views: dict[str, _RowView] = {}  # row id -> what was derived from its current row object
        # (sort key, row id) of every row the browser has taken in, shown or filtered out, in sort order.
        self._order: list[tuple[Any, str]] = []
        self._ordered: set[str] = set()  # the row ids in _order
        self.rebuilds = 0
        self.full_sorts = 0

    def compose(self) -> ComposeResult:
        with Horizontal(id="browser-bar"):
            yield OrderedInput(placeholder="/ filter: words in key, class, phase", id="browser-filter")
            yield LiveText(id="browser-info")
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
    def rebuild(self) -> None:
        """Take in every row of the state, sort them and refill the table (first load, or a large batch)."""
        self._order = self._sorted_entries(self.state.models)
        self._ordered = {row_id for _, row_id in self._order}
        self._refill()

    def _refill(self) -> None:
        """Clear the table and load the rows the filters show, in the current order (no sorting)."""
        table = self.table
        keep = self.highlighted_row_id()
        table.clear()
        views, filters = self._views, (self.text_filter, self.phase_filter, self.class_filter)
        shown = [row_id for _, row_id in self._order if views[row_id].matches(*filters)]
        table.load_rows([(row_id, views[row_id].cells) for row_id in shown])
        self.shown = set(shown)
        self.rebuilds += 1
        self._restore_cursor(keep)
        self.update_info()

    def add_changed(self, row_ids: list[str]) -> None:
        """New or updated rows since the last tick: append or patch them, then place them in order.

        Changed rows are merged into the sorted order at their place; nothing
        is re-sorted as a whole, so a tick costs O(rows) of cheap work
        however large the table is.
        """
        changed = {row_id: self.state.models[row_id] for row_id in dict.fromkeys(row_ids)
                   if row_id in self.state.models}
        if not changed:
            return
        if len(self.shown.intersection(changed)) > FULL_REBUILD_AT:
            self.rebuild()  # patching that many shown rows cell by cell costs more than reloading them
            return
        table = self.table
        # The cursor on the first row follows the first row (the best so far, when sorted best first)
        # as better models arrive above it; a cursor the user moved down stays on its model.
        keep = None if table.cursor_row == 0 else self.highlighted_row_id()
        filters = (self.text_filter, self.phase_filter, self.class_filter)
        new_rows: list[tuple[str, list[Any]]] = []
        for row_id, row in changed.items():
            view = self._view(row_id, row)
            if row_id in self.shown:
                for column, cell in zip(COLUMNS, view.cells):
                    table.update_cell(row_id, column.key, cell)
            elif view.matches(*filters):
                new_rows.append((row_id, view.cells))
                self.shown.add(row_id)
        moved = self._ordered.intersection(changed)  # their metrics may have changed: place them again
        if moved:
            self._order = [entry for entry in self._order if entry[1] not in moved]
        entries = self._sorted_entries(changed)
        if len(entries) <= INSERT_ONE_BY_ONE_UP_TO:
            for entry in entries:  # a binary search and one memmove each
                insort(self._order, entry)
        else:
            self._order.extend(entries)
            self._order.sort()  # two sorted runs: Timsort merges them in one linear pass
        self._ordered.update(changed)
        if new_rows:
            table.load_rows(new_rows)
        if not self.shown.isdisjoint(changed):
            self._apply_order()
            self._restore_cursor(keep)
        self.update_info()

    def _view(self, row_id: str, row: ModelRow) -> _RowView:
        """The row's cells (plain strings, escaped: DataTable reads str cells as markup), best key and
        search text, cached per row object, so a sort or filter change does not recompute 10,000 of them."""
        view = self._views.get(row_id)
        if view is not None and view.row is row:
            return view
        cells: list[Any] = [RowCell(_plain(row.algorithm or "?"), row_id)]
        cells.extend(_plain(column.render(row)) for column in COLUMNS[1:])
        view = _RowView(row, cells, best_key(row), row.search_text())
        self._views[row_id] = view
        return view

    def _sorted_entries(self, rows: dict[str, ModelRow]) -> list[tuple[Any, str]]:
        """(sort key, row id) of these rows, sorted in the current order."""
        key = _order_key(self.sort_column, self.sort_descending)
        view = self._view
        return sorted((key(row, view(row_id, row).best), row_id) for row_id, row in rows.items())

    def _sort_all(self) -> None:
        """A new sort order: one key per row taken in (from the cached views), one sort."""
        key = _order_key(self.sort_column, self.sort_descending)
        views = self._views
        entries = []
        for row_id in self._ordered:
            view = views[row_id]
            entries.append((key(view.row, view.best), row_id))
        entries.sort()
        self._order = entries
        self.full_sorts += 1
        self._apply_order()

    def _apply_order(self) -> None:
        """Put the table's rows in the order of _order (the shown ones)."""
        shown = self.shown
        self.table.set_order([row_id for _, row_id in self._order if row_id in shown],
                             row_id_of=lambda cell: cell.row_id)  # the first cell is a RowCell

    def _restore_cursor(self, row_id: str | None) -> None:
        table = self.table
        if row_id is None or row_id not in self.shown:
            return
        try:
            index = table.get_row_index(row_id)
        except Exception:  # noqa: BLE001 - the row vanished between calls
            return
        if index != table.cursor_row:  # moving it scrolls it into view: a pass over every row of the table
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
        self.query_one("#browser-info", LiveText).show(Text(info))

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
        self._refill()

    def watch_class_filter(self) -> None:
        self._refill()

    def watch_text_filter(self) -> None:
        self._refill()

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
