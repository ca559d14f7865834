"""Pilot tests: every action of the app, driven by keys, against fake engines and fake stores."""

from __future__ import annotations

import gc
import os
import signal
import time

import pytest

from milo_tui.events import read_journal
from milo_tui.tui.app import MiloApp
from milo_tui.tui.keymap import MAIN_KEYS
from milo_tui.tui.screens.detail import DetailScreen
from milo_tui.tui.screens.dialogs import ExportDialog, HelpScreen, QuitDialog, keys_table
from milo_tui.tui.settings import load_settings
from milo_tui.tui.widgets.browser import COLUMNS
from milo_tui.tui.widgets.ordered_table import FAST_TABLE_SWITCH
from tui_fakes import sync, FakeStore, fake_engine_starter, make_finished_project, metrics_for, model_keys

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def isolated_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("NO_COLOR", raising=False)


async def wait_for(pilot, predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.05)


async def settle(pilot, app: MiloApp) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause(0.05)
    app.refresh_tick(force_all=True)
    await pilot.pause(0.05)


@pytest.fixture(params=["fast", "public"])
def table_kind(request, monkeypatch) -> str:
    """The browser with the fast table (Textual internals, quarantined) and with the public-API table.

    What must survive either way: the rows shown, their order, filters and live merging.
    """
    monkeypatch.setenv(FAST_TABLE_SWITCH, "1" if request.param == "fast" else "0")
    return request.param


def assert_table_kind(app: MiloApp, kind: str) -> None:
    assert app.browser.table.uses_fast_paths == (kind == "fast")


def table_row_ids(app: MiloApp) -> list[str]:
    table = app.browser.table
    return [row.key.value for row in table.ordered_rows]


@pytest.fixture
def finished(tmp_path):
    return make_finished_project(tmp_path / "demo", n_models=30)


def watch_app(paths, **kw) -> MiloApp:
    store = kw.pop("store", None)
    return MiloApp(paths.root, "watch", store_factory=(lambda root: store) if store else FakeStore, **kw)


@sync
async def test_watch_replays_a_finished_project(finished):
    app = watch_app(finished)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.state.status == "completed" and len(app.state.models) == 30)
        await settle(pilot, app)
        assert all(row.report for row in app.state.models.values())  # report.csv merged in
        await pilot.press("q")  # finished run: quits at once
    assert app.return_value == 0


@sync
async def test_sort_reverse_and_best_first(finished, table_kind):
    app = watch_app(finished)
    async with app.run_test(size=(80, 24)) as pilot:
        assert_table_kind(app, table_kind)
        await wait_for(pilot, lambda: len(app.state.models) == 30)
        await pilot.press("2")
        await settle(pilot, app)
        keys = model_keys(30)
        by_best = sorted(range(30), key=lambda i: tuple(-metrics_for(i)[m] for m in ("avg_sn_sp", "sensitivity", "f1")))
        assert table_row_ids(app)[0] == keys[by_best[0]]
        await pilot.press("s", "s")  # best -> SnSp -> AUC (descending)
        assert app.browser.sort_column == "roc_auc"
        aucs = [app.state.models[k].metric("roc_auc") for k in table_row_ids(app)]
        assert aucs == sorted(aucs, reverse=True)
        await pilot.press("r")
        aucs = [app.state.models[k].metric("roc_auc") for k in table_row_ids(app)]
        assert aucs == sorted(aucs)
        await pilot.press("b")
        assert table_row_ids(app)[0] == keys[by_best[0]]
        app.action_sort_by("algorithm")
        algs = [app.state.models[k].algorithm for k in table_row_ids(app)]
        assert algs == sorted(algs)


@sync
async def test_filter_by_text_phase_and_class(tmp_path, table_kind):
    paths = make_finished_project(tmp_path / "multi", n_models=14, class_labels=("a", "b", "c"))
    app = watch_app(paths)
    async with app.run_test(size=(80, 24)) as pilot:
        assert_table_kind(app, table_kind)
        await wait_for(pilot, lambda: len(app.state.models) == 14 * 4)
        await pilot.press("slash", "k", "n", "n", "enter")
        await settle(pilot, app)
        ids = table_row_ids(app)
        assert ids and all(app.state.models[i].algorithm == "knn" for i in ids)
        assert len(ids) == 2 * 4  # two knn models, each with 3 per-class rows
        await pilot.press("p")  # phase: main
        assert all(app.state.models[i].kind == "main" for i in table_row_ids(app))
        await pilot.press("p", "c")  # phase: per-class; class: a
        ids = table_row_ids(app)
        assert len(ids) == 2 and all(app.state.models[i].class_label == "a" for i in ids)
        app.browser.set_text_filter("", immediate=True)
        await pilot.press("p", "p", "c", "c", "c")  # phase all, class back to all
        assert len(table_row_ids(app)) == 14 * 4


