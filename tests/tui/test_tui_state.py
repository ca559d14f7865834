"""RunState, charts, project files, themes and settings: the plain-Python side of the TUI."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from milo_tui import events as ev
from milo_tui.tui import charts, project_files
from milo_tui.tui.settings import load_settings, save_setting, settings_path
from milo_tui.runstate import ModelRow, RunState, split_key
from tui_fakes import make_finished_project, metrics_for, model_keys, synthetic_run, to_events


def run_state(n_models: int = 20, **kw) -> RunState:
    state = RunState()
    state.apply_batch(to_events(synthetic_run(n_models, **kw)))
    return state


def test_full_run_folds_into_counts_best_and_status():
    state = run_state(20)
    assert state.status == "completed" and state.is_final and not state.is_live
    assert state.completed == 20 and state.total_models == 20 and state.progress == 1.0
    assert len(state.models) == 20
    expected = max(range(20), key=lambda i: tuple(metrics_for(i)[m] for m in ("avg_sn_sp", "sensitivity", "f1")))
    assert state.best_model.key == model_keys(20)[expected]
    assert state.memory_status in ("green", "yellow", "red")
    assert state.storage["models_saved"] == 20
    assert state.exit_code == 0


def test_eta_uses_the_rate_of_this_run():
    events = to_events(synthetic_run(10, status=None), step=1.0)
    state = RunState()
    # stop after the 5th model_finished
    finished = 0
    for event in events:
        state.apply(event)
        if event.type == ev.MODEL_FINISHED:
            finished += 1
            if finished == 5:
                break
    elapsed = state.last_ts - state.started_ts
    assert state.eta_seconds == pytest.approx(elapsed / 5 * 5)
    assert 0 < state.progress < 1


def test_eta_follows_the_engine_s_work_weights_when_it_sends_them():
    """A run that starts with its slowest algorithm: 1 model of 10 done after 10 s, but it was half the
    work. The rate of models would promise 90 s more; the work says 10."""
    started = {"run_id": "r", "total_models": 10, "pipelines": 2, "already_done": 0, "work_done": 0.0,
               "work_total": 100.0}
    state = RunState()
    state.apply(ev.Event(ev.RUN_STARTED, started, seq=0, ts=100.0))
    state.apply(ev.Event(ev.MODEL_FINISHED, {"key": "none__none__gb__grid__accuracy__0", "completed": 1, "total": 10,
                                             "work_done": 50.0, "work_total": 100.0}, seq=1, ts=110.0))
    assert state.eta_seconds == pytest.approx(10.0)
    # The total can shrink (an OvR phase skipped): the latest one counts.
    state.apply(ev.Event(ev.MODEL_FAILED, {"pipeline": "none__none__nb__grid", "keys": ["k"], "completed": 1,
                                           "total": 8, "work_done": 60.0, "work_total": 75.0}, seq=2, ts=112.0))
    assert state.eta_seconds == pytest.approx(12.0 / 60.0 * 15.0)
    # A resumed run's rate counts only what this run did.
    resumed = RunState()
    resumed.apply(ev.Event(ev.RUN_STARTED, {**started, "resume": True, "already_done": 5, "work_done": 80.0},
                           seq=0, ts=200.0))
    resumed.apply(ev.Event(ev.MODEL_FINISHED, {"key": "none__none__nb__grid__accuracy__0", "completed": 6,
                                               "total": 10, "work_done": 90.0, "work_total": 100.0}, seq=1, ts=205.0))
    assert resumed.eta_seconds == pytest.approx(5.0)
    # Hostile weights are ignored, not trusted: back to the rate of models.
    hostile = RunState()
    hostile.apply(ev.Event(ev.RUN_STARTED, {**started, "work_total": -5, "work_done": "x"}, seq=0, ts=100.0))
    hostile.apply(ev.Event(ev.MODEL_FINISHED, {"key": "none__none__gb__grid__accuracy__0", "completed": 1,
                                               "total": 10, "work_done": float("nan")}, seq=1, ts=110.0))
    assert hostile.eta_seconds == pytest.approx(90.0)


def test_unknown_types_and_bad_payloads_are_survived():
    state = RunState()
    state.apply(ev.Event("from_the_future", {"x": 1}, seq=0, ts=1.0))
    state.apply(ev.Event(ev.MODEL_FINISHED, {"key": "a__b__lr__grid__f1__0", "metrics": "oops"}, seq=1, ts=2.0))
    state.apply(ev.Event(ev.MEMORY, {"used_bytes": "lots", "limit_bytes": None}, seq=2, ts=3.0))
    state.apply_batch([], errors=["not JSON: boom"])
    assert state.decode_errors == 1
    assert "a__b__lr__grid__f1__0" in state.models
    assert any("garbled" in e.message for e in state.log)


def test_predictive_alert_shows_until_the_trend_clears():
    state = RunState()
    state.apply(ev.Event(ev.ALERT, {"level": "predictive", "message": "critical in 60 s", "detail": ""}, seq=0, ts=1))
    assert state.predictive_alert.message == "critical in 60 s"
    state.apply(ev.Event(ev.MEMORY, {"status": "green", "used_bytes": 1, "limit_bytes": 10,
                                     "seconds_to_critical": None, "seconds_to_limit": None}, seq=1, ts=2))
    assert state.predictive_alert is None


def test_engine_death_without_run_finished_is_reported():
    state = RunState()
    state.apply_batch(to_events(synthetic_run(5, status=None)))
    state.engine_exited(9, "RuntimeError: boom", ts=5.0)
    assert state.status == "engine_died" and state.exit_code == 9
    assert state.log[-1].detail == "RuntimeError: boom"
    assert len(state.models) == 5  # what finished stays browsable


def test_per_class_rows_do_not_collide_with_their_main_model():
    state = RunState()
    main = ModelRow(key="std__none__lr__grid__f1__0", class_type="multiclass", metrics={"avg_sn_sp": 0.8})
    per_class = ModelRow(key="std__none__lr__grid__f1__0", class_type="ovr", class_index=1, phase="main", archive="")
    ovr = ModelRow(key="std__none__lr__grid__f1__0_ovr_class_1", class_type="ovr", class_index=1, phase="ovr")
    for row in (main, per_class, ovr):
        state.add_model(row)
    assert len(state.models) == 3
    assert [r.kind for r in (main, per_class, ovr)] == ["main", "per-class", "ovr"]
    assert state.best_model is main
    assert split_key(ovr.key)["algorithm"] == "lr"


def test_report_rows_are_preferred_over_event_rows(tmp_path: Path):
    paths = make_finished_project(tmp_path / "p", n_models=6, class_labels=("a", "b", "c"))
    rows = project_files.read_report_rows(paths)
    assert len(rows) == 6 * 4  # main rows + 3 per-class rows each
    state = RunState()
    for row in rows:
        state.add_model(row)
    state.apply_batch(to_events(synthetic_run(6, class_labels=("a", "b", "c"))))
    assert all(row.report for row in state.models.values())
    assert project_files.read_class_results(paths, "../escape") is None
    assert project_files.read_class_results(paths, rows[0].key)["class_type"] == "multiclass"


def test_memory_graph_draws_both_thresholds_and_labels_them():
    lines = charts.memory_graph([10, 50, 80, 95], width=30, height=10)
    text = ["".join(chunk for chunk, _ in line) for line in lines]
    assert len(text) == 10 and all(len(t) == 30 for t in text)
    assert any(t.startswith(" 75%┤") and charts.WARN_CHAR in t for t in text)
    assert any(t.startswith(" 85%┤") and charts.CRIT_CHAR in t for t in text)
    tags = {tag for line in lines for _, tag in line}
    assert {"ok", "warn", "crit"} <= tags


def test_roc_chart_follows_the_curve():
    lines = charts.roc_chart([0, 0, 1], [0, 1, 1], width=24, height=8)
    text = ["".join(chunk for chunk, _ in line) for line in lines]
    assert text[0].startswith("1.0┤") and text[0].count("█") >= 18  # a perfect model hugs the top
    assert charts.progress_bar(0.5, 10) == "█████░░░░░"


def test_settings_respect_xdg_config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    save_setting("theme", "milo-light")
    assert settings_path() == tmp_path / "milo" / "settings.json"
    assert load_settings() == {"theme": "milo-light"}
    settings_path().write_text("{broken")
    assert load_settings() == {}


def test_shipped_themes_load_and_bad_user_themes_are_reported(tmp_path):
    pytest.importorskip("textual")
    from milo_tui.tui.themes import SHIPPED_THEMES_DIR, load_themes

    (tmp_path / "bad.toml").write_text('name = "x"\nprimary = "not-a-colour"\n')
    (tmp_path / "mine.toml").write_text('name = "mine"\nprimary = "#ff0000"\n')
    themes, problems = load_themes([SHIPPED_THEMES_DIR, tmp_path])
    names = [t.name for t in themes]
    assert names[0] == "milo-dark"
    assert {"milo-light", "milo-high-contrast", "mine"} <= set(names)
    assert len(problems) == 1 and "bad.toml" in problems[0]


def test_state_module_does_not_import_textual():
    import subprocess
    import sys

    code = ("import sys; import milo_tui.runstate, milo_tui.tui.project_files, milo_tui.tui.charts, "
            "milo_tui.tui.sources, milo_tui.tui.extraction; print('textual' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_module_imports_a_private_textual_module():
    """Textual's private modules change without notice; internals live only in widgets/fast_table.py."""
    import re

    private = re.compile(r"^\s*(from|import)\s+textual(\.\w+)*\._\w+", re.MULTILINE)
    offenders = [str(path) for path in Path(__file__).resolve().parents[2].joinpath("milo_tui").rglob("*.py")
                 if private.search(path.read_text(encoding="utf-8"))]
    assert offenders == []


