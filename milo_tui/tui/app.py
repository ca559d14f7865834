"""The Textual app: `milo run` (start the engine, read its pipe) and `milo watch` (replay + follow the journal).

Events are read by a source thread into an Inbox; a fixed-rate timer drains
it, folds the batch into RunState and repaints inside one batch_update. The
app only talks to the engine through milo_tui.launcher and the event stream,
and reads report.csv / metadata.json / class_results/ for finished projects.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

from textual import work
from textual.actions import SkipAction
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input
from textual.worker import Worker, WorkerState

from milo_tui.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, MiloError
from milo_tui.keys import RunStatus
from milo_tui.launcher import EngineProcess, log_tail, start_engine
from milo_tui.project import ProjectPaths
from milo_tui.tui import project_files
from milo_tui.tui.commands import MiloCommands
from milo_tui.tui.collector import FullCollections
from milo_tui.tui.extraction import ModelStoreLike, gather_details, warm_model_imports
from milo_tui.tui.keymap import MAIN_KEYS
from milo_tui.tui.screens.compare import CompareScreen
from milo_tui.tui.screens.detail import DetailScreen
from milo_tui.tui.screens.dialogs import ExportDialog, HelpScreen, QuitDialog
from milo_tui.tui.screens.main import MainScreen
from milo_tui.tui.settings import load_settings, save_setting
from milo_tui.tui.sources import Inbox, JournalSource, PipeSource, pid_alive
from milo_tui.runstate import ModelRow, RunState
from milo_tui.tui.themes import DEFAULT_THEME, load_themes
from milo_tui.tui.widgets.browser import BEST, COLUMNS, PHASE_FILTERS, ModelBrowser
from milo_tui.tui.widgets.palette import palette_from_variables

Mode = Literal["run", "watch"]
StoreFactory = Callable[[Path], ModelStoreLike]
EngineStarter = Callable[..., EngineProcess]
# ~6.7 Hz. An event waits up to one period for the next tick, then for that tick's work and paint
# (~50-80 ms at 120x40 in a 2,000 events/s flood), so the period sets the event-to-screen lag:
# 0.2 s put its p95 at the 0.25 s budget, 0.15 s at ~0.20 s (docs/PERFORMANCE.md, TUI). Ticks
# that bring no change paint nothing, so a real run (a few events a second) pays nothing more.
REFRESH_SECONDS = 0.15
LIVENESS_SECONDS = 2.0
STOP_TIMEOUT_SECONDS = 120.0
LAG_SAMPLES = 200_000
CALM_EVENTS_PER_TICK = 50  # at most this many events in a tick counts as calm (import warm-up, full GC)
CALM_SECONDS_BEFORE_WARM_UP = 1.0


def default_store_factory(root: Path) -> ModelStoreLike:
    """The real storage read API, with the project's cache settings."""
    from milo_tui.storage.store import open_store  # imported late: storage is optional for watching

    return open_store(root)