@sync
async def test_extract_shows_pipeline_metrics_confusion_and_roc(finished):
    store = FakeStore(finished.root)
    app = watch_app(finished, store=store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.state.models) == 30)
        await pilot.press("2")
        await settle(pilot, app)
        first = table_row_ids(app)[0]
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.details is not None)
        screen = app.screen
        assert store.opened == [first]
        assert [s.class_name for s in screen.details.steps] == ["StandardScaler", "LogisticRegression"]
        assert screen.details.steps[1].params == {"C": "0.5", "max_iter": "500"}
        assert str(screen.query_one("#detail-roc").render()).count("█") > 10
        await pilot.press("escape")
        assert not isinstance(app.screen, DetailScreen)
        await pilot.press("x")  # the other extract key
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.details is not None)


@sync
async def test_extraction_failure_is_shown_not_fatal(finished):
    keys = model_keys(30)
    store = FakeStore(finished.root, fail_keys=set(keys))
    app = watch_app(finished, store=store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.state.models) == 30)
        await pilot.press("2", "x")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.details is not None)
        assert "does not match its recorded hash" in app.screen.details.error
        assert app.screen.details.report  # metrics still shown from report.csv


@sync
async def test_extraction_does_not_block_the_ui(finished):
    store = FakeStore(finished.root, delay=8.0)  # room for the keys below on a loaded 2-core machine
    store.open_model("warm-up")  # import sklearn now: only the extraction's wait is measured
    store.opened.clear()
    app = watch_app(finished, store=store, warm_imports=False)  # no import warm-up competing for the GIL
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.state.models) == 30)
        await pilot.press("2", "x")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("escape")  # keys are handled while the worker sleeps
        await wait_for(pilot, lambda: not isinstance(app.screen, DetailScreen))
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert store.opened == []  # the extraction had not finished when the keys were handled
        await app.workers.wait_for_complete()
        assert len(store.opened) == 1


@sync
async def test_predict_on_a_typed_csv_from_the_details_screen(finished, tmp_path, monkeypatch):
    """The details screen's `d` runs milo predict's own function on the typed path, with the shown model."""
    from milo_tui.errors import BadInputError
    from milo_tui.results import predict as predict_module

    calls = []

    def fake_predict(project, data, output=None, *, key=None, store=None, **kw):
        calls.append((project, data, key))
        if data.name == "bad.csv":
            raise BadInputError(f"{data} lacks the column 'alcohol'.")
        return predict_module.Prediction(key=key, rows=3, output=data.with_name("x.predictions.csv"), seconds=0.1,
                                         predicted_counts={"benign": 2, "malignant": 1}, columns_added=[])

    monkeypatch.setattr(predict_module, "predict_csv", fake_predict)
    app = watch_app(finished, warm_imports=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.state.models) == 30)
        await pilot.press("2", "x")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        key = app.screen.row.model_key
        for name in ("x.csv", "bad.csv"):
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog))
            await pilot.press("ctrl+u", *str(tmp_path / name), "enter")
            await app.workers.wait_for_complete()
            await pilot.pause(0.1)
        assert [(c[1].name, c[2]) for c in calls] == [("x.csv", key), ("bad.csv", key)]
        assert calls[0][0] == finished.root
        messages = [(e.message, e.detail) for e in app.state.log]
        assert any("Predicted 3 rows" in m and "benign: 2" in m for m, _ in messages)
        assert any(m == "Prediction refused" and "'alcohol'" in d for m, d in messages)
        assert app.is_running


