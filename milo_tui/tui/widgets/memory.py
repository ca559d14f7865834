"""The live memory dashboard: status, milo's tree and the rest of the machine, progress, graph, processes."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from milo_tui.tui import formatting as fmt
from milo_tui.tui.charts import memory_graph, progress_bar, time_axis
from milo_tui.runstate import RunState
from milo_tui.tui.widgets.live_text import LiveText, show_subtitle
from milo_tui.tui.widgets.palette import LEVEL_TAGS, STATUS_TAGS, STATUS_WORDS, lines_to_strips

SUMMARY_LINES = 6


def thresholds_line(state: RunState) -> str:
    """Which usage the warning/critical thresholds are held against, and why (shortest words first)."""
    source = state.memory.get("limit_source") or "limit"
    basis = state.memory.get("used_basis")
    if "used_bytes" not in state.memory:
        return "Thresholds: waiting for the first memory sample"
    if basis is None:  # a journal written before the engine said which
        return f"Thresholds on the used figure above, against the {source} limit"
    if basis == "machine":
        return (f"Thresholds on {source} − available: the machine is short, others' use counts "
                f"(milo's tree alone would leave more room)")
    return f"Thresholds on milo's tree: its PSS against the {source} limit (others have room left)"


def memory_summary(state: RunState, palette: dict[str, str], width: int) -> Text:
    """The text block above the graph (SUMMARY_LINES lines), readable with or without colour."""
    status = state.memory_status
    tag = STATUS_TAGS[status]
    memory = state.memory
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"● {STATUS_WORDS[status]}", style=palette.get(f"{tag}_bold", ""))
    limit = state.limit_bytes
    text.append(f" {fmt.size(state.used_bytes)} / {fmt.size(limit) if limit else '-'}"
                f" {state.percent:.0f}%")
    peak_share = f" {100 * state.peak_bytes / limit:.0f}%" if limit and state.peak_bytes else ""
    text.append(f" · peak {fmt.size(state.peak_bytes or None)}{peak_share}\n")
    text.append(f"milo {fmt.size(memory.get('tree_pss_bytes'))}", style=palette.get("primary", ""))
    text.append(f" · rest of machine {fmt.size(memory.get('other_used_bytes'))}"
                f" · free {fmt.size(memory.get('system_available_bytes'))}"
                f" of {fmt.size(memory.get('system_total_bytes'))}\n")
    text.append(f"{thresholds_line(state)}\n", style=palette.get("axis", ""))
    done, total = state.completed, state.total_models
    bar_width = max(5, min(30, width - 40))
    text.append(f"Models {done}/{total or '?'} ")
    text.append(progress_bar(state.progress, bar_width), style=palette.get("primary", ""))
    text.append(f" {100 * state.progress:.0f}%  ETA {fmt.duration(state.eta_seconds)}"
                f" · remaining peak est. {fmt.size(memory.get('estimated_remaining_peak_bytes'))}"
                f" · phase {state.phase or '-'}\n")
    alert = None if state.is_final else state.predictive_alert  # a forecast about a run that is over is moot
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
    """Usage as a share of the limit, over time, with the warning and critical lines and a time axis."""

    DEFAULT_CSS = "MemoryGraph { height: 1fr; min-height: 4; }"

    def __init__(self, state: RunState, **kwargs) -> None:
        super().__init__(**kwargs)
        self.state = state
        self._drawn: tuple | None = None  # what the graph was last asked to show
        self._strips: list[Strip] = []
        self._strips_drawn: tuple | None = None  # what self._strips show, at which size

    def _what_to_draw(self) -> tuple:
        series = self.state.memory_series
        return (len(series), series[-1] if series else None, self.state.warning_share,
                self.state.critical_share, id(self.app.palette))  # type: ignore[attr-defined]

    def refresh_if_changed(self) -> None:
        """Repaint when a sample, a threshold or the colours changed (samples come ~2 a second, ticks ~7)."""
        drawn = self._what_to_draw()
        if drawn != self._drawn:
            self._drawn = drawn
            self.refresh()

    def render_lines(self, crop: Region) -> list[Strip]:
        # The Line API: the graph's lines are drawn once per change as strips, without rich Text's
        # layout, which cost ~10 ms a tick at 120x40 while samples stream in. Checked once per paint
        # (its style walks the ancestors), not once per line.
        width, height = self.size.width, self.size.height
        drawn = (self._what_to_draw(), width, height, self.rich_style)
        if drawn != self._strips_drawn:
            self._strips = self._draw(width, height)
            self._strips_drawn = drawn
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        return self._strips[y] if 0 <= y < len(self._strips) else Strip.blank(self.size.width, self.rich_style)

    def _draw(self, width: int, height: int) -> list[Strip]:
        series = self.state.memory_series
        lines = memory_graph([s.percent for s in series], width, height - 1,
                             self.state.warning_share, self.state.critical_share)
        lines.append(time_axis([s.ts for s in series], width))
        return lines_to_strips(lines, self.app.palette, self.rich_style, width)  # type: ignore[attr-defined]


class MemoryDashboard(Vertical):
    DEFAULT_CSS = f"""
    MemoryDashboard {{ height: 1fr; border: round $primary 50%; border-title-color: $text; padding: 0 1; }}
    MemoryDashboard #memory-summary {{ height: {SUMMARY_LINES}; text-wrap: nowrap; text-overflow: ellipsis; }}
    """

    def __init__(self, state: RunState, **kwargs) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.border_title = "Memory"

    def compose(self) -> ComposeResult:
        yield LiveText(id="memory-summary")
        yield MemoryGraph(self.state, id="memory-graph")

    def refresh_from_state(self) -> None:
        summary = memory_summary(self.state, self.app.palette, self.content_size.width)  # type: ignore[attr-defined]
        self.query_one("#memory-summary", LiveText).show(summary)
        self.query_one(MemoryGraph).refresh_if_changed()
        show_subtitle(self, STATUS_WORDS[self.state.memory_status].lower())


def _cpu_text(value: object) -> str:
    return f"{value:.0f}%" if isinstance(value, (int, float)) else "-"


def process_lines(state: RunState) -> Text:
    """Every process of a live run, heaviest first: role, pid, PSS, CPU % of one core; then the total.
    A finished run (or a dead engine) has none, and says so."""
    processes = state.memory.get("processes") or []
    rows = sorted((p for p in processes if isinstance(p, dict)), key=lambda p: -(p.get("pss_bytes") or 0))
    text = Text(no_wrap=True, overflow="ellipsis")
    if state.is_final:  # the last sample's processes have exited: never show them as if they ran
        text.append(f"No processes: the run is over\n({fmt.run_status(state.status)}).")
        if rows and state.memory_series:
            total = sum(p.get("pss_bytes") or 0 for p in rows)
            text.append(f"\nLast sample, {fmt.clock_time(state.memory_series[-1].ts)}:\n"
                        f"{len(rows)} processes, {fmt.size(total)} PSS", style="dim")
        return text
    if not rows:
        text.append("no process data yet")
        return text
    text.append(f"{'role':<9} {'pid':>6} {'PSS':>9}{'CPU':>5}\n", style="bold")
    for proc in rows:
        role = str(proc.get("role", "?"))[:9]
        estimated = "~" if proc.get("pss_estimated") else " "
        text.append(f"{role:<9} {proc.get('pid', '?')!s:>6} {fmt.size(proc.get('pss_bytes')):>9}{estimated}"
                    f"{_cpu_text(proc.get('cpu_percent')):>4}\n")
    total = sum(p.get("pss_bytes") or 0 for p in rows)
    cpu = [p.get("cpu_percent") for p in rows if isinstance(p.get("cpu_percent"), (int, float))]
    text.append(f"{f'{len(rows)} processes':<16} {fmt.size(total):>9}{_cpu_text(sum(cpu) if cpu else None):>5}")
    return text


class ProcessPanel(VerticalScroll):
    """Every process of the run; scrolls (mouse, or focus it and use the arrow keys) when they do not fit."""

    DEFAULT_CSS = """
    ProcessPanel { height: 1fr; border: round $primary 50%; padding: 0 1; }
    ProcessPanel #process-lines { width: auto; text-wrap: nowrap; }
    """

    def __init__(self, state: RunState, **kwargs) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.border_title = "Processes (PSS, CPU)"

    def compose(self) -> ComposeResult:
        yield LiveText(id="process-lines")

    def refresh_from_state(self) -> None:
        self.query_one("#process-lines", LiveText).show(process_lines(self.state))
