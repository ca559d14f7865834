"""Fault drill: the TUI is killed mid-run and a new one re-attaches.

The TUI's side of the engine is the read end of the event pipe; killing the TUI closes it.
What must hold: the engine keeps training to the end (it is in its own session and drops a
dead pipe), and a re-attached reader — following the journal live, as `milo watch` does, and
`milo watch --headless --no-follow` afterwards — sees the whole run: every event once, in
order, every model, and the final status.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from milo_tui import events as ev
from milo_tui.launcher import start_engine
from milo_tui.runstate import RunState

from drill_checks import assert_run_consistent
from engine_helpers import small_binary_project


def test_engine_outlives_its_tui_and_a_reattached_watcher_sees_the_whole_run(tmp_path):
    project = small_binary_project(tmp_path)
    engine = start_engine(project)
    seen_live = 0
    try:
        for batch in ev.read_pipe(engine.event_fd):
            seen_live += sum(1 for e in batch.events if e.type == ev.MODEL_FINISHED)
            if seen_live >= 3:
                break
        engine.close()  # the TUI dies: the read end of the pipe is gone
        assert engine.popen.poll() is None, "the engine should still be training"

        # A new TUI attaches by following the journal from the start.
        state = RunState()
        stop = threading.Event()
        watchdog = threading.Timer(240, stop.set)
        watchdog.start()
        try:
            for batch in ev.follow_journal(project / "events.jsonl", stop, poll=0.05):
                state.apply_batch(batch.events, batch.errors)
                if state.finished is not None:
                    stop.set()
        finally:
            watchdog.cancel()
        code = engine.popen.wait(timeout=120)
    finally:
        engine.close()
        try:
            os.killpg(engine.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
    assert code == 0
    assert state.finished is not None and state.status == "completed"
    assert state.completed == 32 and state.decode_errors == 0
    assert_run_consistent(project, 32)
    assert seen_live >= 3

    journal = ev.read_journal(project / "events.jsonl").events
    assert [e.seq for e in journal] == list(range(len(journal)))
    replay = subprocess.run([sys.executable, "-m", "milo_tui", "watch", str(project), "--headless", "--no-follow"],
                            capture_output=True, text=True, timeout=120)
    assert replay.returncode == 0, replay.stderr
    assert sum(1 for line in replay.stdout.splitlines() if "] model " in line) == 32
    assert "run completed: 32 models" in replay.stdout
    meta = json.loads((project / "metadata.json").read_text())
    assert meta["status"] == "completed"


def test_a_reader_that_stops_reading_does_not_stall_the_engine(tmp_path):
    """A TUI frozen (not dead) holds the pipe open without reading: the engine must not block on it."""
    project = small_binary_project(tmp_path, algorithms=["lr"])
    engine = start_engine(project)
    started = time.monotonic()
    try:
        code = engine.popen.wait(timeout=240)  # nobody reads the pipe at all
    finally:
        engine.close()
    assert code == 0, "the engine should finish with an unread pipe"
    assert time.monotonic() - started < 240
    assert_run_consistent(project, 16)