@sync
async def test_details_and_predict_note_a_model_trained_under_another_scikit_learn(finished, tmp_path):
    """The note `milo predict` prints (results.model.sklearn_version_note) reaches the details screen and
    the TUI's own predict, from the same code."""
    import json

    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from milo_tui.results.model import sklearn_version_note

    meta = json.loads(finished.metadata.read_text())
    meta["data"] = {"feature_names": ["a", "b"], "class_values": ["benign", "malignant"],
                    "label_mapping": {"benign": 0, "malignant": 1}, "model_format": 2}
    meta["versions"] = {"scikit-learn": "0.20.0"}
    finished.metadata.write_text(json.dumps(meta))
    data = tmp_path / "new.csv"
    data.write_text("a,b\n0.5,1\n2.5,0\n")

    class FittedStore(FakeStore):
        def open_model(self, key: str):
            X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
            return LogisticRegression().fit(X, ["benign", "malignant", "benign", "malignant"])

    app = watch_app(finished, store=FittedStore(finished.root), warm_imports=False)
    note = sklearn_version_note("0.20.0")
    assert note and "0.20.0" in note
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.state.models) == 30)
        await pilot.press("2", "x")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.details is not None)
        assert app.screen.details.notes == [note]
        assert "scikit-learn 0.20.0" in str(app.screen.query_one("#detail-pipeline").content)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog))
        await pilot.press("ctrl+u", *str(data), "enter")
        await app.workers.wait_for_complete()
        await pilot.pause(0.1)
        predicted = [e for e in app.state.log if e.message.startswith("Predicted 2 rows")]
        assert predicted and note in predicted[0].detail and predicted[0].level == "warning"


@sync
async def test_mark_two_models_and_compare_them(finished, monkeypatch):
    """m marks, v opens the comparison computed by milo compare's own compare_models."""
    from milo_tui.errors import BadInputError
    from milo_tui.results import compare
    from milo_tui.tui.screens.compare import CompareScreen

    calls = []

    def fake_compare(project, key_a, key_b, *, store=None):
        calls.append((project, key_a, key_b))
        if len(calls) > 1:
            raise BadInputError("The two models answer different questions.")
        test = compare.PairedTest("McNemar (accuracy)", 0.9, 0.8, 0.1, 4.0, 0.0455, "b=5, c=1")
        auc = compare.PairedTest("DeLong (ROC AUC)", 0.95, 0.9, 0.05, 2.1, 0.0357, "z test")
        return compare.Comparison(key_a, key_b, 114, [compare.MetricPair("accuracy", 0.9, (0.85, 0.95), 0.8, None)],
                                  test, auc, [])

    monkeypatch.setattr(compare, "compare_models", fake_compare)
    app = watch_app(finished, warm_imports=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.state.models) == 30)
        await pilot.press("2", "v")
        assert not isinstance(app.screen, CompareScreen)  # nothing marked: a hint, no screen
        ids = table_row_ids(app)
        await pilot.press("m", "down", "m")
        assert app.browser.marked == (app.state.models[ids[0]].model_key, app.state.models[ids[1]].model_key)
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.result is not None)
        assert calls[0] == (finished.root, *app.browser.marked)
        shown = str(app.screen.query_one("#compare-tests").render())
        assert "p = 0.045" in shown and "p = 0.036" in shown and "DeLong" in shown
        await pilot.press("escape", "v")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and len(calls) == 2)
        await app.workers.wait_for_complete()
        await pilot.pause(0.1)
        assert "different questions" in str(app.screen.query_one("#compare-metrics").render())
        assert app.is_running


@sync
async def test_export_to_a_typed_path(finished, tmp_path):
    store = FakeStore(finished.root)
    app = watch_app(finished, store=store)
    target = tmp_path / "out" / "best.joblib"
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.state.models) == 30)
        await pilot.press("2", "e")
        assert isinstance(app.screen, ExportDialog)
        field = app.screen.query_one("#export-path")
        field.value = ""
        await pilot.press(*str(target))
        await pilot.press("enter")
        await wait_for(pilot, lambda: bool(store.exported))
        first = table_row_ids(app)[0]
    key, dest, bundle = store.exported[0]
    assert key == first and dest == target and not bundle
    assert target.read_bytes().startswith(b"fake model")


