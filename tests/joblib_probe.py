"""Functions a test runs inside milo's training children (locally or on a cluster node) to see
what joblib really does there: which processes its jobs ran in, and what it warned."""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from pathlib import Path


def _job_pid(seconds: float, record_dir: str | None) -> int:
    if record_dir:
        Path(record_dir, str(os.getpid())).touch()
    time.sleep(seconds)
    return os.getpid()


def joblib_pids(n_jobs: int, jobs: int = 4, seconds: float = 0.2, record_dir: str | None = None) -> dict:
    """Run `jobs` joblib jobs with `n_jobs`; say in which processes they ran and what joblib warned.

    The big array is memory-mapped by joblib into a temp folder named for this process,
    so the caller can check that folder is gone afterwards.
    """
    import numpy as np
    from joblib import Parallel, delayed

    big = np.ones(300_000)  # > joblib's 1 MB max_nbytes: memory-mapped, as a search's data is
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pids = Parallel(n_jobs=n_jobs)(delayed(_job_pid)(seconds, record_dir) for _ in range(jobs))
        assert big.sum() == 300_000
    return {"child": os.getpid(), "job_pids": sorted(set(pids)),
            "warnings": [str(w.message) for w in caught]}


def joblib_then_die(record_dir: str, seconds: float = 30.0) -> None:
    """Start joblib helpers, then SIGKILL this child while they work (as the OOM killer would)."""
    Path(record_dir, "child").write_text(str(os.getpid()))
    threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGKILL)).start()
    joblib_pids(2, jobs=4, seconds=seconds, record_dir=record_dir)
