"""The milo command line, run as a user would (subprocesses of the installed console script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import pytest

from engine_helpers import small_binary_project, start_engine_until_training

MILO = [sys.executable, "-m", "milo_tui"]


def milo(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*MILO, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    project = small_binary_project(tmp_path_factory.mktemp("cli"), algorithms=["lr"], selectors=["none"])
    result = milo("run", project, "--headless")
    assert result.returncode == 0, result.stderr
    return project, result.stdout


def test_headless_run_prints_progress_eta_best_and_archives(finished):
    _, out = finished
    lines = out.splitlines()
    assert "8 models (8 main, 0 OvR)" in lines[0]
    progress = [line for line in lines if " model " in line and "/8 " in line]
    assert len(progress) == 8 and all("ETA" in line and "best" in line for line in progress)
    assert any("archived batch" in line for line in lines)
    assert "run completed: 8 models, 0 failed, 0 skipped" in out and "best model:" in out
    # The run summary closes the output: best overall and per algorithm, wall time, peak memory.
    assert "Run completed: 8 of 8 models finished" in out and "peak memory" in out
    assert "Best model (avg_sn_sp, then sensitivity, then f1):" in out and "Best per algorithm:" in out


def test_models_lists_best_first_and_sorts(finished):
    project, _ = finished
    listed = json.loads(milo("models", project, "--json").stdout)
    assert len(listed) == 8
    keys = [(r["avg_sn_sp"], r["sensitivity"], r["f1"]) for r in listed]
    assert keys == sorted(keys, reverse=True)
    by_auc = json.loads(milo("models", project, "--json", "--sort", "roc_auc", "--ascending").stdout)
    assert [r["roc_auc"] for r in by_auc] == sorted(r["roc_auc"] for r in by_auc)
    table = milo("models", project, "--limit", "3")
    assert table.returncode == 0 and len(table.stdout.splitlines()) == 4
    bad = milo("models", project, "--sort", "nonsense")
    assert bad.returncode == 2 and "no column 'nonsense'" in bad.stderr


def test_extract_a_model_and_a_bundle(finished, tmp_path):
    project, _ = finished
    best = json.loads(milo("models", project, "--json", "--limit", "1").stdout)[0]
    out = milo("extract", project, best["key"], "-o", tmp_path / "best.joblib")
    assert out.returncode == 0 and "hash verified" in out.stdout
    model = joblib.load(tmp_path / "best.joblib")
    assert hasattr(model, "predict") and model.steps[-1][0] == "clf"
    bundle = milo("extract", project, best["key"], "-o", tmp_path / "bundle", "--bundle")
    assert bundle.returncode == 0, bundle.stderr
    folder = Path(bundle.stdout.split(" to ")[1].split(" (")[0])
    assert {p.name for p in folder.iterdir()} >= {"model.joblib", "metrics.json", "params.json"}
    assert json.loads((folder / "metrics.json").read_text())["key"] == best["key"]
    missing = milo("extract", project, "no__such__model", "-o", tmp_path)
    assert missing.returncode == 2 and "no__such__model" in missing.stderr


def test_stats_and_estimate(finished):
    project, _ = finished
    stats = json.loads(milo("stats", project, "--json").stdout)
    assert stats["models_saved"] == 8 and stats["archives"] >= 1 and stats["files_pending"] == 0
    text = milo("stats", project).stdout
    assert "Storage Statistics:" in text and "Compression Ratio" in text
    estimate = milo("estimate", project)
    assert estimate.returncode == 0
    assert "Models: 8" in estimate.stdout and "Fits this limit: yes" in estimate.stdout


def test_watch_headless_replays_a_finished_run(finished):
    project, _ = finished
    replay = milo("watch", project, "--headless", "--no-follow")
    assert replay.returncode == 0 and "run completed: 8 models" in replay.stdout


def test_init_creates_a_project_that_loads(tmp_path):
    from engine_helpers import SAMPLES

    result = milo("init", tmp_path / "new", "--train", SAMPLES / "breast_cancer" / "train.csv",
                  "--test", SAMPLES / "breast_cancer" / "test.csv", "--target", "target")
    assert result.returncode == 0, result.stderr
    from milo_tui import config

    loaded = config.load(tmp_path / "new")
    assert loaded.train_path == (SAMPLES / "breast_cancer" / "train.csv").resolve()
    again = milo("init", tmp_path / "new", "--train", "x.csv", "--test", "y.csv", "--target", "t")
    assert again.returncode == 2 and "already exists" in again.stderr


def test_a_second_engine_on_a_live_project_is_refused(tmp_path):
    import signal

    project = small_binary_project(tmp_path)
    engine = start_engine_until_training(project)
    try:
        second = milo("run", project, "--headless", "--resume")
        assert second.returncode == 2 and f"pid {engine.pid}" in second.stderr + second.stdout
    finally:
        os.killpg(engine.pid, signal.SIGKILL)
        engine.popen.wait()
        engine.close()


def test_ctrl_c_stops_the_run_cleanly_and_resume_finishes(tmp_path):
    import signal
    import time

    project = small_binary_project(tmp_path)
    # knn workers hold on for 30 s, so the run is surely still training when Ctrl-C comes,
    # however fast or loaded the machine (lr pipelines come first and fill report.csv).
    slow_knn = {**os.environ, "MILO_TEST_BALLOON": "knn:10", "MILO_TEST_BALLOON_SECONDS": "30"}
    # A shell gives its foreground job the default SIGINT disposition; a test runner's worker may
    # ignore SIGINT, and Python started with it ignored would never raise KeyboardInterrupt.
    cli = subprocess.Popen([*MILO, "run", str(project), "--headless"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=slow_knn,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (project / "report.csv").exists() or len((project / "report.csv").read_text().splitlines()) < 5:
        assert time.monotonic() < deadline, "no model finished in time"
        time.sleep(0.1)
    cli.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
    out, err = cli.communicate(timeout=120)
    assert cli.returncode == 4, out + err
    assert "stopping the run cleanly" in err and "run interrupted" in out
    meta = json.loads((project / "metadata.json").read_text())
    assert meta["status"] == "interrupted"
    assert not list((project / "models" / "main_models").glob("*.joblib"))  # finished models archived
    resumed = milo("run", project, "--headless", "--resume")
    assert resumed.returncode == 0 and "run completed" in resumed.stdout
