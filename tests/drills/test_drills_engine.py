"""Fault drills: SIGKILL of the engine (and of a worker) at random points, then --resume.

What must survive each kill: every model report.csv calls finished is archived or on disk and
loads. What the resume must give: the whole run, each model exactly once in report.csv and in
the archive indexes, every archived model hash-verified and loadable, plain tar seeing exactly
those members, no loose model files, a clean journal — and no model finished before a kill
trained again.

The kill points are random; the seed is printed in every failure message and can be fixed
with MILO_DRILL_SEED=<n> to replay a failing drill.
"""

from __future__ import annotations

import os
import random
import signal
import threading

import pytest

from milo_tui import events as ev
from milo_tui.launcher import start_engine

from drill_checks import assert_finished_models_survive, assert_run_consistent, kill_engine_at, report_keys
from engine_helpers import copy_sample, run_engine, small_binary_project

SEED = int(os.environ.get("MILO_DRILL_SEED", random.SystemRandom().randrange(1 << 30)))


def small_multiclass_project(dest):
    """Wine, 2 pipelines: 8 multi-class models, then 3 x 8 one-vs-rest refits = 32 models."""
    search = {"algorithms": ["lr", "knn"], "scalers": ["std"], "selectors": ["none"], "searchers": ["grid"],
              "scorers": ["accuracy", "roc_auc"], "cv_folds": 3, "reoptimize_ovr": True}
    return copy_sample("wine", dest, search=search, storage={"batch_models": 4})


def kill_then_resume(project, total: int, rng: random.Random, kills: int) -> list[str]:
    """SIGKILL the engine `kills` times at random points, resuming in between; then resume to the end."""
    kept: list[str] = []
    for attempt in range(kills):
        after = rng.randint(0, max(0, total - len(kept) - 1))
        delay = rng.uniform(0.0, 0.4)
        where = f"seed {SEED}, kill {attempt + 1}: after {after} more models + {delay:.2f} s"
        killed = kill_engine_at(project, after_models=after, delay=delay, resume=attempt > 0)
        assert killed.exit_code != 0 or killed.finished, where
        now = assert_finished_models_survive(project)
        assert set(kept) <= set(now), f"{where}: models finished before an earlier kill went missing"
        kept = now
    resumed = run_engine(project, resume=True)
    assert resumed.exit_code == 0, (SEED, resumed.finished)
    retrained = {e.data["key"] for e in resumed.of_type(ev.MODEL_FINISHED)}
    assert not retrained & set(kept), f"seed {SEED}: models finished before the kill were trained again"
    return kept


def test_engine_sigkilled_at_a_random_point_of_a_multiclass_run_resumes_completely(tmp_path):
    project = small_multiclass_project(tmp_path)
    kill_then_resume(project, 32, random.Random(SEED), kills=1)
    assert_run_consistent(project, 32)


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(3))
def test_engine_sigkilled_repeatedly_at_random_points_resumes_completely(tmp_path, round_):
    rng = random.Random(SEED + round_)
    project = small_binary_project(tmp_path) if round_ % 2 == 0 else small_multiclass_project(tmp_path)
    kill_then_resume(project, 32, rng, kills=4)
    assert_run_consistent(project, 32)


@pytest.mark.slow
def test_worker_and_engine_both_killed_then_resume_retrains_the_failed_pipeline(tmp_path):
    """A worker SIGKILLed mid-search fails its pipeline; the engine killed later; --resume retries it."""
    project = small_binary_project(tmp_path, algorithms=["lr", "knn"], scalers=["none", "std"], selectors=["none"])
    engine = start_engine(project, extra_env={"MILO_TEST_BALLOON": "knn:10", "MILO_TEST_BALLOON_SECONDS": "5"})
    failed = []
    try:
        for batch in ev.read_pipe(engine.event_fd):
            for event in batch.events:
                if event.type == ev.MODEL_STARTED and event.data["pipeline"] == "none__none__knn__grid":
                    threading.Timer(0.5, _kill_quietly, (event.data["worker_pid"],)).start()
                if event.type == ev.MODEL_FAILED:
                    failed += event.data["keys"]
                    os.killpg(engine.pid, signal.SIGKILL)
    finally:
        engine.popen.wait(timeout=60)
        engine.close()
        _kill_quietly(-engine.pid)
    assert len(failed) == 4, "the killed worker's four models should have failed"
    assert not set(failed) & set(report_keys(project))
    resumed = run_engine(project, resume=True)
    assert resumed.exit_code == 0, resumed.finished
    assert set(failed) <= {e.data["key"] for e in resumed.of_type(ev.MODEL_FINISHED)}
    assert_run_consistent(project, 16)


def _kill_quietly(pid: int) -> None:
    try:
        if pid < 0:
            os.killpg(-pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