class EngineExited(Message):
    def __init__(self, returncode: int | None, stderr_tail: str) -> None:
        super().__init__()
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class MiloApp(App[int]):
    TITLE = "milo"
    CSS_PATH = ["screens/main.tcss"]  # the screens' stylesheets, kept beside them
    COMMANDS = App.COMMANDS | {MiloCommands}
    BINDINGS = [Binding(k.key, k.action, k.title, show=k.footer, key_display=k.display_key or None)
                for k in MAIN_KEYS if k.scope == "Anywhere"]

    def __init__(self, project: Path, mode: Mode, *, resume: bool = False, force: bool = False,
                 store_factory: StoreFactory | None = None, engine_starter: EngineStarter = start_engine,
                 clock: Callable[[], float] = time.time, refresh_seconds: float = REFRESH_SECONDS,
                 theme_dirs: list[Path] | None = None,
                 perf_clock: Callable[[], float] = time.perf_counter, record_lag: bool = False,
                 warm_imports: bool = True) -> None:
        super().__init__()
        self.paths = ProjectPaths.of(project)
        self.mode: Mode = mode
        self.resume = resume
        self.force = force
        self.store_factory = store_factory or default_store_factory
        self.engine_starter = engine_starter
        self.clock = clock
        self.perf_clock = perf_clock
        self.refresh_seconds = refresh_seconds
        self.state = RunState()
        self.inbox = Inbox()
        self.engine: EngineProcess | None = None
        self.source: PipeSource | JournalSource | None = None
        self.palette: dict[str, str] = {}
        self.themes, theme_problems = load_themes(theme_dirs)
        self._startup_notes = list(theme_problems)
        self._store: ModelStoreLike | None = None
        self._store_error = ""
        self._store_lock = threading.Lock()
        self._painted_version = -1
        self._themes_ready = False
        self._seen_final = False
        self.detached = False
        self.stopping = False
        self.warm_imports = warm_imports
        self._warm_up_started = False
        self._calm_ticks = 0  # refresh ticks in a row with few events, since the run started
        self.full_collections = FullCollections()
        self.warm_up_seconds: float | None = None
        # Benchmarks: seconds from each event's ts to the end of the screen update that showed it (bounded).
        self.lag_samples: deque[float] | None = deque(maxlen=LAG_SAMPLES) if record_lag else None

    # ----- start-up ----------------------------------------------------------
    def get_default_screen(self) -> Screen:
        self._main_screen = MainScreen(self.state, self.mode, self.paths.root.name)
        return self._main_screen

    @property
    def main_screen(self) -> MainScreen:
        return self._main_screen

    def on_mount(self) -> None:
        from milo_tui.storage.workspace import install_signal_cleanup

        # Models are extracted in worker threads, where signal handlers cannot be set: set them
        # here, so a dropped SSH connection (SIGHUP) or a SIGTERM mid-extraction leaves no workspace.
        install_signal_cleanup()
        self._apply_saved_theme()
        for note in self._startup_notes:
            self.state.note(self.clock(), "warning", note)
        self.load_project_files(initial=True)
        if self.mode == "run":
            self._start_engine()
        else:
            self.source = JournalSource(self.paths.events, self.inbox)
            self.source.start()
            self.set_interval(LIVENESS_SECONDS, self._check_watched_engine)
        self.set_interval(self.refresh_seconds, self.refresh_tick)
        self.refresh_tick()

    def _warm_up_when_calm(self, busy: bool) -> None:
        """Start the warm-up once the run is over, or has started and sent few events for a second.

        The imports hold the GIL for seconds; started while a fast run streams
        thousands of events a second, they starved the refresh ticks and the
        screen fell behind (docs/PERFORMANCE.md, TUI). A run that trains real
        models sends a few events a second, so it starts about a second in.
        """
        if not self.warm_imports or self._warm_up_started:
            return
        calm = self.state.status != RunStatus.WAITING and not busy
        self._calm_ticks = self._calm_ticks + 1 if calm else 0
        if self.state.is_final or self._calm_ticks * self.refresh_seconds >= CALM_SECONDS_BEFORE_WARM_UP:
            self._warm_up_started = True
            self.warm_up()

    @work(thread=True, group="warm-up", exit_on_error=False)
    def warm_up(self) -> None:
        """Open the store and import scikit-learn now, so the first model opens as fast as the rest."""
        self.get_store()
        self.warm_up_seconds = warm_model_imports()

    def _start_engine(self) -> None:
        try:
            self.engine = self.engine_starter(self.paths.root, resume=self.resume, force=self.force)
        except (MiloError, OSError) as exc:
            self.state.engine_exited(getattr(exc, "exit_code", EXIT_FAILED), str(exc), self.clock())
            self.notify(f"The engine could not be started: {exc}", severity="error", timeout=30)
            return
        self.source = PipeSource(self.engine, self.inbox, on_exit=self._on_engine_exit_thread)
        self.source.start()

    def _on_engine_exit_thread(self, returncode: int | None, stderr_tail: str) -> None:
        self.post_message(EngineExited(returncode, stderr_tail))  # thread-safe

    # ----- themes --------------------------------------------------------------
    def _apply_saved_theme(self) -> None:
        for theme in self.themes:
            self.register_theme(theme)
        saved = load_settings().get("theme")
        self.theme = saved if saved in self.theme_names else DEFAULT_THEME
        self._themes_ready = True
        self._update_palette()

    @property
    def theme_names(self) -> list[str]:
        """milo's themes first (shipped, then the user's), then Textual's own (nord, gruvbox, ...)."""
        ours = [t.name for t in self.themes]
        return ours + sorted(name for name in self.available_themes if name not in ours)

    def _update_palette(self) -> None:
        self.palette = palette_from_variables(self.get_css_variables())

    def watch_theme(self, theme: str) -> None:
        if not self._themes_ready:
            return  # Textual's default theme while starting; the saved one follows
        self._update_palette()
        save_setting("theme", theme)
        self._painted_version = -1  # colours changed: repaint everything
        self.refresh_tick(force_all=True)

    def action_next_theme(self) -> None:
        names = self.theme_names
        position = names.index(self.theme) if self.theme in names else -1
        self.set_theme(names[(position + 1) % len(names)])

    def set_theme(self, name: str) -> None:
        self.theme = name
        self.notify(f"Theme: {name}", timeout=2)

    # ----- the refresh loop ----------------------------------------------------
    def refresh_tick(self, force_all: bool = False) -> None:
        batches = self.inbox.drain()
        for batch in batches:
            self.state.apply_batch(batch.events, batch.errors)
        busy = sum(len(batch.events) for batch in batches) > CALM_EVENTS_PER_TICK  # one test for both uses
        self._warm_up_when_calm(busy)
        if self.full_collections.note_tick(busy):
            self.call_after_refresh(self.full_collections.collect)  # once this tick is on screen
        if self.state.version == self._painted_version and not force_all:
            return
        screen = self.main_screen
        if not screen.is_mounted or not self.is_running:
            return  # not composed yet, or shutting down (the timer can fire while the screen is torn down)
        with self.batch_update():
            screen.refresh_from_state(force_all=force_all)
        self._painted_version = self.state.version
        if self.lag_samples is not None:
            stamps = [event.ts for batch in batches for event in batch.events]
            if stamps:  # measured once the screen has been painted, not when the widgets were told
                self.call_after_refresh(self._record_lag, stamps)
        self._after_state_change()

    def _record_lag(self, stamps: list[float]) -> None:
        painted = self.clock()
        assert self.lag_samples is not None
        self.lag_samples.extend(painted - ts for ts in stamps)

    def _after_state_change(self) -> None:
        if self.state.is_final and not self._seen_final:
            self._seen_final = True
            self.load_project_files(initial=False)  # report.csv now has CIs and archives
            if self.stopping:
                self.exit(self.result_code())

    def on_engine_exited(self, message: EngineExited) -> None:
        self.refresh_tick()  # apply the last events before judging the exit
        self.state.engine_exited(message.returncode, message.stderr_tail, self.clock())
        if self.state.status == "engine_died":
            tail = message.stderr_tail.strip().splitlines()[-3:]
            self.notify(f"The engine exited with code {message.returncode}.\n" + "\n".join(tail),
                        severity="error", timeout=30)
        if self.stopping:
            self.exit(self.result_code())
            return
        self.refresh_tick()

    def _check_watched_engine(self) -> None:
        """A watched run whose engine vanished without run_finished was killed."""
        if self.state.status == "running" and self.state.engine_pid and not pid_alive(self.state.engine_pid):
            self.refresh_tick()
            if self.state.status == "running":
                self.state.engine_exited(None, log_tail(self.paths.engine_log), self.clock())
                self.refresh_tick()
        if self.stopping and not self.state.is_live:
            self.exit(self.result_code())

    # ----- project files -------------------------------------------------------
    @work(thread=True, group="files", exit_on_error=False)
    def load_project_files(self, initial: bool) -> None:
        if initial and self.mode == "run" and not self.resume:
            return  # a fresh run: the old report (if --force) is about to be replaced
        try:
            rows = project_files.read_report_rows(self.paths)
        except project_files.ProjectFileError as exc:
            self.call_from_thread(self.report_problem, "The report could not be read", str(exc))
            rows = []
        metadata = project_files.read_metadata(self.paths)
        self.call_from_thread(self._merge_project_files, rows, metadata)

    def report_problem(self, title: str, detail: str) -> None:
        """A problem the user must know about but that stops nothing: a notification and the event log."""
        self.notify(f"{title}.\n{detail}", severity="error", timeout=20)
        self.state.note(self.clock(), "error", title, detail)
        self.refresh_tick(force_all=True)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Workers never close the app (exit_on_error=False): an unexpected failure is shown instead."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.report_problem(f"Background task '{event.worker.group}' failed",
                                f"{type(error).__name__}: {error}. The rest of the app goes on.")

    def _merge_project_files(self, rows: list[ModelRow], metadata: dict) -> None:
        thresholds = project_files.thresholds_from_metadata(metadata)
        if thresholds and not self.state.run_id:
            self.state.warning_share, self.state.critical_share = thresholds
        for row in rows:
            self.state.add_model(row)
        self.refresh_tick()
        if not self.state.storage and (rows or metadata):
            self.load_storage_stats()

    @work(thread=True, group="storage", exit_on_error=False)
    def load_storage_stats(self) -> None:
        """Fill the storage panel from the archives on disk (ModelStore.stats walks them: not on the UI thread)."""
        store = self.get_store()
        if store is None:
            return
        try:
            stats = store.stats()
        except (MiloError, OSError) as exc:
            self.call_from_thread(self.state.note, self.clock(), "warning", "Storage statistics unavailable", str(exc))
            return
        if stats is not None:
            self.call_from_thread(self._fill_storage, stats.as_event() if hasattr(stats, "as_event") else dict(stats))

    def _fill_storage(self, stats: dict[str, Any]) -> None:
        if self.state.fill_storage(stats):
            self.refresh_tick(force_all=True)

    # ----- the store (lazy, created in a worker thread) ---------------------------
    def get_store(self) -> ModelStoreLike | None:
        with self._store_lock:
            if self._store is None and not self._store_error:
                try:
                    self._store = self.store_factory(self.paths.root)
                except (MiloError, ImportError, OSError) as exc:
                    self._store_error = f"The model store cannot be opened: {exc}"
            return self._store

    @work(thread=True, group="extract", exit_on_error=False)
    def extract_for(self, screen: DetailScreen) -> None:
        """Extract the screen's model off the UI thread, then hand the details to the screen."""
        store = self.get_store()
        details = gather_details(store, self.paths, screen.row, self._store_error, self.perf_clock)
        self.call_from_thread(screen.show_details, details)

    # ----- actions ----------------------------------------------------------------
    @property
    def browser(self) -> ModelBrowser:
        return self.main_screen.query_one(ModelBrowser)

    def action_show_tab(self, tab: str, focus_table: bool = True) -> None:
        """Show a pane: the tab of a narrow screen; on a wide one all are shown, so focus it."""
        if self.screen is not self.main_screen:
            return
        self.main_screen.active_tab = tab  # its watcher shows the pane and brings it up to date
        if tab == "models" and focus_table:
            self.browser.table.focus()
        elif tab == "events" and self.main_screen.shows("events"):
            self.main_screen.query_one("#event-log").focus()

    def _step_aside_for_text_fields(self) -> None:
        """Priority keys (`/`, `e`) are plain characters inside a text field."""
        if isinstance(self.focused, Input):
            raise SkipAction()

    def action_focus_filter(self) -> None:
        self._step_aside_for_text_fields()
        self.action_show_tab("models", focus_table=False)
        field = self.browser.query_one("#browser-filter", Input)
        if field.focusable:
            # Focus now, not on the next loop turn (Widget.focus): the words typed after `/` go there.
            self.main_screen.set_focus(field)
        else:
            field.focus()  # the Models tab is only being shown: focus once it is

    def _browser_action(self, method: str, *args: Any) -> None:
        self.action_show_tab("models")
        getattr(self.browser, method)(*args)

    def action_sort_next(self) -> None:
        self._browser_action("sort_by_cursor_column")

    def action_sort_by(self, column: str) -> None:
        self._browser_action("sort_by", column)

    def action_reverse_sort(self) -> None:
        browser = self.browser
        if browser.sort_column == BEST:
            self._browser_action("sort_by", "avg_sn_sp", False)
        else:
            self._browser_action("sort_by", browser.sort_column, not browser.sort_descending)

    def action_sort_best(self) -> None:
        self._browser_action("sort_by", BEST)

    def action_cycle_phase(self) -> None:
        self._browser_action("cycle_phase_filter")

    def action_set_phase(self, phase: str) -> None:
        self._browser_action("set_phase_filter", phase)

    def action_cycle_class(self) -> None:
        self._browser_action("cycle_class_filter")

    def selected_row(self) -> ModelRow | None:
        if isinstance(self.screen, DetailScreen):
            return self.screen.row
        return self.browser.highlighted_row()

    def action_extract(self) -> None:
        row = self.selected_row()
        if row is None:
            self.notify("No model highlighted: open the Models tab [2] and pick one.", severity="warning")
            return
        if isinstance(self.screen, DetailScreen):
            return
        self.push_screen(DetailScreen(row))

    def on_model_browser_selected(self, message: ModelBrowser.Selected) -> None:
        if not isinstance(self.screen, DetailScreen):
            self.push_screen(DetailScreen(message.row))

    def action_export(self) -> None:
        self._step_aside_for_text_fields()
        row = self.selected_row()
        if row is None:
            self.notify("No model highlighted: open the Models tab [2] and pick one.", severity="warning")
            return
        self.push_screen(ExportDialog(row.model_key, f"{row.model_key}.joblib"), partial(self._export_chosen, row))

    def _export_chosen(self, row: ModelRow, choice: tuple[str, bool] | None) -> None:
        if choice is not None:
            path, bundle = choice
            self.export_model(row, Path(path).expanduser(), bundle)

    @work(thread=True, group="export", exit_on_error=False)
    def export_model(self, row: ModelRow, dest: Path, bundle: bool) -> None:
        if not dest.is_absolute():
            dest = Path.cwd() / dest
        store = self.get_store()
        if store is None:
            self.call_from_thread(self._report_export, None, self._store_error)
            return
        try:
            written = store.export(row.model_key, dest, bundle=bundle, report_row=row.report or None)
        except MiloError as exc:
            self.call_from_thread(self._report_export, None, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - shown to the user, never a crash
            self.call_from_thread(self._report_export, None, f"Export failed: {type(exc).__name__}: {exc}")
            return
        self.call_from_thread(self._report_export, Path(written), "")

    def _report_export(self, written: Path | None, error: str) -> None:
        if written is None:
            self.notify(error, severity="error", timeout=15)
            self.state.note(self.clock(), "error", "Export failed", error)
        else:
            self.notify(f"Exported to {written}", timeout=8)
            self.state.note(self.clock(), "info", f"Exported to {written}")

    def action_predict(self) -> None:
        """Predict a CSV's rows with the shown model: the same code as `milo predict`."""
        if not isinstance(self.screen, DetailScreen):
            return
        row = self.screen.row
        dialog = ExportDialog(row.model_key, "data.csv", title="Predict on a CSV (writes DATA.predictions.csv)",
                              action="Predict", offer_bundle=False)
        self.push_screen(dialog, partial(self._predict_chosen, row))

    def _predict_chosen(self, row: ModelRow, choice: tuple[str, bool] | None) -> None:
        if choice is not None:
            data = Path(choice[0]).expanduser()
            self.predict_file(row, data if data.is_absolute() else Path.cwd() / data)

    @work(thread=True, group="predict", exit_on_error=False)
    def predict_file(self, row: ModelRow, data: Path) -> None:
        from milo_tui.results.predict import predict_csv  # pandas and scikit-learn: only when asked

        store = self.get_store()
        try:
            done = predict_csv(self.paths.root, data, key=row.model_key, store=store)
        except MiloError as exc:  # bad input: the same paragraph `milo predict` prints
            self.call_from_thread(self.report_problem, "Prediction refused", str(exc))
            return
        counts = ", ".join(f"{label}: {n}" for label, n in sorted(done.predicted_counts.items()))
        message = f"Predicted {done.rows} rows with {done.key} → {done.output} ({counts})"
        notes = "\n".join(f"Note: {note}" for note in done.notes)  # what `milo predict` prints beside it
        self.call_from_thread(self.notify, f"{message}\n{notes}".strip(), severity="warning" if notes else "information",
                              timeout=30 if notes else 15)
        self.call_from_thread(self.state.note, self.clock(), "warning" if notes else "info", message, notes)

    def action_mark(self) -> None:
        self._browser_action("toggle_mark")

    def action_compare(self) -> None:
        marked = self.browser.marked
        if len(marked) != 2:
            self.notify("Mark two models with m in the Models tab, then press v.", severity="warning")
            return
        self.push_screen(CompareScreen(*marked))

    @work(thread=True, group="compare", exit_on_error=False)
    def compare_for(self, screen: CompareScreen) -> None:
        """`milo compare`'s own compare_models, off the UI thread."""
        from milo_tui.results import compare  # pandas and scikit-learn: only when asked

        try:
            result = compare.compare_models(self.paths.root, screen.key_a, screen.key_b, store=self.get_store())
        except MiloError as exc:
            self.call_from_thread(screen.show_result, None, str(exc))
            return
        self.call_from_thread(screen.show_result, result)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    # ----- quitting ------------------------------------------------------------------
    @property
    def run_is_live(self) -> bool:
        if self.mode == "run":
            return self.engine is not None and self.engine.popen.poll() is None and not self.state.is_final
        return self.state.is_live and pid_alive(self.state.engine_pid)

    def action_quit_app(self) -> None:
        if not self.run_is_live or self.detached:
            self.exit(self.result_code())
            return
        what = ("This window started it; it runs in its own session." if self.engine is not None
                else "You are watching it from its journal.")
        self.push_screen(QuitDialog(what), self._quit_chosen)

    def _quit_chosen(self, choice: str | None) -> None:
        if choice == "detach":
            self.detach()
            self.exit(self.result_code())
        elif choice == "stop":
            self.stop_run()

    def detach(self) -> None:
        """Leave the engine training; it goes on writing events.jsonl for `milo watch`."""
        self.detached = True
        if self.source is not None:
            self.source.detach()

    def stop_run(self) -> None:
        self.stopping = True
        if self.engine is not None:
            self.engine.stop()
        elif self.state.engine_pid:
            try:
                os.kill(self.state.engine_pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError) as exc:
                self.notify(f"Could not signal the engine: {exc}", severity="error")
                self.stopping = False
                return
        self.notify("Stopping: the engine archives what finished, then exits.", timeout=STOP_TIMEOUT_SECONDS)
        self.set_timer(STOP_TIMEOUT_SECONDS, lambda: self.exit(self.result_code()))

    def result_code(self) -> int:
        """0 if the run completed or we detached from a live run; else the run's exit code."""
        if self.detached or self.state.status == "completed":
            return EXIT_OK
        if self.state.exit_code is not None:
            return self.state.exit_code
        if self.stopping:
            return EXIT_INTERRUPTED
        if self.state.status == "engine_died":
            return EXIT_FAILED
        return EXIT_OK

    def on_unmount(self) -> None:
        self.full_collections.restore()
        if self.source is not None and not self.detached:
            self.source.detach()

    # ----- command palette ---------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            if command.title not in ("Theme", "Quit"):  # ours remember the theme and ask before quitting
                yield command

    def palette_commands(self) -> Iterable[tuple[str, str, Callable[[], Any]]]:
        for key in MAIN_KEYS:
            yield key.title, f"{key.help} (key {key.shown_key})", partial(self.run_action, key.action)
        yield "Leave the run training and quit", "Detach: the engine keeps going", self._palette_detach
        for column in COLUMNS:
            yield f"Sort by {column.label}", f"Model browser: sort by {column.key}", partial(self.action_sort_by, column.key)
        for phase in PHASE_FILTERS:
            yield f"Phase filter: {phase}", "Model browser: show only this phase", partial(self.action_set_phase, phase)
        for name in self.theme_names:
            yield f"Theme: {name}", "Switch theme (remembered)", partial(self.set_theme, name)

    def _palette_detach(self) -> None:
        if self.run_is_live:
            self.detach()
        self.exit(self.result_code())


def run_app(project: Path, *, mode: Mode, resume: bool = False, force: bool = False) -> int:
    """Entry point of `milo run` / `milo watch` on a terminal. Returns the process exit code."""
    app = MiloApp(Path(project), mode, resume=resume, force=force)
    result = app.run()
    if app.engine is not None and not app.detached:
        app.engine.close()
    return int(result) if result is not None else app.result_code()
