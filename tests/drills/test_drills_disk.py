"""Fault drills: the disk fills up during training and during archiving.

The project lives on a real, small filesystem (a tmpfs mounted for the test; skipped where
mounting is not allowed), and the disk is filled by a ballast file at a chosen moment, so
every write the engine and its workers make meets a genuine ENOSPC.

What must survive: every model report.csv calls finished is archived or on disk and loads;
after space is freed, --resume completes the run with nothing lost or duplicated. The run
itself must end with status disk_full (exit code 5), said on the event pipe.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from milo_tui import events as ev
from milo_tui.errors import EXIT_DISK_FULL
from milo_tui.launcher import start_engine

from drill_checks import (assert_finished_models_survive, assert_journal_clean, assert_run_consistent, fill_disk,
                          kill_engine_at,
                          loose_files, mount_tmpfs, resize_tmpfs, unmount)
from engine_helpers import EngineResult, run_engine, small_binary_project

TOTAL_MODELS = 32  # small_binary_project: 8 pipelines x 2 scorers x top 2


@pytest.fixture
def small_disk(tmp_path):
    yield from _mounted(tmp_path)


def _mounted(folder: Path):
    mount_point = folder / f"disk-{uuid.uuid4().hex[:6]}"
    if os.geteuid() != 0 or not mount_tmpfs(mount_point, "64m"):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield mount_point
    finally:
        unmount(mount_point)


def run_filling_disk_after(project: Path, disk: Path, models: int) -> EngineResult:
    """Run the engine; when the `models`-th model has finished, fill the disk."""
    engine = start_engine(project)
    result = EngineResult(exit_code=-1)
    finished = 0
    try:
        for batch in ev.read_pipe(engine.event_fd):
            result.events.extend(batch.events)
            result.errors.extend(batch.errors)
            for event in batch.events:
                if event.type == ev.MODEL_FINISHED:
                    finished += 1
                    if finished == models:
                        fill_disk(disk)
    finally:
        result.exit_code = engine.popen.wait(timeout=120)
        engine.close()
    return result


@dataclass
class DiskFullScenario:
    disk: Path
    project: Path
    full: EngineResult  # the run that met the full disk
    kept: list[str]  # models report.csv called finished after it
    resumed: EngineResult  # --resume once the ballast was deleted


@pytest.fixture(scope="module")
def disk_full_in_training(tmp_path_factory):
    """Fill the disk after the 6th model, check what survived, grow the filesystem, resume."""
    for disk in _mounted(tmp_path_factory.mktemp("full")):
        project = small_binary_project(disk)
        full = run_filling_disk_after(project, disk, 6)
        kept = assert_finished_models_survive(project)
        resize_tmpfs(disk, "256m")  # the user frees space: here the filesystem grows
        resumed = run_engine(project, resume=True)
        yield DiskFullScenario(disk, project, full, kept, resumed)


def test_disk_full_during_training_loses_no_finished_model_and_resumes(disk_full_in_training):
    s = disk_full_in_training
    assert s.full.exit_code != 0
    assert 6 <= len(s.kept) < TOTAL_MODELS
    assert s.resumed.exit_code == 0, s.resumed.finished
    assert_run_consistent(s.project, TOTAL_MODELS, journal=False)
    retrained = {e.data["key"] for e in s.resumed.of_type(ev.MODEL_FINISHED)}
    assert not retrained & set(s.kept), "a model finished before the disk filled was trained again"


def test_disk_full_during_training_ends_with_status_disk_full(disk_full_in_training):
    result = disk_full_in_training.full
    assert result.finished is not None, "the engine died without saying why (no run_finished event)"
    assert result.finished["status"] == "disk_full"
    assert result.exit_code == EXIT_DISK_FULL
    assert "--resume" in result.finished["message"]


def test_disk_full_leaves_a_journal_that_resume_continues_cleanly(disk_full_in_training):
    assert_journal_clean(disk_full_in_training.project)


@pytest.mark.slow
def test_disk_full_while_archiving_keeps_files_then_resume_archives_them(small_disk):
    # Big batches: nothing is archived until the end, so the last flush is a large write.
    project = small_binary_project(small_disk, algorithms=["knn", "lr"])
    _set_storage(project, batch_models=1000, batch_bytes="1GB")
    killed = kill_engine_at(project, after_models=TOTAL_MODELS - 4, delay=0.0)
    assert killed.exit_code != 0
    waiting = [name for name in loose_files(project) if name.endswith(".joblib")]
    assert len(waiting) >= TOTAL_MODELS - 4, "the kill should leave the finished models unarchived"
    raw = sum((project / "models" / "main_models" / name).stat().st_size for name in waiting)
    # Leave room for the resume's small writes and the last (lr) models, not for the archive.
    fill_disk(small_disk)
    ballast = small_disk / "ballast.bin"
    with open(ballast, "r+b") as handle:
        handle.truncate(ballast.stat().st_size - 512 * 1024)
    assert raw > 1024 * 1024, "the models must be larger than the space left"

    resumed = run_engine(project, resume=True)
    assert resumed.finished is not None, "no run_finished event"
    assert resumed.finished["status"] == "disk_full", resumed.finished
    assert resumed.exit_code == EXIT_DISK_FULL
    assert json.loads((project / "metadata.json").read_text())["status"] == "disk_full"
    finished = assert_finished_models_survive(project)
    assert len(finished) == TOTAL_MODELS

    ballast.unlink()
    again = run_engine(project, resume=True)
    assert again.exit_code == 0, again.finished
    assert_run_consistent(project, TOTAL_MODELS)
    assert not again.of_type(ev.MODEL_FINISHED), "every model was finished; none should be retrained"


def _set_storage(project: Path, **values) -> None:
    from engine_helpers import write_config

    write_config(project, {"storage": values})
