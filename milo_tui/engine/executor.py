"""Where one training task runs: the seam between the training loop and the machinery.

LocalExecutor starts one worker process per task from a pre-warmed forkserver
(scikit-learn already imported), so a task costs milliseconds to start rather
than a fresh interpreter, and every worker exits after its task so its memory
returns to the OS. A cluster executor (e.g. Dask distributed) can implement the
same four methods — start, wait, kill, shutdown — without the loop changing.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from dataclasses import dataclass, field

from milo_tui.engine.worker import TrainTask, worker_main

PRELOAD = [
    "milo_tui.engine.worker",
    "milo_tui.engine.metrics",
    "milo_tui.engine.space",
    "milo_tui.storage.files",
    "sklearn.pipeline",
    "sklearn.model_selection",
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.neighbors",
    "sklearn.svm",
    "sklearn.naive_bayes",
    "sklearn.neural_network",
    "sklearn.decomposition",
    "sklearn.feature_selection",
    "sklearn.preprocessing",
    "sklearn.metrics",
]


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def _noop() -> None:
    pass


def _call_and_send(function, args, kwargs, conn) -> None:
    try:
        conn.send(("ok", function(*args, **kwargs)))
    except BaseException as exc:  # sent back to be raised in the caller
        try:
            conn.send(("error", exc))
        except Exception:  # an exception that does not pickle
            conn.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
    finally:
        conn.close()


@dataclass
class Outcome:
    """How a task ended: "ok" (result), "error" / "disk_full" (message), or "crashed" (exit code)."""

    kind: str
    result: dict | None = None
    message: str = ""
    exitcode: int | None = None


@dataclass
class WorkerHandle:
    task: TrainTask
    process: multiprocessing.Process
    conn: multiprocessing.connection.Connection
    started: float = field(default_factory=time.monotonic)
    killed_reason: str = ""

    @property
    def pid(self) -> int | None:
        return self.process.pid


class LocalExecutor:
    def __init__(self, preload: list[str] | None = None) -> None:
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(PRELOAD if preload is None else preload)
        self.running: list[WorkerHandle] = []

    def warm_up(self, threads_per_worker: int = 1) -> None:
        """Start the forkserver now, so the first task does not pay for its imports.

        BLAS and OpenMP pools are sized before the forkserver imports numpy: with
        several workers each spinning a pool per core, a 1-second fit was measured
        taking over 100 seconds on 2 cores.
        """
        from multiprocessing import forkserver

        for name in THREAD_VARIABLES:
            os.environ[name] = str(max(1, threads_per_worker))
        forkserver.ensure_running()
        # The forkserver imports its preload list before it forks anything: one empty task
        # waits for that, so the first memory reading already sees the server at full size.
        probe = self._ctx.Process(target=_noop, name="milo-warm-up")
        probe.start()
        probe.join()

    def call(self, function, *args, **kwargs):
        """Run `function(*args, **kwargs)` in a fresh worker and return its result.

        An exception raised there is raised here (it must pickle); a worker that
        dies without an answer raises RuntimeError with how it ended.
        """
        receiver, sender = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(target=_call_and_send, args=(function, args, kwargs, sender),
                                    daemon=True, name=f"milo-call {getattr(function, '__name__', 'task')}")
        process.start()
        sender.close()
        try:
            kind, payload = receiver.recv()
        except EOFError:
            process.join()
            raise RuntimeError(f"the worker running {function.__name__} exited with code "
                               f"{process.exitcode} without an answer") from None
        finally:
            receiver.close()
        process.join()
        if kind == "error":
            raise payload
        return payload

    def forkserver_pid(self) -> int | None:
        from multiprocessing import forkserver

        return getattr(forkserver._forkserver, "_forkserver_pid", None)

    def start(self, task: TrainTask) -> WorkerHandle:
        receiver, sender = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(target=worker_main, args=(task, sender), daemon=True,
                                    name=f"milo-worker {task.spec.name}")
        process.start()
        sender.close()
        handle = WorkerHandle(task=task, process=process, conn=receiver)
        self.running.append(handle)
        return handle

    def wait(self, timeout: float) -> list[tuple[WorkerHandle, Outcome]]:
        """Outcomes of tasks that ended within `timeout` seconds."""
        if not self.running:
            time.sleep(timeout)
            return []
        waitables = {}
        for handle in self.running:
            waitables[handle.conn] = handle
            waitables[handle.process.sentinel] = handle
        ready = multiprocessing.connection.wait(list(waitables), timeout=timeout)
        done: dict[int, tuple[WorkerHandle, Outcome]] = {}
        for item in ready:
            handle = waitables[item]
            if id(handle) in done:
                continue
            done[id(handle)] = (handle, self._collect(handle))
        for handle, _ in done.values():
            self.running.remove(handle)
        return list(done.values())

    def _collect(self, handle: WorkerHandle) -> Outcome:
        message = None
        try:
            if handle.conn.poll(0):
                message = handle.conn.recv()
        except (EOFError, OSError):
            message = None
        handle.process.join(timeout=10)
        if handle.process.is_alive():  # sent its result but hangs on exit: do not wait for it
            handle.process.kill()
            handle.process.join()
        handle.conn.close()
        if message is not None:
            kind, payload = message
            if kind == "ok":
                return Outcome("ok", result=payload)
            return Outcome(kind, message=payload)
        code = handle.process.exitcode
        if handle.killed_reason:
            return Outcome("crashed", message=handle.killed_reason, exitcode=code)
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            reason = f"the worker process was killed by {name}"
            if -code == signal.SIGKILL:
                reason += " (often the kernel's out-of-memory killer)"
        else:
            reason = f"the worker process exited with code {code} without a result"
        return Outcome("crashed", message=reason, exitcode=code)

    def kill(self, handle: WorkerHandle, reason: str) -> None:
        handle.killed_reason = reason
        try:
            # Its loky helpers (n_jobs > 1) notice their parent is gone and exit.
            os.kill(handle.process.pid, signal.SIGKILL)
        except (ProcessLookupError, TypeError):
            pass

    def pids(self) -> dict[int, str]:
        return {h.pid: "worker" for h in self.running if h.pid is not None}

    def shutdown(self) -> None:
        for handle in list(self.running):
            self.kill(handle, "the run was stopped")
        for handle in list(self.running):
            handle.process.join(timeout=5)
            handle.conn.close()
        self.running.clear()