@sync
async def test_theme_switch_is_remembered(finished):
    app = watch_app(finished)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.theme == "milo-dark"
        palette_dark = dict(app.palette)
        await pilot.press("t")
        chosen = app.theme
        assert chosen != "milo-dark"
        assert load_settings()["theme"] == chosen
        assert app.palette != palette_dark
    again = watch_app(finished)
    async with again.run_test(size=(80, 24)):
        assert again.theme == chosen
        assert again.palette != palette_dark


@sync
async def test_textual_themes_are_offered_beside_milos_and_remembered(finished):
    app = watch_app(finished)
    async with app.run_test(size=(80, 24)):
        names = app.theme_names
        assert names[:3] == ["milo-dark", "milo-high-contrast", "milo-light"]
        assert {"nord", "gruvbox", "textual-dark"} <= set(names)
        assert "Theme: nord" in [name for name, _, _ in app.palette_commands()]
        app.set_theme("nord")
        assert load_settings()["theme"] == "nord"
        assert app.palette["warn"]  # a theme without milo's variables still colours the memory status
    again = watch_app(finished)
    async with again.run_test(size=(80, 24)):
        assert again.theme == "nord"


@sync
async def test_wide_terminals_show_the_panes_together_and_narrow_ones_tabs(finished):
    app = watch_app(finished)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.state.models) == 30)
        screen = app.main_screen
        panes = ("#pane-dashboard", "#pane-models", "#pane-events")

        def shown() -> list[bool]:
            return [screen.query_one(p).display for p in panes]

        assert not screen.wide and shown() == [True, False, False]
        await pilot.press("2")
        assert shown() == [False, True, False]
        app.browser.sort_by("roc_auc")
        await pilot.resize_terminal(160, 48)
        await pilot.pause(0.1)
        assert screen.wide and shown() == [True, True, True]  # the event log too: there is height
        assert not screen.query_one("#tabs").display
        assert app.browser.sort_column == "roc_auc"  # the same widgets: nothing lost in the resize
        await pilot.resize_terminal(130, 30)
        await pilot.pause(0.1)
        assert shown() == [True, True, False]  # wide but short: no room for the log
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.1)
        assert shown() == [False, True, False]


@sync
async def test_panes_a_resize_brings_on_screen_show_the_run_as_it_is(finished):
    """A replayed, finished run: nothing new arrives after the resize, so a pane that appears must
    catch up on its own. What must survive: the event log's history, the dashboard's figures."""
    from milo_tui.tui.widgets.eventlog import EventLog

    app = watch_app(finished)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.state.models) == 30 and app.state.is_final)
        await pilot.press("2")  # the Models tab alone: dashboard and event log are hidden
        await app.workers.wait_for_complete()
        await pilot.pause(0.3)  # refresh ticks repaint the visible pane only
        screen = app.main_screen
        log = screen.query_one("#event-log", EventLog)
        assert not log.lines
        await pilot.resize_terminal(160, 48)
        await pilot.pause(0.2)
        assert screen.visible_panes() == {"dashboard", "models", "events"}
        shown = "\n".join(line.text for line in log.lines)
        assert "Run completed" in shown  # the history written while it was hidden
        assert "Models saved" in str(screen.query_one("#storage").content)
        assert "Models 30/30" in str(screen.query_one("#memory-summary").content)
        await pilot.resize_terminal(80, 40)  # narrow and tall: the dashboard's own log, once on its tab
        await pilot.press("1")
        await pilot.pause(0.2)
        dash_log = screen.query_one("#dash-log", EventLog)
        assert "Run completed" in "\n".join(line.text for line in dash_log.lines)


@sync
async def test_the_processes_of_a_finished_run_are_not_shown_as_live(finished):
    app = watch_app(finished)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.state.is_final)
        await settle(pilot, app)
        assert app.state.memory.get("processes")  # the journal's last sample lists some
        text = str(app.main_screen.query_one("#process-lines").content)
        assert "the run is over" in text and "completed" in text
        assert "worker" not in text and "role" not in text  # no table of processes that have exited


@sync
@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage\x81", b"not,a,report\n1,2,3\n"])
async def test_a_bad_report_csv_is_reported_and_the_app_goes_on(finished, content):
    """What must survive: the app, and the models the journal knows about."""
    finished.report.write_bytes(content)
    app = watch_app(finished)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.state.models) == 30)
        await settle(pilot, app)
        if content.startswith(b"\xff"):
            assert any("report could not be read" in e.message for e in app.state.log)
        assert app.is_running and app.return_value is None
        await pilot.press("2")
        assert len(table_row_ids(app)) == 30


