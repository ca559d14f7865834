"""The fast table draws exactly what DataTable draws, line for line, in every state the browser uses."""

from __future__ import annotations

import pytest

pytest.importorskip("textual")

from textual.app import App  # noqa: E402
from textual.coordinate import Coordinate  # noqa: E402
from textual.geometry import Region  # noqa: E402

from milo_tui.tui.widgets import fast_table  # noqa: E402
from tui_fakes import sync  # noqa: E402

pytestmark = pytest.mark.skipif(not fast_table.available(), reason="the fast table needs the Textual it was written for")

COLUMNS = ["Alg", "Scaler", "Selector", "Score", "Key"]


def _cells(i: int) -> list[str]:
    return [f"alg{i % 3}", "std" if i % 2 else "none", f"select-{i % 4 * 25}", f"0.{(i * 7919) % 1000:03d}",
            f"std/select/alg{i % 3}/grid/accuracy/{i}"]


class _TableApp(App):
    """A browser-like table with COLUMNS and `rows` rows of _cells."""

    def __init__(self, rows: int = 0) -> None:
        super().__init__()
        self.rows = rows

    def compose(self):
        table = fast_table.FastOrderedTable(id="t", cursor_type="row", zebra_stripes=True)
        table.cursor_blink = False
        yield table

    def on_mount(self) -> None:
        table = self.query_one("#t")
        for label in COLUMNS:
            table.add_column(label, key=label)
        table.load_rows([(f"r{i}", _cells(i)) for i in range(self.rows)])


def _both_ways(table) -> tuple[list, list]:
    """The window as the fast table draws it, then as DataTable draws it (caches dropped between)."""
    region = Region(0, 0, table.size.width, table.size.height)
    table.draws_lines_itself = True
    table._clear_caches()
    fast = [list(strip) for strip in table.render_lines(region)]
    table.draws_lines_itself = False
    table._clear_caches()
    slow = [list(strip) for strip in table.render_lines(region)]
    table.draws_lines_itself = True
    table._clear_caches()
    return fast, slow


def _assert_same(table, what: str) -> None:
    fast, slow = _both_ways(table)
    assert len(fast) == len(slow)
    for y, (a, b) in enumerate(zip(fast, slow)):
        assert a == b, f"{what}: line {y} differs"


@pytest.mark.parametrize("size", [(40, 10), (80, 24), (160, 12)])  # narrower and wider than the table
@sync
async def test_fast_lines_equal_datatables_in_every_state(size):
    app = _TableApp(rows=60)
    async with app.run_test(size=size) as pilot:
        table = app.query_one("#t")
        await pilot.pause()
        _assert_same(table, "loaded")

        order = [f"r{i}" for i in range(60)]
        table.load_rows([("new", _cells(99))])
        order.insert(1, "new")
        table.set_order(order, None)
        table.move_cursor(row=3)
        await pilot.pause()
        _assert_same(table, "a row moved in, cursor on row 3")

        table.update_cell("r5", "Score", "0.999")
        table.hover_coordinate = Coordinate(4, 1)
        table._show_hover_cursor = True
        await pilot.pause()
        _assert_same(table, "a cell changed, hover on row 4")

        table.scroll_to(x=7, y=20, animate=False)
        await pilot.pause()
        _assert_same(table, "scrolled right and down")

        table.load_rows([("escaped", ["a \\[b]", "x", "y", "z", "k"])])  # markup escape: DataTable's own cell
        table.zebra_stripes = False
        table.cell_padding = 2
        await pilot.pause()
        _assert_same(table, "no zebra, padding 2, an escaped cell")

        app.set_focus(None)
        table.show_header = False
        await pilot.pause()
        _assert_same(table, "unfocused, no header")

        app.theme = "textual-light"
        await pilot.pause()
        _assert_same(table, "another theme")


@sync
async def test_a_tick_that_moves_rows_redraws_only_the_lines_whose_text_changed():
    app = _TableApp(rows=200)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one("#t")
        await pilot.pause()
        region = Region(0, 0, table.size.width, table.size.height)
        table.render_lines(region)
        drawn = []
        original = table._draw_line
        table._draw_line = lambda *args: drawn.append(args[1]) or original(*args)
        table.load_rows([("late", _cells(500))])  # lands below the window: nothing in it changes
        table.set_order([*(f"r{i}" for i in range(200)), "late"], None)
        table.refresh()
        table.render_lines(region)
        assert drawn == []
        table.update_cell("r2", "Score", "0.001")
        table.refresh()
        table.render_lines(region)
        assert drawn == [2]  # the one changed row, not the window


@sync
async def test_taller_rows_take_datatables_way():
    app = _TableApp(rows=5)
    async with app.run_test(size=(60, 12)) as pilot:
        table = app.query_one("#t")
        table.add_row("two", "lines", "x", "0.5", "k", height=2, key="tall")
        await pilot.pause()
        assert not table._line_pass().draws_itself
        fast, slow = _both_ways(table)
        assert fast == slow


def _layouts_asked(widget) -> list:
    """The `layout` argument of every refresh `widget` asks for from now on."""
    layouts, refresh = [], widget.refresh
    widget.refresh = lambda *a, **k: (layouts.append(k.get("layout")), refresh(*a, **k))[1]
    return layouts


class _LogApp(App):
    def compose(self):
        from milo_tui.runstate import RunState
        from milo_tui.tui.widgets.eventlog import EventLog

        log = EventLog(RunState(), id="log")
        log.styles.height = 8
        yield log


@sync
async def test_a_log_that_grows_under_its_scrollbar_moves_the_thumb_without_a_screen_layout():
    app = _LogApp()
    async with app.run_test(size=(60, 20)) as pilot:
        log = app.query_one("#log")
        layouts = _layouts_asked(log)
        for i in range(20):
            log.write(f"line {i}")
        await pilot.pause()
        assert log.show_vertical_scrollbar  # a log always shows its scrollbar
        log.write("a line wider than any before it, so the log's width changes " * 2)
        await pilot.pause()
        assert True in layouts  # not only taller: laid out as before
        layouts.clear()
        for i in range(20, 40):  # grows under the scrollbar: only the thumb moves
            log.write(f"line {i}")
        await pilot.pause()
        assert True not in layouts
        assert log.vertical_scrollbar.window_virtual_size == log.virtual_size.height > 40
        assert log.scroll_y == log.max_scroll_y  # still following the newest line


@sync
async def test_a_table_that_grows_under_its_scrollbar_moves_the_thumb_without_a_screen_layout():
    app = _TableApp()
    async with app.run_test(size=(60, 12)) as pilot:
        table = app.query_one("#t")
        layouts = _layouts_asked(table)
        table.load_rows([(f"r{i}", _cells(i)) for i in range(3)])
        await pilot.pause()
        assert not table.show_vertical_scrollbar
        table.load_rows([(f"r{i}", _cells(i)) for i in range(3, 30)])  # overflows: the scrollbar appears
        await pilot.pause()
        assert table.show_vertical_scrollbar and True in layouts
        layouts.clear()
        table.load_rows([(f"more{i}", _cells(i)) for i in range(30, 60)])  # same widths
        await pilot.pause()
        assert True not in layouts
        assert table.vertical_scrollbar.window_virtual_size == table.virtual_size.height == 61  # + header
