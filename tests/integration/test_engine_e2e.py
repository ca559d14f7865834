"""End to end: the real engine subprocess on the bundled samples."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from milo_tui import events as ev
from milo_tui.engine.report import COLUMNS, model_rows, read_report
from milo_tui.storage.store import ModelStore

from engine_helpers import copy_sample, run_engine, small_binary_project, validate_events


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    project = copy_sample("breast_cancer", tmp_path_factory.mktemp("binary"))
    return project, run_engine(project)


@pytest.fixture(scope="module")
def multiclass_run(tmp_path_factory):
    project = copy_sample("wine", tmp_path_factory.mktemp("multi"))
    return project, run_engine(project)


def _check_models_predict(project: Path, rows: list[dict]) -> None:
    """Every archived model loads (hash-verified) and reproduces its recorded accuracy on test.csv,
    predicting the CSV's own labels from a DataFrame without any warning."""
    import warnings

    test = pd.read_csv(project / "test.csv")
    meta = json.loads((project / "metadata.json").read_text())
    rest = meta["data"]["rest_label"]
    X = test.drop(columns=["target"])
    y = test["target"].to_numpy()
    store = ModelStore(project)
    for row in rows:
        model = store.open_model(row["key"])
        if row["class_type"] == "ovr":
            truth = np.where(y == row["class_label"], y, rest)
        else:
            truth = y
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            predicted = model.predict(X)
        assert np.mean(predicted == truth) == pytest.approx(row["accuracy"], abs=1e-6), row["key"]


def test_binary_sample_completes_with_report_metadata_and_archives(binary_run):
    project, result = binary_run
    assert result.exit_code == 0, result.finished
    assert result.finished["status"] == "completed"
    assert not result.errors
    rows = read_report(project / "report.csv")
    models = model_rows(rows)
    assert len(models) == 64 and len({r["key"] for r in models}) == 64
    assert list(pd.read_csv(project / "report.csv").columns) == COLUMNS
    for row in models:
        assert row["class_type"] == "binary"
        assert 0 <= row["accuracy"] <= 1 and row["acc_95_ci_low"] <= row["accuracy"] <= row["acc_95_ci_high"]
        assert row["tn"] + row["tp"] + row["fn"] + row["fp"] == 171
        assert isinstance(json.loads(row["best_params"]), dict)
        assert row["peak_memory_mb"] > 0 and row["model_bytes"] > 0
        assert (project / "class_results" / f"{row['key']}.json").exists()
    text = (project / "report.csv").read_text()
    assert "array(" not in text and "[" not in text.replace("[", "", 0) or "array(" not in text
    meta = json.loads((project / "metadata.json").read_text())
    assert meta["status"] == "completed"
    assert meta["data"]["class_counts"] and meta["counts"]["completed"] == 64
    assert meta["versions"]["scikit-learn"]
    # Everything archived, nothing left as loose files.
    assert not list((project / "models" / "main_models").glob("*.joblib"))
    assert {e.key for e in ModelStore(project).list_models()} == {r["key"] for r in models}
    _check_models_predict(project, models[:12])


def test_binary_sample_events_follow_the_schema_and_journal_matches_pipe(binary_run):
    project, result = binary_run
    validate_events(result.events)
    journal = ev.read_journal(project / "events.jsonl")
    assert not journal.errors
    assert [e.seq for e in journal.events] == list(range(len(journal.events)))
    assert [e.to_json() for e in journal.events] == [e.to_json() for e in result.events]
    types = Counter(e.type for e in result.events)
    assert types[ev.RUN_STARTED] == 1 and types[ev.RUN_FINISHED] == 1
    assert types[ev.MODEL_FINISHED] == 64 and types[ev.MODEL_STARTED] == 16
    assert types[ev.MEMORY] >= 1 and types[ev.ARCHIVE_BATCH] >= 1 and types[ev.STORAGE] >= 1
    started = result.of_type(ev.RUN_STARTED)[0].data
    assert started["total_models"] == 64 and started["phases"] == {"main": 64, "ovr": 0}
    # The ETA's weights (docs/EVENTS.md, "Work") add up: the last model brings the work to its total.
    last = result.of_type(ev.MODEL_FINISHED)[-1].data
    assert started["work_done"] == 0 and started["work_total"] > 0
    assert last["work_done"] > 0 and last["work_done"] == pytest.approx(last["work_total"])


def test_multiclass_sample_trains_main_then_ovr_class_by_class(multiclass_run):
    project, result = multiclass_run
    assert result.exit_code == 0, result.finished
    validate_events(result.events)
    rows = read_report(project / "report.csv")
    main = [r for r in model_rows(rows) if r["phase"] == "main"]
    ovr = [r for r in model_rows(rows) if r["phase"] == "ovr"]
    per_class = [r for r in rows if r["phase"] == "main" and r["class_type"] == "ovr"]
    assert len(main) == 64 and len(ovr) == 192 and len(per_class) == 64 * 3
    assert all(r["key"].endswith(f"_ovr_class_{r['class_index']}") for r in ovr)
    assert all(r["class_type"] == "multiclass" for r in main)
    # Order per the source document: all main models, the resource check, then OvR class by class.
    phases = [(e.data["phase"], e.data["class_index"]) for e in result.of_type(ev.PHASE_CHANGED)]
    assert phases == [("main", None), ("ovr_check", None), ("ovr", 0), ("ovr", 1), ("ovr", 2), ("archiving", None)]
    finished = [e.data for e in result.of_type(ev.MODEL_FINISHED)]
    assert [d["phase"] for d in finished] == ["main"] * 64 + ["ovr"] * 192
    assert [d["class_index"] for d in finished[64:]] == sorted(d["class_index"] for d in finished[64:])
    store = ModelStore(project)
    archives = Counter(e.archive for e in store.list_models())
    assert archives == {"main_models": 64, "ovr_models": 192}
    doc = json.loads((project / "class_results" / f"{main[0]['key']}.json").read_text())
    assert len(doc["per_class"]) == 3 and len(doc["confusion_matrix"]) == 3
    _check_models_predict(project, main[:4] + ovr[:6])