@sync
async def test_an_unexpected_worker_failure_is_shown_not_fatal(finished, monkeypatch):
    from milo_tui.tui import project_files

    def broken(paths):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(project_files, "read_metadata", broken)
    app = watch_app(finished)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: any("disk on fire" in e.detail for e in app.state.log))
        assert app.is_running
        await pilot.press("2")  # still answering keys
        assert app.main_screen.active_tab == "models"


@sync
async def test_help_and_palette_offer_every_action(finished):
    app = watch_app(finished)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        import io

        from rich.console import Console

        console = Console(file=io.StringIO(), width=120, record=True)
        assert app.screen.query_one("#help-keys")
        console.print(keys_table())
        help_text = console.export_text()
        for key in MAIN_KEYS:
            assert key.title in help_text
        await pilot.press("escape")
        titles = [name for name, _, _ in app.palette_commands()]
        for key in MAIN_KEYS:
            assert key.title in titles
        for column in COLUMNS:
            assert f"Sort by {column.label}" in titles
        assert {"Theme: milo-light", "Theme: milo-high-contrast"} <= set(titles)
        await pilot.press("ctrl+p")
        await pilot.press(*"Theme: milo-light")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.theme == "milo-light")


@sync
async def test_run_to_completion_with_an_engine(tmp_path):
    project = tmp_path / "live"
    project.mkdir()
    thresholds = gc.get_threshold()
    app = MiloApp(project, "run", store_factory=FakeStore, engine_starter=fake_engine_starter(models=40, delay=0.002))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.state.status == "completed")
        await settle(pilot, app)
        assert len(app.state.models) == 40 and app.state.completed == 40
        await wait_for(pilot, lambda: not app.full_collections.deferring)  # calm again: the full pass ran
        assert gc.get_threshold() == thresholds
        await pilot.press("q")
    assert app.return_value == 0
    assert app.engine.popen.wait(5) == 0


@sync
async def test_quit_and_detach_then_watch_again_and_stop(tmp_path):
    project = tmp_path / "bg"
    project.mkdir()
    app = MiloApp(project, "run", store_factory=FakeStore, engine_starter=fake_engine_starter(models=10, hold=60))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.state.completed == 10)
        await pilot.press("q")
        assert isinstance(app.screen, QuitDialog)
        await pilot.press("d")
    assert app.return_value == 0
    engine = app.engine.popen
    try:
        assert engine.poll() is None  # still training in the background
        watcher = MiloApp(project, "watch", store_factory=FakeStore)
        async with watcher.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: watcher.state.completed == 10 and watcher.state.is_live)
            watcher.state.engine_pid = engine.pid  # the fake engine reports the test's pid in run_started
            await pilot.press("q")
            assert isinstance(watcher.screen, QuitDialog)
            await pilot.press("s")
            await wait_for(pilot, lambda: engine.poll() is not None, timeout=15)
            await wait_for(pilot, lambda: watcher.state.status == "interrupted", timeout=15)
        assert engine.returncode == 4
        assert watcher.return_value == 4
        statuses = [e.data.get("status") for e in read_journal(project / "events.jsonl").events if e.type == "run_finished"]
        assert statuses == ["interrupted"]
    finally:
        if engine.poll() is None:
            os.kill(engine.pid, signal.SIGKILL)


@sync
async def test_quit_and_stop_a_run(tmp_path):
    project = tmp_path / "stop"
    project.mkdir()
    app = MiloApp(project, "run", store_factory=FakeStore, engine_starter=fake_engine_starter(models=5, hold=60))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.state.completed == 5)
        await pilot.press("q")
        await pilot.press("s")
        await wait_for(pilot, lambda: not app.is_running, timeout=15)
    assert app.return_value == 4
    assert app.engine.popen.poll() == 4


