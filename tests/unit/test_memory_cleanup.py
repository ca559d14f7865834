"""Cleanup passes: what is removed, and what must never be."""

import os
import subprocess
import sys

import importlib

import pytest

from milo_tui.memory.cleanup import cleanup, owning_pid, removable_temp_entries


cleanup_module = importlib.import_module("milo_tui.memory.cleanup")


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def live_child():
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    yield proc.pid
    proc.stdin.close()
    proc.wait(timeout=10)


def make_joblib_folder(root, pid, size=4096):
    folder = root / f"joblib_memmapping_folder_{pid}_0a1b2c_3d4e5f"
    folder.mkdir()
    (folder / "array.pkl").write_bytes(b"x" * size)
    (folder / "array2.pkl").write_bytes(b"y" * size)
    return folder


def test_owning_pid_parses_joblib_and_loky_names():
    assert owning_pid("joblib_memmapping_folder_1234_ab12_cd34") == 1234
    assert owning_pid("sem.loky-987-x3k_ab") == 987
    assert owning_pid("tmpabcdef") is None
    assert owning_pid("joblib_memmapping_folder_x_1") is None


def test_warning_cleanup_removes_dead_and_own_folders_only(tmp_path, live_child):
    dead = make_joblib_folder(tmp_path, dead_pid(), size=10_000)
    ours = make_joblib_folder(tmp_path, os.getpid())
    other_live = make_joblib_folder(tmp_path, live_child)
    dead_sem = tmp_path / f"sem.loky-{dead_pid()}-abc"
    dead_sem.write_bytes(b"s" * 32)
    unrelated = tmp_path / "notes.txt"
    unrelated.write_text("keep me")
    report = cleanup("warning", temp_roots=[tmp_path])
    assert not dead.exists() and not ours.exists() and not dead_sem.exists()
    assert other_live.exists() and unrelated.exists()  # another live run's folder is never touched
    assert report.temp_files_removed == 5
    assert report.temp_bytes_removed == 20_000 + 2 * 4096 + 32
    assert report.freed_bytes >= report.temp_bytes_removed


def test_normal_cleanup_leaves_temp_folders_alone(tmp_path):
    stale = make_joblib_folder(tmp_path, dead_pid())
    report = cleanup("normal", temp_roots=[tmp_path])
    assert stale.exists() and report.temp_files_removed == 0
    assert any(action.startswith("gc collected") for action in report.actions)


def test_other_users_entries_are_skipped(tmp_path, monkeypatch):
    stale = make_joblib_folder(tmp_path, dead_pid())
    someone_else = os.stat(tmp_path).st_uid + 1
    monkeypatch.setattr(cleanup_module.os, "getuid", lambda: someone_else)
    assert removable_temp_entries([tmp_path], own_pids=[]) == []
    assert stale.exists()


def test_caches_are_cleared_and_a_failing_one_is_reported(tmp_path):
    cache = {"model": object()}
    calls = []

    def clear_models():
        calls.append(1)
        cache.clear()

    def broken():
        raise RuntimeError("disk gone")

    report = cleanup("critical", temp_roots=[tmp_path], caches=[clear_models, broken])
    assert calls == [1] and cache == {}
    assert any("clear_models" in action for action in report.actions)
    assert report.errors and "disk gone" in report.errors[0]
    assert report.as_event()["level"] == "critical"


def test_normal_cleanup_skips_caches():
    calls = []
    cleanup("normal", caches=[lambda: calls.append(1)])
    assert calls == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_malloc_trim_runs_on_glibc():
    assert "malloc_trim" in cleanup("normal").actions


def test_bad_level_is_refused():
    with pytest.raises(ValueError):
        cleanup("panic")


def test_as_event_is_plain_json():
    import json

    report = cleanup("normal")
    event = report.as_event()
    assert set(event) >= {"level", "freed_bytes", "temp_files_removed", "actions"}
    json.dumps(event)