def test_resume_after_sigkill_loses_and_duplicates_nothing(tmp_path):
    project = small_binary_project(tmp_path)
    killed = run_engine(project, kill_after_models=10)
    assert killed.exit_code != 0
    before = {r["key"] for r in model_rows(read_report(project / "report.csv"))}
    assert len(before) >= 10
    refused = run_engine(project)  # an unfinished project is not overwritten silently
    assert refused.exit_code == 2 and "--resume" in refused.finished["message"]
    resumed = run_engine(project, resume=True)
    assert resumed.exit_code == 0, resumed.finished
    rows = model_rows(read_report(project / "report.csv"))
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) == 32
    assert before <= set(keys)
    retrained = {e.data["key"] for e in resumed.of_type(ev.MODEL_FINISHED)}
    assert not retrained & before
    listed = [e.key for e in ModelStore(project).list_models()]
    assert sorted(listed) == sorted(keys)
    assert resumed.of_type(ev.RUN_STARTED)[0].data["already_done"] == len(before)
    seqs = [e.seq for e in ev.read_journal(project / "events.jsonl").events]
    assert seqs == sorted(set(seqs))


def test_finished_project_needs_force(tmp_path):
    project = small_binary_project(tmp_path, algorithms=["lr"], scalers=["none"], selectors=["none"])
    assert run_engine(project).exit_code == 0
    report_before = (project / "report.csv").read_bytes()
    again = run_engine(project)
    assert again.exit_code == 2 and "--force" in again.finished["message"]
    assert (project / "report.csv").read_bytes() == report_before
    forced = run_engine(project, force=True)
    assert forced.exit_code == 0
    assert len(model_rows(read_report(project / "report.csv"))) == 4


def test_killed_worker_fails_its_model_and_the_run_goes_on(tmp_path):
    project = small_binary_project(tmp_path, algorithms=["lr", "knn"], scalers=["none"], selectors=["none"])
    # The balloon hook holds the knn worker for a while; the test kills it from outside.
    import os
    import signal
    import threading

    from milo_tui.launcher import start_engine

    engine = start_engine(project, extra_env={"MILO_TEST_BALLOON": "knn:10", "MILO_TEST_BALLOON_SECONDS": "30"})
    seen = []
    try:
        for batch in ev.read_pipe(engine.event_fd):
            for event in batch.events:
                seen.append(event)
                if event.type == ev.MODEL_STARTED and event.data["pipeline"].endswith("knn__grid"):
                    threading.Timer(1.0, os.kill, (event.data["worker_pid"], signal.SIGKILL)).start()
    finally:
        code = engine.popen.wait(timeout=60)
        engine.close()
    assert code == 0
    failed = [e.data for e in seen if e.type == ev.MODEL_FAILED]
    assert len(failed) == 1 and "SIGKILL" in failed[0]["reason"]
    rows = read_report(project / "report.csv")
    assert len(model_rows(rows)) == 4
    assert sum(1 for r in rows if r["status"] == "failed") == 4


def test_the_engine_process_never_loads_scikit_learn(tmp_path):
    """Training, planning and data preparation import scikit-learn in children only: the engine
    lives for the whole run, and scikit-learn with scipy would hold ~80 MiB there (measured:
    planning in the engine raised a 64-model run's peak PSS from ~240 to ~320 MiB)."""
    from milo_tui.launcher import start_engine

    project = small_binary_project(tmp_path / "p", algorithms=["lr"], selectors=["none"])
    engine = start_engine(project)
    mapped: set[str] = set()
    try:
        for batch in ev.read_pipe(engine.event_fd):
            if any(e.type == ev.MODEL_FINISHED for e in batch.events):
                try:
                    with open(f"/proc/{engine.pid}/maps") as maps:
                        mapped.update(line.split()[-1] for line in maps if "/" in line)
                except FileNotFoundError:
                    pass
        assert engine.popen.wait(timeout=60) == 0
    finally:
        engine.close()
    assert mapped, "the engine's memory map was never read"
    assert not [path for path in mapped if "/sklearn/" in path or "/scipy/" in path]


def test_the_fold_cache_changes_no_result_with_two_workers(tmp_path):
    """Pipelines sharing fold scores and selector forests through the run's fold cache report what
    they report without it (the cache made unusable: a file where its directory would be), and the
    cache is gone once the run completed."""
    from milo_tui.engine.foldcache import DIRECTORY_NAME

    search = {"algorithms": ["gb"], "scalers": ["none", "std"], "selectors": ["none", "rf-50"],
              "searchers": ["grid"], "scorers": ["accuracy", "roc_auc"], "cv_folds": 3, "grids": "compact"}
    reports = []
    for use_cache in (True, False):
        project = copy_sample("breast_cancer", tmp_path / str(use_cache), search=search, run={"workers": 2})
        if not use_cache:
            (project / ".milo").mkdir(mode=0o700, exist_ok=True)
            (project / ".milo" / DIRECTORY_NAME).write_text("not a directory")
        assert run_engine(project).exit_code == 0
        rows = sorted(model_rows(read_report(project / "report.csv")), key=lambda r: r["key"])
        reports.append([(r["key"], r["best_params"], r.get("roc_auc"), r.get("accuracy")) for r in rows])
        if use_cache:
            assert not (project / ".milo" / DIRECTORY_NAME).exists()
    assert reports[0] == reports[1] and len(reports[0]) == 16