@sync
async def test_engine_death_is_reported_and_browsing_goes_on(tmp_path):
    project = tmp_path / "dies"
    project.mkdir()
    app = MiloApp(project, "run", store_factory=FakeStore, engine_starter=fake_engine_starter(models=20, die_after=30))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.state.status == "engine_died")
        await settle(pilot, app)
        assert app.state.exit_code == 9
        assert "fake engine crash" in app.state.engine_stderr
        assert "ENGINE DIED (exit 9)" in str(app.main_screen.query_one("#status-line").render())
        models = len(app.state.models)
        assert models > 0
        await pilot.press("2")
        await settle(pilot, app)
        assert len(table_row_ids(app)) == models
        await pilot.press("q")  # nothing live: no question
    assert app.return_value == 9


@sync
async def test_garbled_journal_lines_are_reported(tmp_path):
    paths = make_finished_project(tmp_path / "g", n_models=5)
    with open(paths.events, "ab") as handle:
        handle.write(b"{not json\n")
    app = watch_app(paths)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.state.decode_errors == 1)
        assert app.state.status == "completed"


@sync
async def test_the_import_warm_up_waits_while_events_stream_in(tmp_path):
    """Importing scikit-learn holds the GIL: it must not start while a run floods the screen with events,
    and must start once the flow is calm (or the run is over), so the first model still opens fast."""
    from milo_tui.events import DecodedLines
    from tui_fakes import synthetic_run, to_events

    project = tmp_path / "live"
    project.mkdir()
    app = MiloApp(project, "watch", store_factory=FakeStore, refresh_seconds=1000.0)  # ticks driven below
    events = to_events(synthetic_run(400, status=None))
    async with app.run_test(size=(80, 24)) as pilot:
        app.refresh_tick()
        assert not app._warm_up_started  # no run yet: nothing to be calm about
        for start in range(0, 1200, 400):  # 2,000 events/s at 5 Hz
            app.inbox.put(DecodedLines(events[start:start + 400], []))
            app.refresh_tick()
            assert app.state.is_live and not app._warm_up_started
        app.refresh_seconds = 0.2
        for _ in range(5):  # one calm second
            app.refresh_tick()
        assert app._warm_up_started
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.warm_up_seconds is not None


@sync
async def test_rows_finishing_live_are_placed_in_order_without_a_full_sort(tmp_path, table_kind):
    from milo_tui.runstate import ModelRow
    from milo_tui.tui.widgets.browser import sort_key_function
    from tui_fakes import split_for_bench

    project = tmp_path / "empty"
    project.mkdir()
    app = MiloApp(project, "watch", store_factory=FakeStore)
    rows = split_for_bench(90)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        browser = app.browser
        assert_table_kind(app, table_kind)

        def expected() -> list[str]:
            key = sort_key_function(browser.sort_column, browser.sort_descending)
            return [r.row_id for r in sorted(app.state.models.values(), key=key)]

        for start in range(0, 60, 20):  # three ticks of a live run, best first
            for row in rows[start:start + 20]:
                app.state.add_model(row)
            app.refresh_tick()
            assert table_row_ids(app) == expected()
        browser.sort_by("roc_auc")
        sorts = browser.full_sorts
        for row in rows[60:]:
            app.state.add_model(row)
        app.refresh_tick()
        assert table_row_ids(app) == expected() and browser.full_sorts == sorts
        # A finished run's report row replaces the live one, with other metrics: it moves to its new place.
        changed = rows[0]
        app.state.add_model(ModelRow(key=changed.key, metrics={**changed.metrics, "roc_auc": 0.0001},
                                     algorithm=changed.algorithm, report={"key": changed.key}))
        app.refresh_tick()
        assert table_row_ids(app) == expected() and table_row_ids(app)[-1] == changed.row_id
        assert app.browser.table.row_count == 90


