"""What must survive a fault: the checks the fault drills (tests/test_drills_*.py) share."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

from milo_tui import events as ev
from milo_tui.engine.report import model_rows, read_report
from milo_tui.launcher import start_engine
from milo_tui.storage.store import ModelStore

from engine_helpers import EngineResult, kill_process_group

ARCHIVES = ("main_models", "ovr_models")


def report_keys(project: Path) -> list[str]:
    return [r["key"] for r in model_rows(read_report(project / "report.csv"))]


def loose_files(project: Path) -> list[str]:
    """Model files and save leftovers still sitting beside the archives."""
    found = []
    for name in ARCHIVES:
        folder = project / "models" / name
        if folder.is_dir():
            found += [p.name for p in folder.iterdir()]
    return found


def tar_listing(archive: Path) -> list[str]:
    """What plain tar sees: the archive must stay a standard tar.gz."""
    with tarfile.open(archive, "r:gz") as tar:
        return [m.name for m in tar.getmembers()]


def assert_finished_models_survive(project: Path) -> list[str]:
    """After any fault: every model the report calls finished is archived or on disk, and loads."""
    keys = report_keys(project)
    assert len(keys) == len(set(keys)), "a model key appears twice in report.csv"
    store = ModelStore(project)
    archived = {e.key for e in store.list_models()}
    on_disk = {p.stem for name in ARCHIVES for p in (project / "models" / name).glob("*.joblib")}
    missing = [k for k in keys if k not in archived and k not in on_disk]
    assert not missing, f"finished models lost: {missing[:5]}"
    for key in keys:
        if key in archived:
            assert store.open_model(key) is not None
        else:
            import joblib

            folder = "ovr_models" if "_ovr_class_" in key else "main_models"
            assert joblib.load(project / "models" / folder / f"{key}.joblib") is not None
    return keys


def assert_run_consistent(project: Path, expected_models: int, *, journal: bool = True) -> None:
    """A completed run: nothing lost, nothing twice, archives valid and complete, nothing loose.
    With `journal`, also a clean event journal (drills that document a journal bug check it apart)."""
    meta = json.loads((project / "metadata.json").read_text())
    assert meta["status"] == "completed", meta["message"]
    keys = report_keys(project)
    assert len(keys) == expected_models, f"{len(keys)} models in report.csv, expected {expected_models}"
    assert len(set(keys)) == len(keys), "a model key appears twice in report.csv"
    assert not [r for r in read_report(project / "report.csv") if r["status"] != "ok"]
    assert meta["counts"]["completed"] == expected_models
    store = ModelStore(project)
    listed = [e.key for e in store.list_models()]
    assert sorted(listed) == sorted(keys), "the archive indexes do not hold exactly the report's models"
    for key in keys:  # every archived model extracts with its sha256 checked, and loads
        assert store.open_model(key) is not None
        assert (project / "class_results" / f"{key}.json").exists()
    assert not loose_files(project), f"loose files left: {loose_files(project)[:5]}"
    in_tar = []
    for name in ARCHIVES:
        archive = project / "models" / f"{name}.tar.gz"
        if archive.exists():
            in_tar += tar_listing(archive)
    assert sorted(in_tar) == sorted(f"{k}.joblib" for k in keys), "tar sees other members than the index"
    if journal:
        assert_journal_clean(project)


def assert_journal_clean(project: Path) -> None:
    journal = ev.read_journal(project / "events.jsonl")
    assert not journal.errors, journal.errors[:3]
    seqs = [e.seq for e in journal.events]
    assert seqs == sorted(set(seqs)), "journal sequence numbers repeat or go back"


def kill_engine_at(project: Path, *, after_models: int, delay: float, resume: bool = False,
                   env: dict | None = None, timeout: float = 300) -> EngineResult:
    """Run the engine and SIGKILL its whole process group `delay` seconds after the
    `after_models`-th model finished (0: after run_started) — a point anywhere in training,
    saving, archiving or closing the books."""
    engine = start_engine(project, resume=resume, extra_env=env)
    result = EngineResult(exit_code=-1)
    finished = 0
    kill_at = None
    deadline = time.monotonic() + timeout
    try:
        os.set_blocking(engine.event_fd, False)
        splitter = ev.LineSplitter()
        while True:
            if kill_at is not None and time.monotonic() >= kill_at:
                kill_process_group(engine.pid)
                break
            if time.monotonic() > deadline:
                kill_process_group(engine.pid)
                raise TimeoutError("engine did not reach the kill point")
            try:
                data = os.read(engine.event_fd, 1 << 16)
            except BlockingIOError:
                time.sleep(0.005)
                continue
            if not data:
                break  # the engine finished before the kill point
            batch = ev.decode_lines(splitter.feed(data))
            result.events.extend(batch.events)
            for event in batch.events:
                if event.type == ev.MODEL_FINISHED:
                    finished += 1
                if kill_at is None and (event.type == ev.RUN_STARTED and after_models == 0
                                        or event.type == ev.MODEL_FINISHED and finished >= after_models > 0):
                    kill_at = time.monotonic() + delay
    finally:
        result.exit_code = engine.popen.wait(timeout=60)
        engine.close()
        kill_process_group(engine.pid)
    return result



def mount_tmpfs(path: Path, size: str) -> bool:
    """A real, small filesystem (needs root); False if this machine cannot mount one."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True)
    return done.returncode == 0


def resize_tmpfs(path: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True, capture_output=True)


def unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill_disk(folder: Path) -> Path:
    """Write a ballast file until the filesystem says ENOSPC: the disk is now full."""
    ballast = folder / "ballast.bin"
    with open(ballast, "wb", buffering=0) as handle:
        for chunk in (1 << 20, 1 << 16, 1 << 12):
            block = b"\0" * chunk
            while True:
                try:
                    handle.write(block)
                except OSError:
                    break
    return ballast
