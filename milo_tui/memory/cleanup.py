"""Give memory back: collect garbage, trim the C heap, drop stale joblib/loky files, clear caches.

Temp folders are the delicate part. joblib memory-maps large arrays into
`joblib_memmapping_folder_<pid>_...` (under JOBLIB_TEMP_FOLDER, /dev/shm or
/tmp) and loky leaves `sem.loky-<pid>-...` semaphores in /dev/shm. In /dev/shm
they are RAM. A folder is only removed when it belongs to this user and its
owning process is dead (a killed worker's leftovers) or is one of the pids the
caller says are its own and idle; a live folder of another run or another user
is never touched, since deleting it would break that run's search.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import psutil

NORMAL, WARNING, CRITICAL = "normal", "warning", "critical"
LEVELS = (NORMAL, WARNING, CRITICAL)

TEMP_NAME = re.compile(r"^(?:joblib_memmapping_folder_(?P<joblib>\d+)_|sem\.loky-(?P<loky>\d+)-)")


@dataclass
class CleanupReport:
    level: str
    freed_bytes: int  # drop in this process's RSS plus bytes of removed temp files
    temp_files_removed: int
    actions: list[str] = field(default_factory=list)
    temp_bytes_removed: int = 0
    errors: list[str] = field(default_factory=list)
    host: str = ""  # set when the cleanup ran on a cluster node, not in the engine's process

    def as_event(self) -> dict:
        """The data of a CLEANUP event."""
        data = {"level": self.level, "freed_bytes": self.freed_bytes, "temp_files_removed": self.temp_files_removed,
                "temp_bytes_removed": self.temp_bytes_removed, "actions": list(self.actions),
                "errors": list(self.errors)}
        return {**data, "host": self.host} if self.host else data


def owning_pid(name: str) -> int | None:
    """The pid in a joblib/loky temp entry's name, or None if it is not one."""
    match = TEMP_NAME.match(name)
    if not match:
        return None
    return int(match.group("joblib") or match.group("loky"))


def _pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def _size_and_count(path: Path) -> tuple[int, int]:
    if path.is_symlink() or not path.is_dir():
        try:
            return path.lstat().st_size, 1
        except OSError:
            return 0, 0
    total = count = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
                count += 1
            except OSError:
                pass
    return total, max(count, 1)


def removable_temp_entries(temp_roots: Iterable[Path], own_pids: Iterable[int]) -> list[Path]:
    """joblib/loky entries under temp_roots that are safe to delete (see module doc)."""
    own = set(own_pids)
    uid = os.getuid() if hasattr(os, "getuid") else None
    found: list[Path] = []
    for root in temp_roots:
        try:
            entries = list(Path(root).iterdir())
        except OSError:
            continue
        for entry in entries:
            pid = owning_pid(entry.name)
            if pid is None:
                continue
            try:
                if uid is not None and entry.lstat().st_uid != uid:
                    continue  # another user's: not ours to judge
            except OSError:
                continue
            if pid in own or not _pid_alive(pid):
                found.append(entry)
    return found


def remove_temp_entries(entries: list[Path]) -> tuple[int, int, list[str]]:
    """(bytes, files, errors) removed."""
    removed_bytes = removed_files = 0
    errors: list[str] = []
    for entry in entries:
        size, count = _size_and_count(entry)
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except FileNotFoundError:
            continue  # its owner cleaned up first
        except OSError as exc:
            errors.append(f"could not remove {entry}: {exc.strerror or exc}")
            continue
        removed_bytes += size
        removed_files += count
    return removed_bytes, removed_files, errors


_libc = None


def _glibc():
    global _libc
    if _libc is None:
        if not sys.platform.startswith("linux"):
            _libc = False
        else:
            try:
                lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _libc = lib if hasattr(lib, "malloc_trim") else False
            except OSError:
                _libc = False
    return _libc or None


def malloc_trim() -> bool:
    """Return free heap pages to the OS (glibc keeps them otherwise). False if unavailable."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def _rss() -> int:
    try:
        return int(psutil.Process().memory_info().rss)
    except psutil.Error:
        return 0


def cleanup(level: str, *, temp_roots: Iterable[Path] = (), caches: Iterable[Callable[[], object]] = (),
            own_pids: Iterable[int] | None = None) -> CleanupReport:
    """One cleanup pass in this process.

    normal: gc and malloc_trim (cheap; run after every model).
    warning / critical: also stale joblib/loky temp entries under temp_roots
    and the cache-clearing callbacks. `own_pids` are pids whose temp entries
    may go even though they are alive (default: this process, which runs no
    joblib search itself in the engine).
    """
    if level not in LEVELS:
        raise ValueError(f"cleanup level must be one of {LEVELS}, not {level!r}")
    before = _rss()
    report = CleanupReport(level=level, freed_bytes=0, temp_files_removed=0)
    if level != NORMAL:
        for clear in caches:
            name = getattr(clear, "__qualname__", repr(clear))
            try:
                clear()
                report.actions.append(f"cleared {name}")
            except Exception as exc:  # a broken cache must not stop the cleanup
                report.errors.append(f"{name} failed: {exc}")
    collected = gc.collect()
    report.actions.append(f"gc collected {collected} objects")
    if malloc_trim():
        report.actions.append("malloc_trim")
    if level != NORMAL:
        pids = [os.getpid()] if own_pids is None else list(own_pids)
        entries = removable_temp_entries(temp_roots, pids)
        removed_bytes, removed_files, errors = remove_temp_entries(entries)
        report.temp_bytes_removed, report.temp_files_removed = removed_bytes, removed_files
        report.errors.extend(errors)
        if entries:
            report.actions.append(f"removed {removed_files} joblib/loky temp files")
    report.freed_bytes = max(0, before - _rss()) + report.temp_bytes_removed
    return report


def default_temp_roots() -> list[Path]:
    """Where joblib and loky put their files unless told otherwise."""
    import tempfile

    roots = []
    if os.environ.get("JOBLIB_TEMP_FOLDER"):
        roots.append(Path(os.environ["JOBLIB_TEMP_FOLDER"]))
    roots += [Path("/dev/shm"), Path(tempfile.gettempdir())]
    return [r for r in dict.fromkeys(roots) if r.is_dir()]
