"""Private temporary workspaces for extracted models.

The base folder (`$TMPDIR/milo-workspaces-<uid>`) sits in a folder everybody
can write, so someone else may have planted a link or a folder there. Nothing
here ever follows a link: the base is opened with O_NOFOLLOW and checked (a
real folder, ours, 0700) before anything is created in it or removed from it,
and every later step works relative to that open folder (dir_fd), so the base
cannot be swapped for a link between the check and the use.

A workspace is a 0700 folder named `ws-<pid>-<start>-<random>`: the name says
which process made it (pid and start time, so a recycled pid is not mistaken
for the owner) and is created in one step, so there is no moment when a
workspace exists unmarked. The sweep removes only folders that carry such a
name, are real folders (not links), are ours, are 0700 and whose owner is dead.

A workspace is removed when its `with` block ends, also on error, and also
when SIGTERM or SIGHUP would otherwise kill the process mid-extraction (see
`install_signal_cleanup`). Only SIGKILL leaves one behind; the next sweep
removes it.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import shutil
import signal
import stat
import tempfile
import threading
from pathlib import Path

import psutil

from milo_tui.errors import IntegrityError, MiloError

PREFIX = "ws-"
_NAME = re.compile(r"^ws-(\d+)-(\d+)-[0-9a-f]{16}$")
CLEANUP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

_live: set[tuple[int, str]] = set()  # (base dir fd, workspace name) of workspaces in use in this process
_live_lock = threading.RLock()  # re-entrant: the signal handler may run while this thread holds it


def default_base_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"milo-workspaces-{os.getuid()}"


def start_stamp(pid: int) -> int:
    """What names of temp folders and files record about their owner: its start time in ms."""
    return max(_start_stamp(pid) or 0, 0)


def _start_stamp(pid: int) -> int | None:
    """The process's start time in milliseconds, None if it is gone, -1 if it is not ours to see."""
    try:
        return int(psutil.Process(pid).create_time() * 1000)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return -1


def _refuse(base: Path, why: str) -> IntegrityError:
    return IntegrityError(
        f"{base} is not a folder owned by you ({why}; it may have been planted by someone else), so no "
        "model is extracted there and nothing in it is touched. Remove it, or set TMPDIR to a private "
        "folder, and try again."
    )


