"""Memory states driven end to end: a small memory_budget and real memory-hungry processes.

The worker balloon (MILO_TEST_BALLOON="algorithm:MB[:first]") makes a worker hold
real, resident memory; the engine balloon (MILO_TEST_ENGINE_BALLOON="N:MB") makes
the engine hold memory no cleanup can recover once N models have finished.
"""

from __future__ import annotations

import json

from milo_tui import events as ev
from milo_tui.config import format_size
from milo_tui.engine.report import model_rows, read_report
from milo_tui.storage.store import ModelStore

from engine_helpers import copy_sample, run_engine, small_binary_project, validate_events

FAST_MONITOR = {"sample_interval": 0.1, "critical_grace": 1.5}


def _alerts(result, level=None):
    return [e.data for e in result.of_type(ev.ALERT) if level is None or e.data["level"] == level]


def _project(tmp_path, memory, algorithms=("lr", "knn"), **search):
    project = small_binary_project(tmp_path, algorithms=list(algorithms), scalers=["none"],
                                   selectors=["none"], **search)
    from engine_helpers import write_config

    write_config(project, {"memory": {**FAST_MONITOR, **memory}, "run": {"workers": 1}})
    return project


def test_yellow_runs_a_cleanup_and_says_so(tmp_path):
    project = _project(tmp_path, {"memory_budget": "2GB", "warning": 0.3, "critical": 0.9})
    result = run_engine(project, env={"MILO_TEST_BALLOON": "lr:700", "MILO_TEST_BALLOON_SECONDS": "2"})
    assert result.exit_code == 0, result.finished
    validate_events(result.events)
    warnings = _alerts(result, "warning")
    assert [w["message"] for w in warnings][:1] == [ev.MSG_WARNING]
    assert any(e.data["level"] == "warning" for e in result.of_type(ev.CLEANUP))
    statuses = {e.data["status"] for e in result.of_type(ev.MEMORY)}
    assert "yellow" in statuses and "red" not in statuses
    assert result.finished["models_completed"] == 8


def test_red_kills_the_runaway_worker_and_the_retry_succeeds(tmp_path):
    project = _project(tmp_path, {"memory_budget": "2GB", "warning": 0.3, "critical": 0.5})
    result = run_engine(project, env={"MILO_TEST_BALLOON": "knn:1400:first", "MILO_TEST_BALLOON_SECONDS": "60"})
    assert result.exit_code == 0, result.finished
    critical = _alerts(result, "critical")
    assert critical and critical[0]["message"] == ev.MSG_CRITICAL
    retries = [e.data["message"] for e in result.of_type(ev.LOG) if "retrying once with n_jobs=1" in e.data["message"]]
    assert len(retries) == 1 and "over its allowance" in retries[0]
    starts = [e.data for e in result.of_type(ev.MODEL_STARTED) if e.data["pipeline"].endswith("knn__grid")]
    assert [s["attempt"] for s in starts] == [1, 2]
    assert not result.of_type(ev.MODEL_FAILED) and not result.of_type(ev.MODEL_SKIPPED)
    assert len(model_rows(read_report(project / "report.csv"))) == 8
    assert any("back below the critical level" in a["message"] for a in _alerts(result, "info"))


def test_a_worker_killed_twice_is_skipped_with_its_estimate_and_the_limit(tmp_path):
    project = _project(tmp_path, {"memory_budget": "2GB", "warning": 0.3, "critical": 0.5})
    result = run_engine(project, env={"MILO_TEST_BALLOON": "knn:1400", "MILO_TEST_BALLOON_SECONDS": "60"})
    assert result.exit_code == 0, result.finished
    skipped = [e.data for e in result.of_type(ev.MODEL_SKIPPED)]
    assert len(skipped) == 1 and skipped[0]["pipeline"].endswith("knn__grid")
    reason = skipped[0]["reason"]
    assert "killed twice" in reason and "estimate" in reason and "budget limit" in reason
    rows = read_report(project / "report.csv")
    assert sum(1 for r in rows if r["status"] == "skipped") == 4
    assert result.finished["models_skipped"] == 4 and result.finished["models_completed"] == 4


