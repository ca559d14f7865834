"""Fault drills: memory pressure through memory_budget, end to end through the real engine.

The memory engineer's tests check the governor's states one by one; these check what a run
ends with. MILO_TEST_BALLOON (engine/worker.py) makes a worker of one algorithm hold real,
touched memory, so the pressure is genuine PSS, measured the way the engine measures it.

What must hold (docs/MEMORY.md): a budget the engine cannot even start under stops the run
safely (status stopped_memory, exit 3, an emergency alert) and --resume with a sane budget
completes it; a worker that outgrows the budget is killed, retried once with n_jobs=1, then
skipped with a reason naming the limit, while the run completes and the rest of the models
are kept; skipped models are retrained by --resume once memory allows.
"""

from __future__ import annotations

import json


from milo_tui import events as ev
from milo_tui.engine.report import read_report
from milo_tui.errors import EXIT_STOPPED_MEMORY

from drill_checks import assert_run_consistent, report_keys
from engine_helpers import run_engine, small_binary_project, write_config

HOG = {"MILO_TEST_BALLOON": "knn:800", "MILO_TEST_BALLOON_SECONDS": "4"}


def tiny_project(tmp_path, **search):
    settings = {"algorithms": ["lr", "knn"], "scalers": ["none"], "selectors": ["none"]}
    settings.update(search)
    return small_binary_project(tmp_path, **settings)


def test_budget_below_the_engine_itself_stops_safely_then_resumes(tmp_path):
    project = tiny_project(tmp_path)
    write_config(project, {"memory": {"memory_budget": "64MB", "critical_grace": 1.0}})
    stopped = run_engine(project)
    assert stopped.exit_code == EXIT_STOPPED_MEMORY
    assert stopped.finished["status"] == "stopped_memory" and "--resume" in stopped.finished["message"]
    emergencies = [e.data for e in stopped.of_type(ev.ALERT) if e.data["level"] == "emergency"]
    assert emergencies and emergencies[0]["message"] == ev.MSG_STOPPED
    meta = json.loads((project / "metadata.json").read_text())
    assert meta["status"] == "stopped_memory" and meta["memory"]["limit_source"] == "budget"
    assert not stopped.of_type(ev.MODEL_FINISHED)

    write_config(project, {"memory": {"memory_budget": "16GB"}})
    resumed = run_engine(project, resume=True)
    assert resumed.exit_code == 0, resumed.finished
    assert_run_consistent(project, 8)


def test_worker_over_budget_is_killed_retried_skipped_and_resume_trains_it(tmp_path):
    project = tiny_project(tmp_path)
    write_config(project, {"memory": {"memory_budget": "1GB"}, "run": {"workers": 1}})
    result = run_engine(project, env=HOG)
    assert result.exit_code == 0 and result.finished["status"] == "completed", result.finished
    assert any(e.data["level"] == "critical" for e in result.of_type(ev.ALERT))
    retries = [e.data["message"] for e in result.of_type(ev.LOG) if "retrying once with n_jobs=1" in e.data["message"]]
    assert retries and all("knn" in m for m in retries)
    skipped = result.of_type(ev.MODEL_SKIPPED)
    assert [s.data["pipeline"] for s in skipped] == ["none__none__knn__grid"]
    assert "memory" in skipped[0].data["reason"] and "budget" in skipped[0].data["reason"]
    rows = read_report(project / "report.csv")
    assert sorted(r["status"] for r in rows) == ["ok"] * 4 + ["skipped"] * 4
    assert all(r["reason"].startswith("memory") for r in rows if r["status"] == "skipped")
    assert result.finished["models_skipped"] == 4 and result.finished["models_completed"] == 4
    kept = set(report_keys(project))

    resumed = run_engine(project, resume=True)  # the hog is gone: the skipped models train now
    assert resumed.exit_code == 0, resumed.finished
    assert {e.data["key"] for e in resumed.of_type(ev.MODEL_FINISHED)} == {s for s in skipped[0].data["keys"]}
    assert kept <= set(report_keys(project))
    assert_run_consistent(project, 8)


def test_only_the_runaway_worker_is_killed_not_its_neighbour(tmp_path):
    project = tiny_project(tmp_path, algorithms=["rf", "knn"])  # rf searches for seconds beside the hog
    write_config(project, {"memory": {"memory_budget": "1GB"}, "run": {"workers": 2}})
    result = run_engine(project, env=HOG)
    assert result.exit_code == 0, result.finished
    rows = read_report(project / "report.csv")
    assert [r["status"] for r in rows if r["algorithm"] == "rf"] == ["ok"] * 4
    assert not [e for e in result.of_type(ev.LOG) if "rf__grid" in e.data["message"]]
