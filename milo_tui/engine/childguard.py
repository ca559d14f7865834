"""Imported ONLY by milo's forkserver (last in its preload list): children die with their parent.

Never import this module anywhere else: importing it asks Linux to kill the importing
process when its parent exits, which the engine (its parent is the TUI, and it must
outlive a closed SSH session) must never do.

Who owns what: the engine (or, on a cluster node, the Dask worker) starts the
forkserver, the forkserver forks one training child per task, and a child may start
joblib's helper processes in its own process group. If the engine or the Dask
worker vanishes at once (SIGKILL, the kernel's out-of-memory killer, a nanny's
restart), the forkserver exits, and this makes every training child receive
SIGKILL then, rather than train on as an orphan nobody will ever read from. The
child's own helpers are ended by the executor (a group kill; see
engine/executor.py).
"""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent exits (a no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


# The forkserver itself dies with the process that started it...
die_with_parent()
# ...and every child it forks dies with the forkserver (the setting is cleared by fork).
os.register_at_fork(after_in_child=die_with_parent)