@sync
async def test_rows_changed_while_filtered_out_or_shown_come_back_current_when_a_filter_is_cleared(tmp_path, table_kind):
    """A filter change reuses the sorted order and the rows' loaded form (no re-sort, no re-formatting);
    what must survive: every row comes back in the right place with the values it has now."""
    from milo_tui.runstate import ModelRow
    from milo_tui.tui import formatting as fmt
    from milo_tui.tui.widgets.browser import sort_key_function
    from tui_fakes import split_for_bench

    project = tmp_path / "empty"
    project.mkdir()
    app = MiloApp(project, "watch", store_factory=FakeStore)
    rows = split_for_bench(70)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        browser = app.browser
        assert_table_kind(app, table_kind)
        browser.sort_by("roc_auc")
        for row in rows:
            app.state.add_model(row)
        app.refresh_tick()

        def expected() -> list[str]:
            key = sort_key_function(browser.sort_column, browser.sort_descending)
            shown = [r for r in app.state.models.values() if "knn" in r.key or not browser.text_filter]
            return [r.row_id for r in sorted(shown, key=key)]

        def replace(row: ModelRow, auc: float) -> ModelRow:
            new = ModelRow(key=row.key, metrics={**row.metrics, "roc_auc": auc}, algorithm=row.algorithm,
                           scaler=row.scaler, selector=row.selector, report={"key": row.key})
            app.state.add_model(new)
            app.refresh_tick()
            return new

        shown_one = next(r for r in rows if r.algorithm == "knn")
        hidden_one = next(r for r in rows if r.algorithm == "lr")
        browser.set_text_filter("knn", immediate=True)
        assert table_row_ids(app) == expected() and hidden_one.row_id not in table_row_ids(app)
        replace(hidden_one, 0.9999)  # changes while filtered out: must come back first, with its new AUC
        replace(shown_one, 0.0001)  # changes while shown (patched cell by cell): must stay current
        assert table_row_ids(app) == expected() and table_row_ids(app)[-1] == shown_one.row_id
        sorts = browser.full_sorts
        browser.set_text_filter("", immediate=True)
        await pilot.pause()
        ids = table_row_ids(app)
        assert ids == expected() and len(ids) == 70 and browser.full_sorts == sorts
        assert ids[0] == hidden_one.row_id and ids[-1] == shown_one.row_id
        table = browser.table
        assert str(table.get_cell(hidden_one.row_id, "roc_auc")) == fmt.metric(0.9999)
        assert str(table.get_cell(shown_one.row_id, "roc_auc")) == fmt.metric(0.0001)
        browser.set_text_filter("knn", immediate=True)
        browser.set_text_filter("", immediate=True)  # reloaded from the cache a second time
        assert str(table.get_cell(shown_one.row_id, "roc_auc")) == fmt.metric(0.0001)
        assert table_row_ids(app) == expected()


@sync
async def test_the_screen_shows_the_table_as_it_is_after_ticks_that_skip_or_do_its_repaint(tmp_path, table_kind):
    """The fast table repaints only when the rows in its window change, and sizes itself without a full
    repaint. What must survive: after any tick, the screen equals a freshly loaded table of the same rows:
    rows landing below the window, at its top, at the end of a short table, and rows widening a column."""
    from milo_tui.runstate import ModelRow

    project = tmp_path / "empty"
    project.mkdir()
    app = MiloApp(project, "watch", store_factory=FakeStore)
    count = 0

    def row(quality: float, selector: str = "none") -> ModelRow:
        nonlocal count
        count += 1
        metrics = {name: quality for name in ("avg_sn_sp", "sensitivity", "f1", "roc_auc", "accuracy")}
        return ModelRow(key=f"std__{selector}__lr__grid__f1__{count}", scaler="std", selector=selector,
                        algorithm="lr", metrics=metrics)

    async def tick_and_compare(pilot, rows: list[ModelRow]) -> None:
        for new in rows:
            app.state.add_model(new)
        app.refresh_tick()
        await pilot.pause()
        live = app.export_screenshot()
        app.browser.rebuild()  # reloads every row and repaints the whole table
        await pilot.pause()
        assert live == app.export_screenshot()

    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        assert_table_kind(app, table_kind)
        await tick_and_compare(pilot, [row(0.5 + i / 100) for i in range(3)])  # a short table
        await tick_and_compare(pilot, [row(0.4 - i / 100) for i in range(3)])  # appended at its end, in view
        await tick_and_compare(pilot, [row(0.45 + i / 1000) for i in range(40)])  # fills the window
        await tick_and_compare(pilot, [row(0.1), row(0.2)])  # below the window: no repaint needed
        await tick_and_compare(pilot, [row(0.99)])  # at the top: the window changes
        await tick_and_compare(pilot, [row(0.05, selector="a-much-longer-selector")])  # a wider column
        assert app.browser.table.row_count == 50


