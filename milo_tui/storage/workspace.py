"""Private temporary workspaces for extracted models.

Each workspace is a 0700 folder under a 0700 base folder owned by the user,
with a marker naming the process that made it (pid and start time, so a
recycled pid is not mistaken for the owner). A context manager removes it
when done, also on error; workspaces whose owner is dead are removed by
`sweep_stale_workspaces`, which the model store runs when it starts.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

import psutil

from milo_tui.errors import IntegrityError

MARKER = ".owner.json"
PREFIX = "ws-"
ORPHAN_GRACE_SECONDS = 600  # a workspace without a marker is left alone this long (it may be being created)


def default_base_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"milo-workspaces-{os.getuid()}"


def _process_started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return -1.0  # alive but not ours to inspect: treat as alive


def ensure_private_dir(base: Path) -> Path:
    """Create `base` 0700, or check that an existing one is a real folder of ours and not open to others."""
    base = Path(base)
    try:
        base.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    info = os.lstat(base)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise IntegrityError(
            f"{base} is not a folder owned by you (it may be a link planted by someone else), so no model "
            "is extracted there. Remove it, or set TMPDIR to a private folder, and try again."
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(base, 0o700)
    return base


class Workspace:
    """`with Workspace() as ws: ws.path / "x.joblib"` — the folder is gone afterwards."""

    def __init__(self, base_dir: Path | None = None) -> None:
        self.base_dir = Path(base_dir) if base_dir is not None else default_base_dir()
        self.path: Path | None = None

    def __enter__(self) -> "Workspace":
        ensure_private_dir(self.base_dir)
        self.path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=self.base_dir))
        marker = {"pid": os.getpid(), "started": _process_started(os.getpid())}
        (self.path / MARKER).write_text(json.dumps(marker), encoding="utf-8")
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
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None


def _owner_is_dead(workspace: Path) -> bool:
    try:
        marker = json.loads((workspace / MARKER).read_text(encoding="utf-8"))
        pid, started = int(marker["pid"]), marker.get("started")
    except FileNotFoundError:
        try:
            return time.time() - workspace.stat().st_mtime > ORPHAN_GRACE_SECONDS
        except FileNotFoundError:
            return False
    except (OSError, ValueError, KeyError, TypeError):
        return True  # an unreadable marker: nobody can be using it as intended
    actual = _process_started(pid)
    if actual is None:
        return True
    return actual != -1.0 and started is not None and abs(actual - float(started)) > 1.0


def sweep_stale_workspaces(base_dir: Path | None = None) -> int:
    """Remove workspaces whose owner process is gone; returns how many files were removed."""
    base = Path(base_dir) if base_dir is not None else default_base_dir()
    if not base.is_dir():
        return 0
    removed = 0
    for workspace in base.iterdir():
        if not workspace.name.startswith(PREFIX) or not workspace.is_dir() or workspace.is_symlink():
            continue
        if _owner_is_dead(workspace):
            removed += sum(1 for p in workspace.rglob("*") if p.is_file() and p.name != MARKER)
            shutil.rmtree(workspace, ignore_errors=True)
    return removed
