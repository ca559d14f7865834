"""The local executor's training children: joblib really runs n_jobs > 1 in them, and their
helpers never outlive them.

What must survive: a search told n_jobs=2 runs its folds in two processes (a daemonic child
would silently run them one at a time), the child's exit is not held up by joblib's idle
workers, and a child that dies mid-search (the OOM killer, a kill) takes its joblib helpers
and their memory-mapped temp files (RAM in /dev/shm) with it.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from milo_tui.engine.executor import LocalExecutor
from milo_tui.memory.cleanup import default_temp_roots, owning_pid

from engine_helpers import wait_for
from joblib_probe import joblib_pids, joblib_then_die


@pytest.fixture(scope="module")
def executor():
    local = LocalExecutor()
    local.warm_up(threads_per_worker=1)
    yield local
    local.shutdown()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _temp_entries_of(pid: int) -> list[Path]:
    return [e for root in default_temp_roots() for e in root.iterdir() if owning_pid(e.name) == pid]


def test_a_child_runs_joblib_jobs_in_as_many_processes_as_it_was_given(executor):
    seen = executor.call(joblib_pids, 2)
    assert not [w for w in seen["warnings"] if "n_jobs=1" in w], seen["warnings"]
    assert len(seen["job_pids"]) == 2 and seen["child"] not in seen["job_pids"], seen
    # Its helpers ended with it (loky would keep them idle for 300 s), and so did their temp files.
    assert wait_for(lambda: not any(_alive(p) for p in seen["job_pids"]), timeout=5), seen
    assert wait_for(lambda: not _temp_entries_of(seen["child"]), timeout=5), _temp_entries_of(seen["child"])


def test_a_child_that_dies_mid_search_takes_its_joblib_helpers_and_temp_files_with_it(executor, tmp_path):
    with pytest.raises(RuntimeError, match="without an answer"):
        executor.call(joblib_then_die, str(tmp_path))
    child = int((tmp_path / "child").read_text())
    helpers = [int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()]
    assert len(helpers) == 2, "the dying child had not started two joblib helpers"
    assert wait_for(lambda: not any(_alive(p) for p in helpers), timeout=5), "a joblib helper outlived its child"
    assert not _temp_entries_of(child), _temp_entries_of(child)
    assert os.getpgid(os.getpid()) != child