@sync
async def test_storage_panel_of_a_journal_without_storage_events_is_read_from_disk(tmp_path):
    import threading

    from milo_tui import events as ev
    from milo_tui.storage.stats import StorageStats
    from milo_tui.tui.widgets.storage import StoragePanel
    from tui_fakes import synthetic_run, write_journal

    paths = make_finished_project(tmp_path / "old", n_models=8)
    paths.events.unlink()
    write_journal(paths.events, ((t, d) for t, d in synthetic_run(8) if t != ev.STORAGE))
    stats = StorageStats(models_saved=8, bytes_before_compression=4_000_000, bytes_in_archives=1_000_000,
                         compression_ratio=0.75, archives=1, batches=2, temp_files_removed=8,
                         disk_free_bytes=50 * 10**9, files_pending=0)
    store = FakeStore(paths.root, stats_result=stats)
    app = watch_app(paths, store=store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.state.storage.get("models_saved") == 8)
        await settle(pilot, app)
        assert store.stats_threads and threading.main_thread().name not in store.stats_threads
        panel = app.main_screen.query_one(StoragePanel)
        shown = str(panel.render())
        assert "75% smaller" in shown and panel.border_subtitle == "from disk"


@sync
async def test_storage_events_win_over_disk_statistics(finished):
    store = FakeStore(finished.root, stats_result=None)
    app = watch_app(finished, store=store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.state.status == "completed")
        await settle(pilot, app)
        assert app.state.storage.get("models_saved") == 30 and "source" not in app.state.storage


def _burst(app: MiloApp, keys: list[str]) -> None:
    """Keys as a terminal delivers a fast burst: all posted at once, like the driver does."""
    from textual import events

    for key in keys:
        character = key if len(key) == 1 else None
        app.post_message(events.Key(key, character))


@sync
async def test_keys_typed_right_after_e_and_slash_all_land_in_order(finished):
    app = watch_app(finished)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.state.models) == 30)
        await pilot.press("2")
        _burst(app, ["e", *"/tmp/qtxs", "backspace", "backspace", *"ab.joblib"])
        await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog))
        await pilot.pause(0.3)
        assert app.screen.path_field.value == "/tmp/qtab.joblib"
        assert app.theme == "milo-dark"  # the `t` was typed, not taken as "next theme"
        await pilot.press("escape")
        _burst(app, ["slash", *"knnx", "backspace", "enter"])
        await pilot.pause(0.6)
        assert app.browser.text_filter == "knn"
        assert not isinstance(app.screen, DetailScreen)  # `x` was typed into the filter, not "extract"


@sync
async def test_the_cursor_at_the_top_follows_the_best_model_and_a_moved_one_stays(tmp_path):
    from milo_tui.events import DecodedLines
    from tui_fakes import synthetic_run, to_events

    project = tmp_path / "live"
    project.mkdir()
    app = MiloApp(project, "watch", store_factory=FakeStore, refresh_seconds=1000.0)  # ticks driven below
    def improving(stream):  # each model better than the ones before it: every tick brings a new best
        for etype, data in stream:
            if etype == "model_finished":
                data = {**data, "metrics": {**data["metrics"], "avg_sn_sp": 0.5 + data["completed"] / 1000}}
            yield etype, data

    events = to_events(improving(synthetic_run(240, status=None)))
    batches = [events[start:start + 30] for start in range(0, len(events), 30)]
    async with app.run_test(size=(120, 40)) as pilot:  # the wide layout: the browser shows during the run
        table = app.browser.table
        for batch in batches[:len(batches) // 2]:
            app.inbox.put(DecodedLines(batch, []))
            app.refresh_tick()
            await pilot.pause()
            # The best so far, on screen, after every tick (better ones keep arriving above it).
            assert app.browser.highlighted_row_id() == app.state.best_model.row_id
            assert table.cursor_row == 0 and table.scroll_offset.y == 0
        table.move_cursor(row=3)
        chosen = app.browser.highlighted_row_id()
        for batch in batches[len(batches) // 2:]:
            app.inbox.put(DecodedLines(batch, []))
            app.refresh_tick()
            await pilot.pause()
        assert app.browser.highlighted_row_id() == chosen  # the model the user moved to, wherever it went
        table.move_cursor(row=0)
        assert app.browser.highlighted_row_id() == app.state.best_model.row_id
