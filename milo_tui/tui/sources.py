"""Where events come from: the engine's pipe (`milo run`) or the journal (`milo watch`).

Each source runs one daemon thread that only reads and decodes; decoded
batches go into an Inbox that the app drains on its refresh timer, so a flood
of events costs one state update and one repaint per tick, not one per event.
Plain Python (no textual): the app passes callbacks for the end of a stream.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from pathlib import Path
from typing import Callable

from milo_tui.events import DecodedLines, follow_journal, read_pipe
from milo_tui.launcher import EngineProcess

ExitCallback = Callable[[int | None, str], None]


class Inbox:
    """Thread-safe hand-over of decoded batches from a reader thread to the UI thread."""

    def __init__(self) -> None:
        self._batches: deque[DecodedLines] = deque()

    def put(self, batch: DecodedLines) -> None:
        self._batches.append(batch)  # deque.append/popleft are atomic

    def drain(self) -> list[DecodedLines]:
        out: list[DecodedLines] = []
        while True:
            try:
                out.append(self._batches.popleft())
            except IndexError:
                return out


class PipeSource:
    """Reads the engine's event pipe until EOF, then reports the engine's exit code.

    Uses select() with a timeout so `detach()` can stop the thread before the
    read end is closed: closing an fd another thread is blocked on is unsafe
    (the number may be reused by the next open()).
    """

    def __init__(self, engine: EngineProcess, inbox: Inbox, on_exit: ExitCallback,
                 poll_seconds: float = 0.2) -> None:
        self.engine = engine
        self.inbox = inbox
        self.on_exit = on_exit
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="milo-pipe-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            for batch in read_pipe(self.engine.event_fd, stop=self._stop, poll=self.poll_seconds):
                self.inbox.put(batch)
        except (OSError, ValueError):  # the fd went away under us: detach() is closing it
            return
        if not self._stop.is_set():  # the pipe reached its end: the engine exited
            self._report_exit()

    def _report_exit(self) -> None:
        try:
            returncode = self.engine.popen.wait(timeout=30)
        except Exception:  # noqa: BLE001 - a stuck engine still gets reported
            returncode = self.engine.popen.poll()
        self.on_exit(returncode, self.engine.stderr_tail())

    def detach(self, timeout: float = 2.0) -> None:
        """Stop reading and close our end; the engine goes on with the journal alone."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        self.engine.close()


class JournalSource:
    """Replays PROJECT/events.jsonl from the start, then follows it as it grows."""

    def __init__(self, journal: Path, inbox: Inbox, poll_seconds: float = 0.2) -> None:
        self.journal = journal
        self.inbox = inbox
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="milo-journal-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        for batch in follow_journal(self.journal, self._stop, poll=self.poll_seconds):
            self.inbox.put(batch)

    def detach(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)


def pid_alive(pid: int | None) -> bool:
    """Is there a process with this pid (that we may signal)?"""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