def test_memory_graph_time_axis_says_how_long_it_spans():
    axis = "".join(text for text, _ in charts.time_axis([1000.0 + 30 * i for i in range(9)], 40))
    assert axis.endswith("now") and "-4.0 min" in axis and len(axis) == 40
    assert "".join(t for t, _ in charts.time_axis([], 40)).endswith("now")
    wide = "".join(t for t, _ in charts.time_axis([float(i) for i in range(7200)], 100))
    assert "-1.6 min" in wide  # only the newest 95 samples are drawn (one per column): the axis spans those


def test_process_list_shows_every_process_with_pss_and_cpu():
    pytest.importorskip("textual")
    from milo_tui.tui.widgets.memory import process_lines

    state = RunState()
    procs = [{"pid": 100 + i, "role": "worker", "name": "python", "pss_bytes": (i + 1) * 2**20,
              "cpu_percent": 10.0 * i} for i in range(12)]
    procs[0]["cpu_percent"] = None  # a process's first sample has no CPU figure yet
    state.memory = {"processes": procs}
    lines = process_lines(state).plain.splitlines()
    assert len(lines) == 1 + 12 + 1  # header, every process (no "+N more"), total
    assert lines[1].split()[1:] == ["111", "12.0", "MiB", "110%"]  # heaviest first
    assert lines[-2].split()[-1] == "-"
    assert lines[-1].startswith("12 processes") and "78.0 MiB" in lines[-1]


