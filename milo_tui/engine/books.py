"""The project's books: may a run start here, and what it leaves behind (metadata.json, run_finished).

The engine holds the project lock (milo_tui.projectlock) before any of this
runs, so nothing here can race another engine.
"""

from __future__ import annotations

import json
import platform
import shutil
import socket
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version

from milo_tui import __version__
from milo_tui import events as ev
from milo_tui.errors import (EXIT_BAD_INPUT, EXIT_DISK_FULL, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK,
                             EXIT_STOPPED_MEMORY, BadInputError)
from milo_tui.keys import RunStatus
from milo_tui.project import ProjectPaths, atomic_write_json

STATUS_EXIT = {
    RunStatus.COMPLETED: EXIT_OK, RunStatus.STOPPED_MEMORY: EXIT_STOPPED_MEMORY,
    RunStatus.INTERRUPTED: EXIT_INTERRUPTED, RunStatus.DISK_FULL: EXIT_DISK_FULL, RunStatus.FAILED: EXIT_FAILED,
    RunStatus.BAD_INPUT: EXIT_BAD_INPUT,
}


class RunEnd(Exception):
    """Ends the run early with a status (stopped by a signal, by memory, ...): the books still close."""

    def __init__(self, status: RunStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_project_state(paths: ProjectPaths, *, resume: bool, force: bool) -> dict | None:
    """Refuse to overwrite a finished or unfinished run unless told to. Returns the old metadata."""
    if not paths.metadata.exists():
        return None
    try:
        meta = json.loads(paths.metadata.read_text())
    except (OSError, ValueError):
        meta = {"status": "unknown"}
    status = meta.get("status")
    if force:
        return meta
    if status == RunStatus.COMPLETED and not resume:
        raise BadInputError(
            f"{paths.root} already holds a completed run ({meta.get('counts', {}).get('completed', '?')} models). "
            "Nothing was changed. Browse it with `milo models` or `milo watch`; to train again from scratch, "
            "deleting the old results, run with --force."
        )
    if status != RunStatus.COMPLETED and not resume:
        raise BadInputError(
            f"{paths.root} holds an unfinished run (status {status}). Nothing was changed. "
            "Continue it with `milo run PROJECT --resume`, or start over with --force (deletes its results)."
        )
    return meta


def refuse(exc: BadInputError, pipe_fd: int | None) -> int:
    """Bad input: say why on the pipe and stderr only; nothing of the project is touched."""
    writer = ev.EventWriter(None, pipe_fd)
    writer.emit(ev.RUN_FINISHED, status=RunStatus.BAD_INPUT.value, exit_code=exc.exit_code, models_completed=0,
                models_failed=0, models_skipped=0, seconds=0.0, best=None, message=str(exc))
    writer.close()
    print(str(exc), file=sys.stderr)
    return exc.exit_code


def clear_outputs(paths: ProjectPaths) -> None:
    """--force: the old run's results go (only ever called while holding the project lock)."""
    for path in (paths.report, paths.metadata, paths.events):
        path.unlink(missing_ok=True)
    for directory in (paths.models, paths.class_results):
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class Counts:
    completed: int = 0
    failed: int = 0
    skipped: int = 0
    total: int = 0


def _installed(name: str) -> str | None:  # without importing it into the engine
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def metadata(*, status: RunStatus, message: str, run_id: str, started: float, resumed: bool, config: dict,
             data: dict, counts: Counts, limit, peak_bytes: int, storage: dict | None,
             search: dict | None) -> dict:
    return {
        "status": status.value, "message": message, "run_id": run_id,
        "started": datetime.fromtimestamp(started, timezone.utc).isoformat(),
        "finished": None if status is RunStatus.RUNNING else datetime.now(timezone.utc).isoformat(),
        "resumed": resumed, "host": socket.gethostname(),
        "config": config,
        "data": data,
        "versions": {"milo_tui": __version__, "python": platform.python_version(),
                     **{name: _installed(name) for name in ("scikit-learn", "numpy", "scipy", "pandas", "joblib")}},
        "counts": {"completed": counts.completed, "failed": counts.failed, "skipped": counts.skipped,
                   "total": counts.total},
        "memory": {"limit_bytes": getattr(limit, "bytes", None), "limit_source": getattr(limit, "source", None),
                   "peak_bytes": peak_bytes},
        "storage": storage,
        "search": search,  # candidates and CV fits per pipeline
    }


def write_metadata(paths: ProjectPaths, meta: dict) -> None:
    atomic_write_json(paths.metadata, meta)
