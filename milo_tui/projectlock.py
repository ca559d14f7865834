"""One engine per project: an flock on PROJECT/.milo/engine.lock, held for the engine's whole life.

The engine takes the lock before it reads, writes or deletes anything of the
project, so two engines started a moment apart cannot both get past their
checks: the second is refused at once and touches nothing. The kernel releases
the lock when the engine's process ends, however it ends (even SIGKILL), so a
stale lock cannot outlive its engine. The holder writes its pid into the lock
file, for people and messages only: the lock is the flock, not the pid.

Front ends ask `engine_holding(paths)` before they start one; the engine's own
`ProjectLock.acquire()` is the authority.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from milo_tui.errors import BadInputError
from milo_tui.project import ProjectPaths

LOCK_NAME = "engine.lock"
# A front end's probe holds the lock for microseconds: an engine retries this long before refusing.
PATIENCE_SECONDS = 1.0


def lock_path(paths: ProjectPaths) -> Path:
    return paths.state / LOCK_NAME


class ProjectBusyError(BadInputError):
    """Another engine holds the project (exit 2: nothing was changed)."""


def busy_message(paths: ProjectPaths, holder: int | None) -> str:
    who = f"An engine (pid {holder})" if holder else "Another engine"
    return (f"{who} is already training {paths.root}. Nothing was changed. Attach to it with "
            f"`milo watch {paths.root}`, or stop it first (quit its TUI with 'stop', or `kill {holder or 'PID'}`); "
            "--force does not override a running engine.")


class ProjectLock:
    def __init__(self, paths: ProjectPaths) -> None:
        self.paths = paths
        self.path = lock_path(paths)
        self._fd: int | None = None

    def acquire(self, patience: float = PATIENCE_SECONDS) -> None:
        """Take the lock or raise ProjectBusyError. Writes this process's pid into the lock file."""
        self.paths.state.mkdir(parents=True, exist_ok=True)
        fd = _open_lock_file(self.path, os.O_RDWR | os.O_CREAT)
        deadline = time.monotonic() + patience
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_pid(fd)
                    os.close(fd)
                    raise ProjectBusyError(busy_message(self.paths, holder)) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the project up (the process's exit does the same)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # the pid is information about a live holder only
        except OSError:
            pass
        os.close(self._fd)  # closing the only descriptor releases the flock
        self._fd = None


def engine_holding(paths: ProjectPaths) -> int | None:
    """The pid of the engine holding `paths` (0 if it is held but the pid is unknown), or None."""
    try:
        fd = _open_lock_file(lock_path(paths), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def refuse_if_busy(paths: ProjectPaths) -> None:
    """ProjectBusyError if an engine holds `paths` (what `milo run` checks before starting one)."""
    holder = engine_holding(paths)
    if holder is not None:
        raise ProjectBusyError(busy_message(paths, holder))


def _open_lock_file(path: Path, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BadInputError(f"{path} is a symbolic link; milo does not follow links it did not create. "
                                "Delete it and try again.") from None
        raise


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None
