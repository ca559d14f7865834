"""Where one training task runs: the seam between the training loop and the machinery.

`Executor` is the protocol the loop drives; `LocalExecutor` implements it with
one worker process per task, forked from a pre-warmed forkserver
(scikit-learn already imported), so a task costs milliseconds to start rather
than a fresh interpreter, and every worker exits after its task so its memory
returns to the OS. A cluster executor implements the same protocol without the
loop changing: it starts tasks, reports how each ended as an `Outcome`, kills
one when told why (`KillReason`), and shows which processes on which hosts run
what (`ResourceView`) so memory can be measured and policed.

Every value crossing the seam is typed: nothing is parsed out of a string.
"""

from __future__ import annotations

import itertools
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, Callable, Generic, Protocol, TypeVar

from milo_tui.engine.worker import TrainTask, peak_memory_mb, train

CHILD_GUARD = "milo_tui.engine.childguard"
PRELOAD = [
    "milo_tui.engine.executor",
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
    CHILD_GUARD,  # last: only the forkserver imports it (children die with it)
]


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

U = TypeVar("U")  # what the loop attaches to a task (the runner's Unit)


# -- values that cross the seam ------------------------------------------------------------

class OutcomeKind(Enum):
    OK = "ok"                # the task returned its result
    ERROR = "error"          # the task raised; error_type and message say what
    DISK_FULL = "disk_full"  # the task could not write (ENOSPC): the run must stop
    CRASHED = "crashed"      # the process died without an answer (signal, exit code)
    KILLED = "killed"        # the executor killed it when told to; `killed` says why


class KillKind(Enum):
    MEMORY = "memory"    # the memory policy killed a runaway worker
    STOPPED = "stopped"  # the run is stopping


@dataclass(frozen=True)
class KillReason:
    kind: KillKind
    text: str  # for people: what was measured, against which allowance

    def describe(self) -> str:
        return f"{self.kind.value}: {self.text}"


@dataclass(frozen=True)
class Outcome:
    """How one task ended, as told by whoever ran it."""

    kind: OutcomeKind
    result: dict | None = None  # OK: the worker's {"rows": [...], ...}
    error_type: str = ""  # ERROR / DISK_FULL: the exception's class name
    message: str = ""  # ERROR / DISK_FULL / CRASHED: one paragraph for people
    traceback: str = ""  # ERROR: where it happened (for engine.log, not for the report)
    killed: KillReason | None = None  # KILLED: why
    exitcode: int | None = None  # CRASHED / KILLED: the process's exit status
    peak_memory_bytes: int | None = None  # measured by the process that ran the task; None if it died

    @property
    def failure_text(self) -> str:
        """One line for report.csv's `reason` and the model_failed event."""
        if self.kind is OutcomeKind.KILLED and self.killed is not None:
            return self.killed.describe()
        first = self.message.strip().splitlines()[0] if self.message.strip() else "unknown"
        return f"{self.error_type}: {first}" if self.error_type else first


class ProcessRole(StrEnum):
    """What a process is, for the memory sampler and the dashboard (a str: the sampler's role names)."""

    ENGINE = "engine"
    FORKSERVER = "forkserver"
    WORKER = "worker"


@dataclass(eq=False)
class TaskHandle(Generic[U]):
    """One started task. `unit` is the loop's own record of it, carried unchanged."""

    task_id: int
    unit: U
    name: str
    pid: int | None = None  # the process running it, where known
    host: str = field(default_factory=socket.gethostname)
    started: float = field(default_factory=time.monotonic)
    killed: KillReason | None = None


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    role: ProcessRole
    host: str
    task: TaskHandle | None = None  # the task it runs, if it is a worker


@dataclass(frozen=True)
class ResourceView:
    """The processes an executor runs right now, on which host, doing what."""

    processes: tuple[ProcessInfo, ...] = ()

    def roles(self, host: str | None = None) -> dict[int, str]:
        """pid -> role for the memory sampler (one host: pids are per host)."""
        host = host or socket.gethostname()
        return {p.pid: p.role.value for p in self.processes if p.host == host}

    def workers(self) -> dict[int, TaskHandle]:
        """pid -> task of every worker process still running a task not yet told to die."""
        return {p.pid: p.task for p in self.processes
                if p.role is ProcessRole.WORKER and p.task is not None and p.task.killed is None}


