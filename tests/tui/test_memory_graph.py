"""The memory graph drawn as strips (the Line API) shows what rich Text showed, and draws once per change."""

from __future__ import annotations

from rich.console import Console
from rich.style import Style
from textual.app import App, ComposeResult

from milo_tui.runstate import MemorySample, RunState
from milo_tui.tui.charts import memory_graph, time_axis
from milo_tui.tui.widgets.memory import MemoryGraph
from milo_tui.tui.widgets.palette import lines_to_strips, lines_to_text
from tui_fakes import sync

PALETTE = {"ok": "#00ff00", "warn": "#ffff00", "crit": "#ff0000", "warn_line": "#ffff00",
           "crit_line": "#ff0000", "axis": "#888888", "empty": ""}


def _cells(segments, base: Style) -> list[tuple[str, Style]]:
    return [(char, base + (segment.style or Style())) for segment in segments for char in segment.text]


def test_strips_show_each_cell_in_the_style_rich_text_gives_it():
    percents = [10, 40, 70, 80, 95, 60, 30, 88, 76, 5] * 3
    lines = memory_graph(percents, 40, 8, 0.75, 0.85)
    lines.append(time_axis([float(i) for i in range(len(percents))], 40))
    base = Style(color="#dddddd", bgcolor="#101010")
    strips = lines_to_strips(lines, PALETTE, base, 40)
    text = lines_to_text(lines, PALETTE)
    console = Console(width=40, color_system="truecolor")
    assert len(strips) == len(lines)
    for strip, line in zip(strips, text.split("\n")):
        expected = _cells(line.render(console), base)
        assert _cells(list(strip), Style()) == expected
        assert strip.cell_length == 40


class _GraphApp(App):
    def __init__(self, state: RunState) -> None:
        super().__init__()
        self.state = state
        self.palette = PALETTE

    def compose(self) -> ComposeResult:
        yield MemoryGraph(self.state)


@sync
async def test_the_graph_is_drawn_once_per_new_sample(monkeypatch):
    state = RunState()
    for i in range(20):
        state.memory_series.append(MemorySample(float(i), 10 * i, 1000, float(i)))
    draws = []
    original = MemoryGraph._draw
    monkeypatch.setattr(MemoryGraph, "_draw", lambda self, w, h: draws.append((w, h)) or original(self, w, h))
    app = _GraphApp(state)
    async with app.run_test(size=(60, 12)) as pilot:
        graph = app.query_one(MemoryGraph)
        await pilot.pause()
        assert len(draws) == 1
        graph.refresh()  # a repaint without a new sample re-uses the lines
        await pilot.pause()
        assert len(draws) == 1
        state.memory_series.append(MemorySample(20.0, 500, 1000, 50.0))
        graph.refresh_if_changed()
        await pilot.pause()
        assert len(draws) == 2
