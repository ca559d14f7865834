"""The main screen: status line, then tabs for the dashboard, the model browser and the event log."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from milo_tui.tui import formatting as fmt
from milo_tui.tui.keymap import MAIN_KEYS
from milo_tui.runstate import RunState
from milo_tui.tui.widgets.browser import ModelBrowser
from milo_tui.tui.widgets.eventlog import EventLog
from milo_tui.tui.widgets.memory import MemoryDashboard, ProcessPanel
from milo_tui.tui.widgets.palette import STATUS_TAGS
from milo_tui.tui.widgets.storage import StoragePanel

TALL_ENOUGH_FOR_LOG = 34  # rows from which the dashboard also shows the event log

STATUS_TEXT = {
    "waiting": "waiting for the engine", "running": "running", "completed": "completed",
    "stopped_memory": "STOPPED: out of memory", "failed": "FAILED", "interrupted": "interrupted",
    "disk_full": "STOPPED: disk full", "engine_died": "ENGINE DIED",
}


def status_line(state: RunState, mode: str, project_name: str, palette: dict[str, str]) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(" milo ", style="bold reverse")
    text.append(f" {project_name} · {mode} · ")
    status = STATUS_TEXT.get(state.status, state.status)
    if state.status == "engine_died" and state.exit_code is not None:
        status += f" (exit {state.exit_code})"
    bad = state.status not in ("waiting", "running", "completed")
    text.append(status, style=palette.get("crit_bold" if bad else STATUS_TAGS.get(state.memory_status, "axis"), "bold"))
    text.append(f" · {state.completed}/{state.total_models or '?'} models")
    if state.is_live:
        text.append(f" · ETA {fmt.duration(state.eta_seconds)}")
    best = state.best_model
    if best is not None:
        text.append(f" · best {fmt.metric(best.metric('avg_sn_sp'))} {best.algorithm}/{best.scaler}/{best.selector}")
    return text


class MainScreen(Screen[None]):
    BINDINGS = [Binding(k.key, f"app.{k.action}", k.title, show=k.footer, key_display=k.display_key or None,
                        priority=k.priority)
                for k in MAIN_KEYS if k.scope == "Main"]

    DEFAULT_CSS = """
    MainScreen #status-line { height: 1; background: $panel; }
    MainScreen TabbedContent { height: 1fr; }
    MainScreen TabPane { padding: 0; }
    MainScreen #dash-row { height: 1fr; }
    MainScreen #dash-side { width: 28; }
    MainScreen #dash-log { display: none; }
    MainScreen.tall #dash-log { display: block; height: 12; }
    """

    def __init__(self, state: RunState, mode: str, project_name: str) -> None:
        super().__init__()
        self.state = state
        self.mode = mode
        self.project_name = project_name

    def compose(self) -> ComposeResult:
        yield Static(id="status-line")
        with TabbedContent(initial="dashboard"):
            with TabPane("Dashboard [1]", id="dashboard"):
                with Vertical():
                    with Horizontal(id="dash-row"):
                        yield MemoryDashboard(self.state, id="memory")
                        with Vertical(id="dash-side"):
                            yield ProcessPanel(self.state, id="processes")
                            yield StoragePanel(self.state, id="storage")
                    yield EventLog(self.state, id="dash-log")
            with TabPane("Models [2]", id="models"):
                yield ModelBrowser(self.state, id="browser")
            with TabPane("Events [3]", id="events"):
                yield EventLog(self.state, id="event-log")
        yield Footer()

    def on_resize(self) -> None:
        self.set_class(self.size.height >= TALL_ENOUGH_FOR_LOG, "tall")

    @property
    def active_tab(self) -> str:
        return self.query_one(TabbedContent).active

    def refresh_from_state(self, force_all: bool = False) -> None:
        """Repaint what the user can see; hidden panes catch up when they are shown."""
        palette = self.app.palette  # type: ignore[attr-defined]
        self.query_one("#status-line", Static).update(status_line(self.state, self.mode, self.project_name, palette))
        active = self.active_tab
        if force_all or active == "dashboard":
            self.query_one(MemoryDashboard).refresh_from_state()
            self.query_one(ProcessPanel).refresh_from_state()
            self.query_one(StoragePanel).refresh_from_state()
            if self.has_class("tall"):
                self.query_one("#dash-log", EventLog).refresh_from_state()
        if force_all or active == "models":
            self.query_one(ModelBrowser).add_changed(self.state.drain_pending_rows())
        if force_all or active == "events":
            self.query_one("#event-log", EventLog).refresh_from_state()
