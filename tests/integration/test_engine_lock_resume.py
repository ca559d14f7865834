"""Issue 10's two engine holes: two engines on one project, and --resume trusting report.csv.

What must survive: the first engine's run (its metadata, journal, report and archives) when a
second engine starts beside it; and, after an archive is truncated or deleted, a resumed run
that ends with every model of the report in an archive exactly once and hash-verified.
"""

from __future__ import annotations

import json
import time

from drill_checks import assert_run_consistent, report_keys
from engine_helpers import run_engine, small_binary_project, start_engine_until_training

from milo_tui import events as ev
from milo_tui.launcher import start_engine
from milo_tui.project import ProjectPaths
from milo_tui.projectlock import engine_holding



def _collect(engine) -> tuple[list, int]:
    events = []
    for batch in ev.read_pipe(engine.event_fd):
        events.extend(batch.events)
    code = engine.popen.wait(timeout=120)
    engine.close()
    return events, code


def test_a_second_engine_half_a_second_later_is_refused_and_touches_nothing(tmp_path):
    project = small_binary_project(tmp_path)
    first = start_engine(project)
    time.sleep(0.5)
    second = start_engine(project)
    second_events, second_code = _collect(second)
    first_events, first_code = _collect(first)

    # On a loaded machine the second may reach the lock first: exactly one trains, the other
    # is refused naming the winner, and the winner's run is whole.
    runs = {first_code: (first, first_events), second_code: (second, second_events)}
    assert sorted(runs) == [0, 2], (first_code, second_code)
    winner, _ = runs[0]
    _, loser_events = runs[2]
    refused = [e for e in loser_events if e.type == ev.RUN_FINISHED]
    assert refused and refused[0].data["status"] == "bad_input"
    assert f"pid {winner.pid}" in refused[0].data["message"]
    assert not [e for e in loser_events if e.type == ev.RUN_STARTED]

    journal = ev.read_journal(project / "events.jsonl")
    assert not journal.errors
    ends = [e for e in journal.events if e.type == ev.RUN_FINISHED]
    assert [e.data["status"] for e in ends] == ["completed"]  # no `run_finished failed` from the loser
    assert len({e.data.get("run_id") for e in journal.events if e.type == ev.RUN_STARTED}) == 1
    assert json.loads((project / "metadata.json").read_text())["status"] == "completed"
    keys = report_keys(project)
    assert_run_consistent(project, len(keys))  # no duplicate keys, every model extracts hash-verified
    assert engine_holding(ProjectPaths.of(project)) is None  # released with the engine


def test_force_is_refused_while_an_engine_holds_the_project(tmp_path):
    project = small_binary_project(tmp_path)
    first = start_engine_until_training(project)
    try:
        forced = run_engine(project, force=True)
        assert forced.exit_code == 2
        assert "already training" in forced.finished["message"]
    finally:
        events, code = _collect(first)
    assert code == 0
    assert_run_consistent(project, len(report_keys(project)))


def _finished_project(tmp_path):
    project = small_binary_project(tmp_path)
    done = run_engine(project)
    assert done.exit_code == 0
    return project, report_keys(project)


def test_resume_after_the_archive_is_truncated_retrains_what_it_lost(tmp_path):
    project, keys = _finished_project(tmp_path)
    archive = project / "models" / "main_models.tar.gz"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])

    resumed = run_engine(project, resume=True)
    assert resumed.exit_code == 0, resumed.finished
    alerts = [e.data for e in resumed.of_type(ev.ALERT) if "repaired" in e.data["message"]]
    assert alerts and "trained again" in alerts[0]["detail"]
    assert sorted(report_keys(project)) == sorted(keys)
    assert_run_consistent(project, len(keys), journal=False)


def test_resume_after_the_archive_is_deleted_retrains_everything_once(tmp_path):
    project, keys = _finished_project(tmp_path)
    (project / "models" / "main_models.tar.gz").unlink()

    resumed = run_engine(project, resume=True)
    assert resumed.exit_code == 0, resumed.finished
    assert len(resumed.of_type(ev.MODEL_FINISHED)) == len(keys)
    assert sorted(report_keys(project)) == sorted(keys)
    assert_run_consistent(project, len(keys), journal=False)


def test_resume_without_report_csv_is_refused_and_changes_nothing(tmp_path):
    project, keys = _finished_project(tmp_path)
    (project / "report.csv").unlink()
    archive = project / "models" / "main_models.tar.gz"
    before = archive.read_bytes()

    resumed = run_engine(project, resume=True)
    assert resumed.exit_code == 2
    assert "report.csv" in resumed.finished["message"] and "--force" in resumed.finished["message"]
    assert archive.read_bytes() == before
    assert not (project / "report.csv").exists()
