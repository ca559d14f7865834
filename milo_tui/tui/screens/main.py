"""The main screen: status line, then the dashboard, the model browser and the event log.

Narrow terminals (under WIDE_COLUMNS) show one of them at a time, chosen with
tabs (keys 1 2 3). Wide terminals show the dashboard (memory, processes,
storage) above the model browser as panes, and the event log below them when
there is height for it. The layout is only CSS classes on the screen
(`main.tcss`): the same widgets serve both, so a sort, a filter or a
scroll position survives a resize.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Tab, Tabs

from milo_tui.tui import formatting as fmt
from milo_tui.tui.keymap import MAIN_KEYS
from milo_tui.runstate import RunState
from milo_tui.tui.widgets.browser import ModelBrowser
from milo_tui.tui.widgets.eventlog import EventLog
from milo_tui.tui.widgets.live_text import LiveText
from milo_tui.tui.widgets.memory import MemoryDashboard, ProcessPanel
from milo_tui.tui.widgets.palette import STATUS_TAGS
from milo_tui.tui.widgets.storage import StoragePanel

WIDE_COLUMNS = 120  # from here the panes are shown together
TALL_ENOUGH_FOR_LOG = 34  # narrow: rows from which the dashboard also shows the event log
WIDE_TALL_ENOUGH_FOR_LOG = 40  # wide: rows from which the event log gets a pane below the others
TABS = (("dashboard", "Dashboard [1]"), ("models", "Models [2]"), ("events", "Events [3]"))

def status_line(state: RunState, mode: str, project_name: str, palette: dict[str, str]) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(" milo ", style="bold reverse")
    text.append(f" {project_name} · {mode} · ")
    status = fmt.run_status(state.status)
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
    """Its stylesheet, main.tcss, is loaded by the app (MiloApp.CSS_PATH): Textual reads a screen's
    own CSS_PATH only for pushed screens, and this one is the default screen."""

    BINDINGS = [Binding(k.key, f"app.{k.action}", k.title, show=k.footer, key_display=k.display_key or None,
                        priority=k.priority)
                for k in MAIN_KEYS if k.scope == "Main"]

    active_tab: reactive[str] = reactive("dashboard", init=False)
    wide: reactive[bool] = reactive(False, init=False)

    def __init__(self, state: RunState, mode: str, project_name: str) -> None:
        super().__init__()
        self.state = state
        self.mode = mode
        self.project_name = project_name

    def compose(self) -> ComposeResult:
        yield LiveText(id="status-line")
        yield Tabs(*(Tab(label, id=f"tab-{name}") for name, label in TABS), id="tabs")
        with Vertical(id="panes"):
            with Vertical(id="pane-dashboard", classes="pane"):
                with Horizontal(id="dash-row"):
                    yield MemoryDashboard(self.state, id="memory")
                    with Vertical(id="dash-side"):
                        yield ProcessPanel(self.state, id="processes")
                        yield StoragePanel(self.state, id="storage")
                yield EventLog(self.state, id="dash-log")
            with Vertical(id="pane-models", classes="pane"):
                yield ModelBrowser(self.state, id="browser")
            with Vertical(id="pane-events", classes="pane"):
                yield EventLog(self.state, id="event-log")
        yield Footer()

    def on_mount(self) -> None:
        self._show_tab(self.active_tab)

    def on_resize(self) -> None:
        width, height = self.size
        before = self.visible_panes()
        self.wide = width >= WIDE_COLUMNS
        self.set_class(height >= TALL_ENOUGH_FOR_LOG, "tall")
        self.set_class(height >= WIDE_TALL_ENOUGH_FOR_LOG, "wide-tall")
        if self.visible_panes() - before:
            self.refresh_from_state()  # a pane the new size brings on screen shows the run as it is now

    def watch_wide(self, wide: bool) -> None:
        self.set_class(wide, "wide")

    def watch_active_tab(self, tab: str) -> None:
        self._show_tab(tab)
        self.refresh_from_state()  # the pane just shown catches up (only the visible ones repaint)

    def _show_tab(self, tab: str) -> None:
        for name, _ in TABS:
            self.set_class(name == tab, f"show-{name}")
        tabs = self.query_one(Tabs)
        if tabs.active != f"tab-{tab}":
            tabs.active = f"tab-{tab}"

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        event.stop()
        if event.tab is not None and event.tab.id:
            self.active_tab = event.tab.id.removeprefix("tab-")

    def shows(self, pane: str) -> bool:
        """Whether a pane is on screen now (wide: all but the events pane when short)."""
        return pane in self.visible_panes()

    def visible_panes(self) -> set[str]:
        """The panes on screen now: "dashboard", "dash-log" (the dashboard's own log), "models", "events"."""
        if self.wide:
            return {"dashboard", "models", "events"} if self.has_class("wide-tall") else {"dashboard", "models"}
        if self.active_tab == "dashboard" and self.has_class("tall"):
            return {"dashboard", "dash-log"}
        return {self.active_tab}

    def refresh_from_state(self, force_all: bool = False) -> None:
        """Repaint what the user can see; hidden panes catch up when they are shown (tab or resize)."""
        palette = self.app.palette  # type: ignore[attr-defined]
        self.query_one("#status-line", LiveText).show(status_line(self.state, self.mode, self.project_name, palette))
        visible = self.visible_panes()
        if force_all or "dashboard" in visible:
            self.query_one(MemoryDashboard).refresh_from_state()
            self.query_one(ProcessPanel).refresh_from_state()
            self.query_one(StoragePanel).refresh_from_state()
        if force_all or "dash-log" in visible:
            self.query_one("#dash-log", EventLog).refresh_from_state()
        if force_all or "models" in visible:
            self.query_one(ModelBrowser).add_changed(self.state.drain_pending_rows())
        if force_all or "events" in visible:
            self.query_one("#event-log", EventLog).refresh_from_state()