class Executor(Protocol[U]):
    """The seam: what the training loop needs from whatever runs its tasks."""

    def warm_up(self, threads_per_worker: int = 1) -> None:
        """Get ready before the first task (start servers, import libraries)."""

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one function somewhere isolated and return its result (data preparation);
        an exception raised there is raised here."""

    def start(self, task: TrainTask, unit: U) -> TaskHandle[U]:
        """Start a task now; `unit` travels on the handle."""

    def running(self) -> list[TaskHandle[U]]:
        """Tasks started and not yet returned by wait()."""

    def wait(self, timeout: float) -> list[tuple[TaskHandle[U], Outcome]]:
        """Outcomes of tasks that ended within `timeout` seconds (possibly none)."""

    def kill(self, handle: TaskHandle[U], reason: KillReason) -> None:
        """End a task now; its Outcome (KILLED, with `reason`) comes from wait()."""

    def resources(self) -> ResourceView:
        """Which processes on which hosts run what."""

    def shutdown(self) -> None:
        """Kill whatever still runs and release everything."""


# -- what runs inside a worker ---------------------------------------------------------------

def run_task(task: TrainTask) -> Outcome:
    """Train one task and say how it went. Runs in the worker process (any executor's)."""
    from milo_tui.errors import DiskFullError

    try:
        result = train(task)
    except MemoryError:
        return Outcome(OutcomeKind.ERROR, error_type="MemoryError", message="the worker ran out of memory",
                       peak_memory_bytes=_peak_bytes())
    except Exception as exc:  # the worker reports every failure; the run goes on
        kind = OutcomeKind.DISK_FULL if isinstance(exc, DiskFullError) else OutcomeKind.ERROR
        return Outcome(kind, error_type=type(exc).__name__, message=str(exc),
                       traceback=traceback.format_exc(limit=6), peak_memory_bytes=_peak_bytes())
    return Outcome(OutcomeKind.OK, result=result,
                   peak_memory_bytes=int(result["peak_memory_mb"] * 1024 * 1024))


def _peak_bytes() -> int:
    return int(peak_memory_mb() * 1024 * 1024)


def _child_main(target: Callable[..., None], args: tuple) -> None:
    """First and last steps of every child process this executor starts.

    A child is not daemonic (joblib silently runs n_jobs > 1 as n_jobs = 1 in a
    daemonic process) and leads its own process group, so its joblib helpers are
    ended with it: kill() signals the whole group, and a child that died without
    an answer has its group ended when its outcome is collected.
    """
    os.setpgrp()
    try:
        target(*args)
    finally:
        _stop_joblib_workers()


def _stop_joblib_workers() -> None:
    """End loky's reusable workers now: they idle 300 s after the last job, and the child would wait for them.

    Ending them cleanly also lets loky's resource tracker delete the memory-mapped
    temp folders (RAM, in /dev/shm) before the child exits.
    """
    loky = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(loky, "_executor", None)  # None until a search ran with n_jobs > 1
    if executor is not None:
        executor.shutdown(wait=True, kill_workers=True)


def _worker_entry(task: TrainTask, conn) -> None:
    """Entry point of a local worker process: run the task, send one Outcome, exit."""
    try:
        conn.send(run_task(task))
    finally:
        conn.close()


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


# -- the local executor ------------------------------------------------------------------

@dataclass(eq=False)
class _LocalTask:
    handle: TaskHandle
    process: multiprocessing.Process
    conn: multiprocessing.connection.Connection


class LocalExecutor(Generic[U]):
    """Executor on this machine: a forkserver with scikit-learn preloaded forks one process per task."""

    def __init__(self, preload: list[str] | None = None) -> None:
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(PRELOAD if preload is None else preload)
        self._tasks: list[_LocalTask] = []
        self._ids = itertools.count(1)
        self._host = socket.gethostname()

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

    def _child(self, target: Callable[..., None], args: tuple, name: str) -> multiprocessing.Process:
        """Start one child of the forkserver (see _child_main for what every child does)."""
        process = self._ctx.Process(target=_child_main, args=(target, args), daemon=False, name=name)
        process.start()
        return process

    def call(self, function, *args, **kwargs):
        """Run `function(*args, **kwargs)` in a fresh worker and return its result.

        An exception raised there is raised here (it must pickle); a worker that
        dies without an answer raises RuntimeError with how it ended.
        """
        receiver, sender = self._ctx.Pipe(duplex=False)
        process = self._child(_call_and_send, (function, args, kwargs, sender),
                              f"milo-call {getattr(function, '__name__', 'task')}")
        sender.close()
        try:
            kind, payload = receiver.recv()
        except EOFError:
            process.join()
            _end_group(process.pid)
            raise RuntimeError(f"the worker running {function.__name__} exited with code "
                               f"{process.exitcode} without an answer") from None
        finally:
            receiver.close()
        process.join()
        if kind == "error":
            raise payload
        return payload

    def start(self, task: TrainTask, unit: U) -> TaskHandle[U]:
        receiver, sender = self._ctx.Pipe(duplex=False)
        process = self._child(_worker_entry, (task, sender), f"milo-worker {task.spec.name}")
        sender.close()
        handle = TaskHandle(task_id=next(self._ids), unit=unit, name=task.spec.name, pid=process.pid,
                            host=self._host)
        self._tasks.append(_LocalTask(handle, process, receiver))
        return handle

    def running(self) -> list[TaskHandle[U]]:
        return [t.handle for t in self._tasks]

    def wait(self, timeout: float) -> list[tuple[TaskHandle[U], Outcome]]:
        """Outcomes of tasks that ended within `timeout` seconds."""
        if not self._tasks:
            time.sleep(timeout)
            return []
        waitables: dict[Any, _LocalTask] = {}
        for task in self._tasks:
            waitables[task.conn] = task
            waitables[task.process.sentinel] = task
        ready = multiprocessing.connection.wait(list(waitables), timeout=timeout)
        ended: list[_LocalTask] = []
        for item in ready:
            if waitables[item] not in ended:
                ended.append(waitables[item])
        done = [(task.handle, self._collect(task)) for task in ended]
        for task in ended:
            self._tasks.remove(task)
        return done

    def _collect(self, task: _LocalTask) -> Outcome:
        answer: Outcome | None = None
        try:
            if task.conn.poll(0):
                answer = task.conn.recv()
        except (EOFError, OSError):
            answer = None
        task.process.join(timeout=10)
        if task.process.is_alive():  # sent its result but hangs on exit: do not wait for it
            task.process.kill()
            task.process.join()
        task.conn.close()
        if answer is not None:
            return answer
        _end_group(task.handle.pid)  # it died mid-task: its joblib helpers (if any) must not live on
        code = task.process.exitcode
        if task.handle.killed is not None:
            return Outcome(OutcomeKind.KILLED, killed=task.handle.killed, exitcode=code)
        return Outcome(OutcomeKind.CRASHED, message=_how_it_died(code), exitcode=code)

    def kill(self, handle: TaskHandle[U], reason: KillReason) -> None:
        handle.killed = reason
        if handle.pid is not None:
            _kill_group(handle.pid)

    def resources(self) -> ResourceView:
        processes = [ProcessInfo(t.handle.pid, ProcessRole.WORKER, self._host, t.handle)
                     for t in self._tasks if t.handle.pid is not None]
        server = _forkserver_pid()
        if server:
            processes.insert(0, ProcessInfo(server, ProcessRole.FORKSERVER, self._host))
        return ResourceView(tuple(processes))

    def shutdown(self) -> None:
        stopping = KillReason(KillKind.STOPPED, "the run was stopped")
        for task in list(self._tasks):
            self.kill(task.handle, stopping)
        for task in list(self._tasks):
            task.process.join(timeout=5)
            task.conn.close()
        self._tasks.clear()


def _kill_group(pid: int) -> None:
    """SIGKILL a child and its joblib helpers (its process group; the child alone if it has none yet)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:  # killed before it made its group: nothing of its own started yet
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    except PermissionError:  # the pid is no longer a group of ours
        pass


def _end_group(pid: int | None) -> None:
    """A child died without an answer: end its helpers and drop their temp files (RAM in /dev/shm)."""
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    from milo_tui.memory.cleanup import default_temp_roots, remove_temp_entries, removable_temp_entries

    remove_temp_entries(removable_temp_entries(default_temp_roots(), [pid]))


def _forkserver_pid() -> int | None:
    # The standard library keeps the server's pid private; this is the one place that reads it.
    from multiprocessing import forkserver

    return getattr(forkserver._forkserver, "_forkserver_pid", None)


def _how_it_died(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        reason = f"the worker process was killed by {name}"
        if -code == signal.SIGKILL:
            reason += " (often the kernel's out-of-memory killer)"
        return reason
    return f"the worker process exited with code {code} without a result"
