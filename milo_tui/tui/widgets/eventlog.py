"""The event log: alerts and notable events with the source document's messages."""

from __future__ import annotations

from rich.text import Text
from textual.geometry import Size
from textual.reactive import Reactive
from textual.widgets import RichLog

from milo_tui.tui import formatting as fmt
from milo_tui.runstate import LogEntry, RunState
from milo_tui.tui.widgets.growth import show_growth
from milo_tui.tui.widgets.palette import LEVEL_TAGS


def entry_text(entry: LogEntry, palette: dict[str, str]) -> Text:
    text = Text()
    text.append(f"{fmt.clock_time(entry.ts)} ", style=palette.get("axis", ""))
    text.append(f"{entry.level.upper():<11}", style=palette.get(LEVEL_TAGS.get(entry.level, "axis"), ""))
    text.append(entry.message)
    if entry.detail:
        text.append(f"\n{' ' * 20}{entry.detail}", style=palette.get("axis", ""))
    return text


class EventLog(RichLog):
    """Appends only the entries added since the last refresh (never rewrites the whole log)."""

    DEFAULT_CSS = "EventLog { height: 1fr; border: round $primary 50%; }"
    # RichLog sets virtual_size on every write; as a layout reactive that re-laid out the whole
    # screen on every tick of a run. Growth is handled by the watcher below (growth.py).
    virtual_size = Reactive(Size(0, 0), layout=False)

    def watch_virtual_size(self, old: Size, new: Size) -> None:
        show_growth(self, old, new)

    def __init__(self, state: RunState, **kwargs) -> None:
        super().__init__(max_lines=2000, wrap=True, markup=False, highlight=False, **kwargs)
        self.state = state
        self.shown = 0
        self.border_title = "Events"

    def refresh_from_state(self) -> None:
        new = self.state.log_added - self.shown
        if new <= 0:
            return
        entries = list(self.state.log)[-min(new, len(self.state.log)):]
        palette = self.app.palette  # type: ignore[attr-defined]
        for entry in entries:
            if entry.level == "info" and entry.source in ("model", "cleanup", "log"):
                continue  # routine: keep the log for what a user must notice
            self.write(entry_text(entry, palette))
        self.shown = self.state.log_added
