"""Imported by a node's forkserver (its preload list): children die with their node.

Locally the engine owns its forkserver and kills its workers itself. On a node the
Dask worker process owns the forkserver, and a Dask worker can vanish at once (the
nanny restarts it, the kernel kills it): its forkserver then exits (its pipe to the
worker closes), and this makes each training child receive SIGKILL when that happens,
rather than training on as an orphan nobody will ever read from.
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


# The forkserver itself dies with the Dask worker that started it...
die_with_parent()
# ...and every child it forks dies with the forkserver (the setting is cleared by fork).
os.register_at_fork(after_in_child=die_with_parent)