def test_thresholds_line_names_what_they_are_held_against():
    pytest.importorskip("textual")
    from milo_tui.tui.widgets.memory import thresholds_line

    state = RunState()
    assert "waiting" in thresholds_line(state)
    state.memory = {"used_bytes": 1, "used_basis": "milo", "limit_source": "budget"}
    assert "milo's tree" in thresholds_line(state) and "budget" in thresholds_line(state)
    state.memory = {"used_bytes": 1, "used_basis": "machine", "limit_source": "physical"}
    assert "available" in thresholds_line(state) and "short" in thresholds_line(state)


def test_sizes_are_binary_units_like_free_and_htop():
    from milo_tui.config import format_size

    assert [format_size(n) for n in (512, 1536, 210 * 2**20, int(7.6 * 2**30), 3 * 2**40)] == [
        "512 B", "1.5 KiB", "210.0 MiB", "7.6 GiB", "3.0 TiB"]


_METRIC = st.one_of(st.none(), st.sampled_from([0.5, 0.7, 0.9]), st.just(float("nan")), st.just("0.8"))


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["main", "per-class"]), _METRIC, _METRIC, _METRIC,
                               st.booleans()), max_size=30))
def test_best_model_is_the_first_row_added_that_beat_every_earlier_one(rows):
    # Each row computes its best-order key once (RunState compares every new row with the best): the
    # best must still be what comparing every added row with the best so far gives (replacements,
    # per-class rows, ties, missing and NaN metrics included).
    state, expected = RunState(), None
    for index, (key_number, kind, snsp, sens, f1, from_report) in enumerate(rows):
        row = ModelRow(key=f"std__none__lr__grid__roc_auc__{key_number}", phase="main",
                       class_type="ovr" if kind == "per-class" else "binary",
                       class_index=index % 2 if kind == "per-class" else None,
                       metrics={"avg_sn_sp": snsp, "sensitivity": sens, "f1": f1},
                       report={"key": "x"} if from_report else {})
        existing = state.models.get(row.row_id)
        kept = existing is not None and existing.report and index % 3 == 0  # prefer_existing below
        state.add_model(row, prefer_existing=index % 3 == 0)
        if not kept and not row.is_per_class and (
                expected is None or row.best_order_key() > expected.best_order_key()):
            expected = row
        assert state.best_model is expected


@pytest.mark.parametrize("value, expected", [
    (7, 7), (-3, -3), (2 ** 53, 2 ** 53),
    (2 ** 60 + 1, int(float(2 ** 60 + 1))),  # beyond a float's exact range: the float round trip, as always
    (10 ** 400, None), (True, None), (None, None), (7.9, 7), ("12", 12), (float("inf"), None),
])
def test_event_integers_read_as_before_the_fast_path_for_ints(value, expected):
    from milo_tui.runstate import _int_or_none

    assert _int_or_none(value) == expected


@pytest.mark.parametrize("value, shown", [(0.87654, "0.877"), (1, "1.000"), (None, "-"), (True, "-"), ("0.5", "-")])
def test_metric_cells_show_floats_ints_and_missing_values_as_before(value, shown):
    # The metric cell takes a shortcut for floats (every new row formats eight); other values take
    # ModelRow.metric's checks: ints are numbers, a bool or text is not.
    from milo_tui.tui.widgets.browser import COLUMN_BY_KEY

    assert COLUMN_BY_KEY["roc_auc"].render(ModelRow(key="k", metrics={"roc_auc": value})) == shown
