"""Ends what a dead Dask worker's training children leave behind on a node: their joblib helpers.

On a node, the Dask worker starts milo's forkserver, which forks one training child per
pipeline, and a child's search may start joblib (loky) helper processes. If the worker
vanishes at once (SIGKILL, the out-of-memory killer, a nanny's restart), the forkserver
and the training children die with it (Linux's parent-death signal, engine/childguard.py),
but that signal cannot reach the helpers: loky starts them with fork and exec, and a
busy helper only notices its parent is gone when its current fit ends, which may be
minutes of CPU and memory on a node whose new worker no longer counts them. Nobody is
left on the node to end their process group, so this small process does:

- Before its forkserver starts, the worker marks its environment with a token of its own
  (TOKEN_VARIABLE = "<worker pid>-<random>"). The forkserver, every child and every helper
  inherit it; no other process on the machine has it.
- The worker starts this reaper (a fresh interpreter in its own session, so a Ctrl-C
  meant for `dask worker` does not end it) with a pipe on its stdin that only the worker
  holds. When the worker ends, however it ends, the pipe closes.
- Then the reaper SIGKILLs every process of this user whose environment carries the token,
  a few rounds until none is left, and exits.

A process started by anything else in that worker (another library's task) carries the
token too and is ended the same way: nothing of a dead worker's is left running.
Linux only (/proc); elsewhere it does nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

TOKEN_VARIABLE = "MILO_NODE_WORKER"

_lock = threading.Lock()
_reaper: subprocess.Popen | None = None


def start_reaper() -> None:
    """In the Dask worker, before its forkserver starts: mark the environment, start the reaper (once)."""
    global _reaper
    with _lock:
        if _reaper is not None or not os.path.isdir("/proc"):
            return
        token = f"{os.getpid()}-{os.urandom(8).hex()}"
        os.environ[TOKEN_VARIABLE] = token
        _reaper = subprocess.Popen([sys.executable, "-m", "milo_tui.cluster.reaper", token],
                                   stdin=subprocess.PIPE, start_new_session=True)


def end_marked(token: str) -> int:
    """SIGKILL every other process whose environment carries the token; how many were signalled."""
    marker = f"{TOKEN_VARIABLE}={token}".encode()
    ended = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if marker not in handle.read().split(b"\0"):
                    continue
            os.kill(int(entry), signal.SIGKILL)
            ended += 1
        except (OSError, ValueError):  # gone meanwhile, or not ours to read
            continue
    return ended


def main(token: str) -> None:
    sys.stdin.buffer.read()  # returns when the worker's end of the pipe closes: the worker is gone
    for _ in range(10):  # a helper being forked right now appears in a later round
        if not end_marked(token):
            return
        time.sleep(0.1)


if __name__ == "__main__":
    main(sys.argv[1])