def test_a_model_whose_estimate_cannot_fit_is_skipped_not_started(tmp_path):
    # 300 MB with critical at 99 %: the engine and forkserver fit, no worker's estimate does.
    project = _project(tmp_path, {"memory_budget": "300MB", "warning": 0.98, "critical": 0.99})
    result = run_engine(project)
    assert result.exit_code == 0, result.finished
    assert not result.of_type(ev.MODEL_STARTED)
    skipped = [e.data for e in result.of_type(ev.MODEL_SKIPPED)]
    assert len(skipped) == 2
    assert all("needs an estimated" in s["reason"] and f"{format_size(300_000_000)} budget limit" in s["reason"] for s in skipped)


def test_memory_that_stays_critical_stops_safely_and_resume_finishes(tmp_path):
    project = small_binary_project(tmp_path)
    from engine_helpers import write_config

    write_config(project, {"memory": {**FAST_MONITOR, "memory_budget": "2GB", "warning": 0.3, "critical": 0.5},
                           "run": {"workers": 1}})
    stopped = run_engine(project, env={"MILO_TEST_ENGINE_BALLOON": "8:1500"})
    assert stopped.exit_code == 3, stopped.finished
    assert stopped.finished["status"] == "stopped_memory"
    emergency = _alerts(stopped, "emergency")
    assert len(emergency) == 1 and emergency[0]["message"] == ev.MSG_STOPPED
    assert _alerts(stopped, "critical")[0]["message"] == ev.MSG_CRITICAL
    meta = json.loads((project / "metadata.json").read_text())
    assert meta["status"] == "stopped_memory"
    finished = {r["key"] for r in model_rows(read_report(project / "report.csv"))}
    assert len(finished) >= 8
    # Every finished model is archived, none left as a loose file.
    assert {e.key for e in ModelStore(project).list_models() if e.location == "archive"} == finished
    assert not list((project / "models" / "main_models").glob("*.joblib"))

    resumed = run_engine(project, resume=True)
    assert resumed.exit_code == 0, resumed.finished
    keys = [r["key"] for r in model_rows(read_report(project / "report.csv"))]
    assert len(keys) == len(set(keys)) == 32 and finished <= set(keys)


def _wine(tmp_path, memory):
    from engine_helpers import write_config

    project = copy_sample("wine", tmp_path)
    write_config(project, {"search": {"algorithms": ["lr"], "scalers": ["none"], "selectors": ["none"],
                                      "cv_folds": 3},
                           "memory": {**FAST_MONITOR, **memory}})
    return project


def test_ovr_check_skips_the_phase_when_it_does_not_fit(tmp_path):
    project = _wine(tmp_path, {"memory_budget": "2GB", "warning": 0.3, "critical": 0.8, "ovr_policy": "skip"})
    result = run_engine(project, env={"MILO_TEST_ENGINE_BALLOON": "4:1200"})
    assert result.exit_code == 0, result.finished
    checks = [a for a in _alerts(result) if a["message"].startswith("OvR re-optimization needs")]
    assert len(checks) == 1 and "skipping the OvR phase" in checks[0]["message"]
    assert not [e for e in result.of_type(ev.MODEL_FINISHED) if e.data["phase"] == "ovr"]
    assert result.finished["models_completed"] == 4


def test_ovr_check_stops_when_the_policy_says_stop_and_resume_trains_ovr(tmp_path):
    project = _wine(tmp_path, {"memory_budget": "2GB", "warning": 0.3, "critical": 0.8, "ovr_policy": "stop"})
    stopped = run_engine(project, env={"MILO_TEST_ENGINE_BALLOON": "4:1200"})
    assert stopped.exit_code == 3 and stopped.finished["status"] == "stopped_memory"
    assert "stopping the run" in stopped.finished["message"]
    resumed = run_engine(project, resume=True)
    assert resumed.exit_code == 0, resumed.finished
    rows = model_rows(read_report(project / "report.csv"))
    assert sum(r["phase"] == "ovr" for r in rows) == 12 and sum(r["phase"] == "main" for r in rows) == 4