def open_private_dir(base: Path, *, create: bool = True) -> int:
    """An O_NOFOLLOW descriptor of `base`, created 0700 if missing, after checking that it is
    a real folder owned by us and closed to others. The caller closes it."""
    base = Path(base)
    if create:
        try:
            base.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(base, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise MiloError(
                f"No private folder for extracted models can be made at {base} ({exc.strerror or exc}), so the "
                "model was not extracted. Set TMPDIR to a folder you can write (e.g. TMPDIR=~/tmp) and try again."
            ) from None
    try:
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        # ELOOP (a link) or ENOTDIR (a file): lstat says which, for the message.
        try:
            kind = "a link" if stat.S_ISLNK(os.lstat(base).st_mode) else "not a folder"
        except FileNotFoundError:
            raise
        raise _refuse(base, f"it is {kind}") from None
    info = os.fstat(fd)
    if info.st_uid != os.getuid():
        os.close(fd)
        raise _refuse(base, "it belongs to another user")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.fchmod(fd, 0o700)  # on the descriptor: no path, no link to follow
    return fd


def ensure_private_dir(base: Path) -> Path:
    """Create `base` 0700, or check that an existing one is a real folder of ours (kept for callers
    that only need the check)."""
    os.close(open_private_dir(base))
    return Path(base)


class Workspace:
    """`with Workspace() as ws: ws.file("x.joblib")` — the folder is gone afterwards."""

    def __init__(self, base_dir: Path | None = None) -> None:
        self.base_dir = Path(base_dir) if base_dir is not None else default_base_dir()
        self.path: Path | None = None
        self._base_fd: int | None = None
        self._name: str | None = None

    def __enter__(self) -> "Workspace":
        install_signal_cleanup()
        self._base_fd = open_private_dir(self.base_dir)
        self._name = f"{PREFIX}{os.getpid()}-{start_stamp(os.getpid())}-{secrets.token_hex(8)}"
        with _live_lock:  # registered first: a signal right after mkdir still finds it
            _live.add((self._base_fd, self._name))
        self.path = self.base_dir / self._name
        try:
            os.mkdir(self._name, 0o700, dir_fd=self._base_fd)
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def file(self, name: str) -> Path:
        if self.path is None:
            raise RuntimeError("workspace not entered")
        if "/" in name or name in ("", ".", "..") or name.startswith("."):
            raise ValueError(f"unsafe workspace file name {name!r}")
        return self.path / name

    def remove(self) -> None:
        if self._base_fd is None:
            return
        entry = (self._base_fd, self._name)
        _remove_quietly(self._base_fd, self._name)
        with _live_lock:
            _live.discard(entry)
        os.close(self._base_fd)
        self._base_fd = self._name = self.path = None


def _remove_quietly(base_fd: int, name: str) -> None:
    """Remove a folder or file `name` inside the open folder `base_fd`, never following a link
    (shutil.rmtree with dir_fd is safe against link swaps: rmtree.avoids_symlink_attacks)."""
    try:
        if stat.S_ISDIR(os.stat(name, dir_fd=base_fd, follow_symlinks=False).st_mode):
            shutil.rmtree(name, dir_fd=base_fd, ignore_errors=True)
        else:
            os.unlink(name, dir_fd=base_fd)
    except OSError:
        pass


def remove_on_signal(dir_fd: int, name: str) -> tuple[int, str]:
    """Have `name` in the open folder `dir_fd` removed if SIGTERM/SIGHUP kills the process before
    `forget_on_signal` is called (used for temp files of exports). Returns the handle to forget."""
    install_signal_cleanup()
    entry = (dir_fd, name)
    with _live_lock:
        _live.add(entry)
    return entry


def forget_on_signal(entry: tuple[int, str]) -> None:
    with _live_lock:
        _live.discard(entry)


def owner_is_dead(pid: int, started_ms: int) -> bool:
    """True if process `pid` started at `started_ms` (ms since the epoch) is gone."""
    actual = _start_stamp(pid)
    if actual is None:
        return True
    return actual != -1 and started_ms != 0 and abs(actual - started_ms) > 1000


def _remove_live_workspaces() -> None:
    with _live_lock:
        live = list(_live)
        _live.clear()
    for base_fd, name in live:
        _remove_quietly(base_fd, name)


# ---- signals: a SIGTERM or SIGHUP mid-extraction must not leave a workspace behind ----

_installed = False


def _cleanup_then_die(signum, frame) -> None:
    _remove_live_workspaces()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)  # die as the signal would have killed us: same exit status


def install_signal_cleanup() -> None:
    """Remove live workspaces before SIGTERM/SIGHUP kill the process.

    Only signals left at their default action (death) are taken over: a program
    with its own handler (the CLI's, Textual's) unwinds normally and the `with`
    block removes the workspace. Signal handlers can only be set from the main
    thread; from another thread this does nothing (the front end owning that
    thread installs its own handling). Extractions in other threads are still
    covered when the main thread's handler runs, because every live workspace of
    the process is removed."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    for signum in CLEANUP_SIGNALS:
        if signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, _cleanup_then_die)
    atexit.register(_remove_live_workspaces)
    _installed = True


# ---- sweeping workspaces whose owner died (SIGKILL, power loss) ----


def _is_stale_workspace(base_fd: int, name: str) -> bool:
    match = _NAME.match(name)
    if match is None:
        return False  # not a name we give: not ours to remove
    try:
        info = os.stat(name, dir_fd=base_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) != 0o700:
        return False
    return owner_is_dead(int(match.group(1)), int(match.group(2)))


def _count_files(base_fd: int, name: str) -> int:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=base_fd)
    except OSError:
        return 0
    try:
        return sum(1 for entry in os.scandir(fd) if entry.is_file(follow_symlinks=False))
    finally:
        os.close(fd)


def sweep_stale_workspaces(base_dir: Path | None = None) -> int:
    """Remove workspaces whose owner process is gone; returns how many files were removed.

    A base that is missing, a link, not ours or not a folder is left alone
    entirely (extracting into it is refused with a clear message instead)."""
    base = Path(base_dir) if base_dir is not None else default_base_dir()
    try:
        base_fd = open_private_dir(base, create=False)
    except (FileNotFoundError, IntegrityError):
        return 0
    removed = 0
    try:
        for name in os.listdir(base_fd):
            if _is_stale_workspace(base_fd, name):
                removed += _count_files(base_fd, name)
                _remove_quietly(base_fd, name)
    finally:
        os.close(base_fd)
    return removed
