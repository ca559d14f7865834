"""The live memory dashboard: status, usage, peak, progress, ETA, forecast, graph, processes."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Static

from milo_tui.tui import formatting as fmt
from milo_tui.tui.charts import memory_graph, progress_bar
from milo_tui.runstate import RunState
from milo_tui.tui.widgets.palette import LEVEL_TAGS, STATUS_TAGS, STATUS_WORDS, lines_to_text


def memory_summary(state: RunState, palette: dict[str, str], width: int) -> Text:
    """The text block above the graph (4-5 lines), readable with or without colour."""
    status = state.memory_status
    tag = STATUS_TAGS[status]
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"● {STATUS_WORDS[status]}", style=palette.get(f"{tag}_bold", ""))
    limit = state.limit_bytes
    text.append(f" {fmt.size(state.used_bytes)} / {fmt.size(limit) if limit else '-'}"
                f" {state.percent:.0f}%")
    peak_share = f" {100 * state.peak_bytes / limit:.0f}%" if limit and state.peak_bytes else ""
    text.append(f" · peak {fmt.size(state.peak_bytes or None)}{peak_share}\n")
    done, total = state.completed, state.total_models
    bar_width = max(5, min(30, width - 40))
    text.append(f"Models {done}/{total or '?'} ")
    text.append(progress_bar(state.progress, bar_width), style=palette.get("primary", ""))
    text.append(f" {100 * state.progress:.0f}%  ETA {fmt.duration(state.eta_seconds)}\n")
    remaining = state.memory.get("estimated_remaining_peak_bytes")
    source = state.memory.get("limit_source") or "-"
    text.append(f"Remaining peak est. {fmt.size(remaining)} · phase {state.phase or '-'} · limit: {source}\n")
    alert = state.predictive_alert
    if alert is not None:
        text.append(f"⚠ {alert.message}", style=palette.get("warn_bold", ""))
    else:
        last = next((e for e in reversed(state.log) if e.source == "alert"), None)
        if last is not None:
            text.append(f"Last alert: {last.message}", style=palette.get(LEVEL_TAGS.get(last.level, "axis"), ""))
        else:
            text.append("No alerts", style=palette.get("axis", ""))
    return text


class MemoryGraph(Widget):
    """Usage as a share of the limit, over time, with the warning and critical lines."""

    DEFAULT_CSS = "MemoryGraph { height: 1fr; min-height: 3; }"

    def __init__(self, state: RunState, **kwargs) -> None:
        super().__init__(**kwargs)
        self.state = state

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        percents = [s.percent for s in self.state.memory_series]
        lines = memory_graph(percents, width, height, self.state.warning_share, self.state.critical_share)
        return lines_to_text(lines, self.app.palette)  # type: ignore[attr-defined]


class MemoryDashboard(Vertical):
    DEFAULT_CSS = """
    MemoryDashboard { height: 1fr; border: round $primary 50%; border-title-color: $text; padding: 0 1; }
    MemoryDashboard #memory-summary { height: 4; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, state: RunState, **kwargs) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.border_title = "Memory"

    def compose(self) -> ComposeResult:
        yield Static(id="memory-summary")
        yield MemoryGraph(self.state, id="memory-graph")

    def refresh_from_state(self) -> None:
        summary = memory_summary(self.state, self.app.palette, self.content_size.width)  # type: ignore[attr-defined]
        self.query_one("#memory-summary", Static).update(summary)
        self.query_one(MemoryGraph).refresh()
        self.border_subtitle = STATUS_WORDS[self.state.memory_status].lower()


def process_lines(state: RunState, limit_rows: int) -> Text:
    processes = state.memory.get("processes") or []
    rows = sorted((p for p in processes if isinstance(p, dict)), key=lambda p: -(p.get("pss_bytes") or 0))
    text = Text(no_wrap=True, overflow="ellipsis")
    if not rows:
        text.append("no process data yet")
        return text
    for index, proc in enumerate(rows[:limit_rows]):
        if index:
            text.append("\n")
        role = str(proc.get("role", "?"))[:8]
        text.append(f"{role:<8} {proc.get('pid', '?')!s:>6} {fmt.size(proc.get('pss_bytes')):>8}")
    if len(rows) > limit_rows:
        rest = sum(p.get("pss_bytes") or 0 for p in rows[limit_rows:])
        text.append(f"\n+{len(rows) - limit_rows} more   {fmt.size(rest):>9}")
    return text


class ProcessPanel(Static):
    DEFAULT_CSS = "ProcessPanel { height: 1fr; border: round $primary 50%; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }"

    def __init__(self, state: RunState, **kwargs) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.border_title = "Processes (PSS)"

    def refresh_from_state(self) -> None:
        self.update(process_lines(self.state, max(1, self.content_size.height - 1)))
