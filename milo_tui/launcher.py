"""Start the engine subprocess with a dedicated event pipe. Used by the TUI and `milo run --headless`.

The engine runs in its own session (start_new_session) so that closing the
SSH connection or quitting the TUI does not kill it; its stdout and stderr go
to PROJECT/.milo/engine.log, never into the event stream.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from milo_tui.project import ProjectPaths


@dataclass
class EngineProcess:
    popen: subprocess.Popen
    event_fd: int  # read end of the event pipe; closed by close(), then -1
    paths: ProjectPaths

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        """Ask the engine to stop cleanly (it archives what finished and writes status interrupted)."""
        if self.popen.poll() is None:
            try:
                os.kill(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        """Close the pipe's read end, once. The app closes it when it unmounts and `milo run` again after:
        a second os.close of the same number would close whatever file has reused it since."""
        fd, self.event_fd = self.event_fd, -1
        if fd < 0:
            return
        try:
            os.close(fd)
        except OSError:
            pass

    def stderr_tail(self, lines: int = 15) -> str:
        return log_tail(self.paths.engine_log, lines)


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16384))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def start_engine(project: str | Path, *, resume: bool = False, force: bool = False,
                 extra_env: dict[str, str] | None = None) -> EngineProcess:
    paths = ProjectPaths.of(project)
    paths.state.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    cmd = [sys.executable, "-m", "milo_tui.engine", str(paths.root), "--event-fd", str(write_fd)]
    if resume:
        cmd.append("--resume")
    if force:
        cmd.append("--force")
    env = dict(os.environ)
    env.update(extra_env or {})
    env.setdefault("PYTHONUNBUFFERED", "1")
    log = open(paths.engine_log, "ab")
    try:
        popen = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            pass_fds=(write_fd,), start_new_session=True, env=env, close_fds=True,
        )
    finally:
        log.close()
        os.close(write_fd)  # only the engine holds the write end: EOF means it exited
    return EngineProcess(popen=popen, event_fd=read_fd, paths=paths)
