"""The engine's side of a cluster: an Executor that trains through a Dask client.

Dask places each task on a node (milo_tui.cluster.node isolates it there); this
class keeps every decision milo makes locally on the engine:

- Retries are milo's: Dask is asked never to retry (allowed-failures = 0 on a
  cluster milo starts; see docs/CLUSTER.md for one you run), each (task, attempt)
  is one submission under its own key, and each future is released as soon as its
  result is in, so Dask never recomputes a finished task after a node dies. A task
  whose node was lost is submitted once more (Dask picks another node); lost twice,
  it ends CRASHED with the reason and the run goes on.
- Models come home as bytes: their sha256 is checked here, then they are written
  into the project's models directory, where the loop archives them as today.
- Memory: a thread reads every node's tree (PSS, limit) each interval and runs one
  Governor per node, whose every action is carried out on that node: alerts name
  the node; cleanups run there; while it is red it gets no new pipelines (its Dask
  worker is paused, the other nodes go on) and its searches run with
  n_jobs=1; a runaway child is killed there (the loop then retries it once with
  n_jobs=1 or skips it, as locally); a node that stays red with nothing of milo's
  on it is retired for the run, and the run stops safely only when every node is.
- Admission: each task asks Dask for its footprint estimate of the node's memory
  resource (MEMORY_RESOURCE), so Dask places it only where it fits; admit() tells
  the loop to wait while no node has room and to skip a pipeline no node could hold.
- A nanny that restarts its worker for memory (a --memory-limit backstop) is an alert.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic

from milo_tui.cluster import NODE_PRELOAD
from milo_tui.cluster.wire import (MEMORY_RESOURCE, NANNY_RESTART_TOPIC, PLUGIN_NAME, STARTED_TOPIC, NodeMemory,
                                   NodeResult, data_fingerprint, read_arrays)
from milo_tui.config import format_size
from milo_tui.engine.executor import (KillKind, KillReason, LocalExecutor, Outcome, OutcomeKind, ProcessInfo,
                                      ProcessRole, ResourceView, TaskHandle, U)
from milo_tui.engine.worker import TrainTask
from milo_tui.errors import BadInputError
from milo_tui.events import MSG_STOPPED
from milo_tui.memory.cleanup import CleanupReport
from milo_tui.memory.governor import (Alert, Cleanup, Governor, PauseStarts, ResumeStarts, SetInnerJobs,
                                      StopRun)
from milo_tui.memory.status import Thresholds
from milo_tui.project import atomic_write_bytes

LOCAL = "local"
START_CONFIRM_SECONDS = 10.0  # start() waits this long for the node to name host and pid


@dataclass(eq=False)
class _Submission:
    handle: TaskHandle
    task: TrainTask
    future: Any  # distributed.Future
    key: str
    estimate: int = 0  # bytes of the node's MEMORY_RESOURCE it asks for
    address: str = ""  # the Dask worker running it, once it said so
    losses: int = 0  # times a node was lost while it held this task


@dataclass
class _NodeState:
    governor: Governor
    reading: NodeMemory
    seen: float = field(default_factory=time.monotonic)
    paused: bool = False  # red: Dask places nothing new here
    retired: bool = False  # stayed red with nothing of milo's on it: no more pipelines this run


def require_cluster_extra() -> None:
    """Refuse early when the cluster extra is missing; found, not imported (connect() imports it
    while the engine's forkserver warms up)."""
    import importlib.util

    if importlib.util.find_spec("distributed") is None:
        raise cluster_missing()


def cluster_missing() -> BadInputError:
    return BadInputError(
        "A Dask scheduler is configured ([cluster] scheduler or --scheduler), but dask and distributed "
        "are not installed. Install them with `pip install 'milo_tui[cluster]'` on this machine and on "
        "every node, or remove the scheduler setting to train on this machine alone.")


class DaskExecutor(Generic[U]):
    """Executor over a Dask cluster. `scheduler`: "local", "tcp://host:port" or a scheduler JSON file."""

    def __init__(self, scheduler: str, *, memory_budget: int | None, thresholds: Thresholds,
                 critical_grace: float, forecast_horizon: float, sample_interval: float,
                 local_workers: int = 2) -> None:
        require_cluster_extra()
        self.scheduler = scheduler
        self.memory_budget = memory_budget
        self.thresholds = thresholds
        self.critical_grace = critical_grace
        self.forecast_horizon = forecast_horizon
        self.sample_interval = max(0.2, sample_interval)
        self.local_workers = local_workers
        self.client = None
        self.cluster = None
        self._local = LocalExecutor()  # call(): data preparation reads the CSVs where they are
        self._ids = itertools.count(1)
        self._run = os.urandom(4).hex()
        self._submissions: list[_Submission] = []
        self._fingerprint: str | None = None
        self._started: dict[str, dict] = {}
        self._started_cond = threading.Condition()
        self._nodes: dict[str, _NodeState] = {}
        self._nodes_lock = threading.Lock()
        self._actions: "queue.Queue" = queue.Queue()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # -- connecting --------------------------------------------------------------------------
    def warm_up(self, threads_per_worker: int = 1) -> None:
        # Side by side: the engine's forkserver imports scikit-learn in its own process while this
        # one imports Dask and reaches the scheduler (each takes a second or more).
        with ThreadPoolExecutor(1, thread_name_prefix="milo-connect") as connecting:
            connected = connecting.submit(self.connect)
            self._local.warm_up(threads_per_worker)
            connected.result()  # raises what connect() raised (an unreachable scheduler, versions)

    def connect(self) -> None:
        """Reach the scheduler (or start the LocalCluster), check versions, listen to the nodes."""
        try:
            import dask
            from distributed import Client
        except ImportError as exc:  # found, but broken (a half-installed extra)
            raise BadInputError(f"{cluster_missing()} (importing it failed: {exc})") from None

        # The engine decides retries; a daemonic worker could not start milo's forkserver.
        with dask.config.set({"distributed.scheduler.allowed-failures": 0, "distributed.worker.daemon": False}):
            if self.scheduler == LOCAL:
                from distributed import LocalCluster

                # The preload warms each worker's forkserver while the engine prepares the data.
                self.cluster = LocalCluster(n_workers=self.local_workers, threads_per_worker=1, processes=True,
                                            memory_limit=0, dashboard_address=None, preload=[NODE_PRELOAD])
                self.client = Client(self.cluster)
            else:
                self.client = _connect(Client, self.scheduler)
        _check_versions(self.client)
        self.client.subscribe_topic(STARTED_TOPIC, self._on_started)
        self.client.subscribe_topic(NANNY_RESTART_TOPIC, self._on_nanny_restart)

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self._local.call(function, *args, **kwargs)

    # -- tasks ------------------------------------------------------------------------------------
    def start(self, task: TrainTask, unit: U) -> TaskHandle[U]:
        self._ensure_nodes_ready(task)
        task_id = next(self._ids)
        handle: TaskHandle[U] = TaskHandle(task_id=task_id, unit=unit, name=task.spec.name, host="")
        # The runner's unit carries its footprint estimate (MemoryPolicer.admit set it).
        submission = _Submission(handle, task, None, "", estimate=int(getattr(unit, "estimate", 0) or 0))
        self._submit(submission)
        self._submissions.append(submission)
        self._await_start(submission)
        return handle

    def _submit(self, submission: _Submission) -> None:
        from milo_tui.cluster.node import train_on_node

        submission.key = f"milo-{self._run}-{submission.handle.task_id}-{submission.losses}"
        submission.future = self.client.submit(train_on_node, submission.key, submission.task,
                                               self._fingerprint, key=submission.key, pure=False, retries=0,
                                               resources={MEMORY_RESOURCE: float(submission.estimate)})

    def _await_start(self, submission: _Submission) -> None:
        """Wait briefly for the node to say which host and pid run it (for model_started)."""
        deadline = time.monotonic() + START_CONFIRM_SECONDS
        with self._started_cond:
            while submission.key not in self._started and time.monotonic() < deadline:
                self._started_cond.wait(deadline - time.monotonic())
            info = self._started.pop(submission.key, None)
        if info:
            submission.handle.host, submission.handle.pid = info["host"], info["pid"]

    def _on_started(self, event) -> None:  # called on the client's event loop
        _, message = event
        with self._started_cond:
            self._started[message["key"]] = message
            self._started_cond.notify_all()
        for submission in list(self._submissions):
            if submission.key == message["key"]:
                submission.handle.host, submission.handle.pid = message["host"], message["pid"]
                submission.address = message.get("address", "")

    def _on_nanny_restart(self, event) -> None:  # called on the client's event loop
        _, message = event
        address = message.get("worker", "")
        with self._nodes_lock:
            state = self._nodes.get(address)
        host = state.reading.host if state else address
        self._actions.put(Alert("critical", "A cluster node's Dask worker was restarted for memory", (
            f"{host}: its nanny restarted the Dask worker (pid {message.get('pid')}, "
            f"{format_size(int(message.get('rss') or 0))} resident) at the nanny's --memory-limit; the pipelines "
            "it was training are trained once more elsewhere. The nanny measures only the worker process; "
            "start nodes with `milo node` (--memory-limit 0) and let memory_budget limit each node"),
            {"host": host, "address": address, "rss_bytes": int(message.get("rss") or 0)}))

    def running(self) -> list[TaskHandle[U]]:
        return [s.handle for s in self._submissions]

    def wait(self, timeout: float) -> list[tuple[TaskHandle[U], Outcome]]:
        deadline = time.monotonic() + timeout
        while True:
            done = [(s.handle, outcome) for s in list(self._submissions)
                    if (outcome := self._outcome_if_done(s)) is not None]
            for handle, _ in done:
                self._submissions = [s for s in self._submissions if s.handle is not handle]
            if done or time.monotonic() >= deadline:
                return done
            time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))

    def _outcome_if_done(self, submission: _Submission) -> Outcome | None:
        future = submission.future
        if submission.handle.killed is not None and future.status == "pending" \
                and not submission.handle.pid:
            future.cancel()  # told to die before any node started it
            return Outcome(OutcomeKind.KILLED, killed=submission.handle.killed)
        if future.status == "finished":
            result: NodeResult = future.result()
            future.release()  # accepted: Dask must never recompute it
            submission.handle.host, submission.handle.pid = result.host, result.pid
            return self._bring_home(submission, result)
        if future.status in ("error", "cancelled", "lost"):
            error = _exception_of(future)
            future.release()
            if _node_lost(error, future.status):
                return self._after_loss(submission, error)
            return Outcome(OutcomeKind.ERROR, error_type=type(error).__name__ if error else "Error",
                           message=f"on the cluster: {error}" if error else "the task ended without a result")
        return None

    def _after_loss(self, submission: _Submission, error: BaseException | None) -> Outcome | None:
        where = submission.handle.host or "a node"
        submission.losses += 1
        if submission.losses >= 2:
            return Outcome(OutcomeKind.CRASHED, message=(
                f"the cluster node training it ({where}) was lost, and again on its retry ({error})"))
        self._actions.put(Alert("warning", "A cluster node was lost", (
            f"{where} was lost while training {submission.handle.name}; it is trained once more elsewhere "
            f"({error})"), {"host": where}))
        submission.handle.pid, submission.handle.host, submission.address = None, "", ""
        self._submit(submission)
        return None

    def _bring_home(self, submission: _Submission, result: NodeResult) -> Outcome:
        """Check each model's hash, then write models and class results where the loop expects them."""
        if result.outcome.kind is not OutcomeKind.OK:
            return result.outcome
        damaged = [m.key for m in result.models if not m.intact()]
        if damaged:
            return Outcome(OutcomeKind.ERROR, error_type="TransferError",
                           message=f"model bytes from {result.host} failed their sha256 check: {', '.join(damaged)}")
        from milo_tui.storage.files import model_path

        models_dir = Path(submission.task.models_dir)
        for model in result.models:
            atomic_write_bytes(model_path(models_dir, model.key), model.data)
        documents = Path(submission.task.class_results_dir)
        for name, data in result.class_results.items():
            atomic_write_bytes(documents / Path(name).name, data)
        return result.outcome

    def kill(self, handle: TaskHandle[U], reason: KillReason) -> None:
        handle.killed = reason
        submission = next((s for s in self._submissions if s.handle is handle), None)
        if submission is None:
            return
        from milo_tui.cluster.node import kill_on_node

        # Every node is asked; the one running this key kills its child, and its Outcome says why.
        self.client.run(kill_on_node, submission.key, reason.kind.value, reason.text, wait=False)

    # -- memory -------------------------------------------------------------------------------------
    def admit(self, estimate: int, *, others_running: bool) -> tuple[str, str]:
        """("start" | "wait" | "skip", reason) for a pipeline of `estimate` bytes, node by node.

        Dask enforces the same arithmetic through the memory resource; asking here first
        keeps the loop from handing Dask a task that could only queue (or never run).
        """
        if self._fingerprint is None:
            # The first start installs milo's plugin and reads every node; until then there is
            # nothing to weigh, and Dask's memory resource still keeps the task where it fits.
            return "start", ""
        with self._nodes_lock:
            nodes = [s for s in self._nodes.values() if not s.retired]
            if not nodes:
                return "wait", "no cluster node is available"
            largest = max(s.reading.capacity for s in nodes)
            if estimate > largest:
                return "skip", (f"needs an estimated {format_size(estimate)} but the largest node has "
                                f"{format_size(largest)} below its critical level")
            held: dict[str, int] = {}
            busy: dict[str, int] = {}
            for submission in self._submissions:
                held[submission.address] = held.get(submission.address, 0) + submission.estimate
                busy[submission.address] = busy.get(submission.address, 0) + 1
            unplaced, waiting = held.pop("", 0), busy.pop("", 0)  # submitted, not started: room somewhere
            open_nodes = [s for s in nodes if not s.paused]
            free_slots = sum(max(0, s.reading.slots - busy.get(s.reading.address, 0)) for s in open_nodes) - waiting
            room = max((s.reading.capacity - held.get(s.reading.address, 0) for s in open_nodes), default=None)
        if room is None:
            return "wait", "memory is critical on every cluster node; new pipelines wait"
        if free_slots <= 0:
            return "wait", "every cluster node that can take a pipeline is busy"
        if estimate <= room - unplaced:
            return "start", ""
        return "wait", (f"needs an estimated {format_size(estimate)}; the roomiest open node has "
                        f"{format_size(max(0, room - unplaced))} left below its critical level")

    def resources(self) -> ResourceView:
        processes = list(self._local.resources().processes)
        by_key = {s.key: s.handle for s in self._submissions}
        with self._nodes_lock:
            for state in self._nodes.values():
                for child in state.reading.children:
                    processes.append(ProcessInfo(child.pid, ProcessRole.WORKER, state.reading.host,
                                                 by_key.get(child.task_key)))
        return ResourceView(tuple(processes))

    def nodes(self) -> list[dict]:
        """One entry per node for the memory event: used, limit, status, pipelines running."""
        with self._nodes_lock:
            return [{"host": s.reading.host, "address": s.reading.address, "status": s.governor.status,
                     "used_bytes": s.reading.used, "pss_bytes": s.reading.pss,
                     "limit_bytes": s.reading.limit.bytes, "limit_source": s.reading.limit.source,
                     "percent": round(100 * s.reading.used / s.reading.limit.bytes, 1),
                     "running": len(s.reading.children), "slots": s.reading.slots,
                     "capacity_bytes": s.reading.capacity, "paused": s.paused, "retired": s.retired}
                    for s in self._nodes.values()]

    def drain_actions(self) -> list:
        """Alerts and stops the node governors decided since the last call (for the loop to carry out)."""
        actions = []
        while True:
            try:
                actions.append(self._actions.get_nowait())
            except queue.Empty:
                return actions

    def _ensure_nodes_ready(self, task: TrainTask) -> None:
        """Send the data with milo's plugin to every node (and every node that joins later)."""
        arrays = read_arrays(task.arrays)
        fingerprint = data_fingerprint(arrays)
        if fingerprint == self._fingerprint:
            return
        from milo_tui.cluster.node import MiloNode

        self.client.register_plugin(MiloNode(fingerprint, arrays, self.memory_budget, self.thresholds.critical),
                                    name=PLUGIN_NAME)
        self._fingerprint = fingerprint
        if self._poller is None:
            # One reading before the first task starts: the first memory event already lists every
            # node, and admission has a figure for each, however short the run.
            self._read_node_memory()
            self._poller = threading.Thread(target=self._poll_memory, name="milo-node-memory", daemon=True)
            self._poller.start()

    def _poll_memory(self) -> None:
        while not self._stop.wait(self.sample_interval):
            self._read_node_memory()

    def _read_node_memory(self) -> None:
        from milo_tui.cluster.node import memory_on_node

        try:
            readings = self.client.run(memory_on_node, on_error="return")
        except Exception:  # the scheduler is unreachable right now: the next tick tries again
            return
        for address, reading in readings.items():
            if isinstance(reading, NodeMemory):
                self._govern(reading)
        with self._nodes_lock:
            for address in [a for a in self._nodes if a not in readings]:
                del self._nodes[address]  # the node left the cluster

    def _govern(self, reading: NodeMemory) -> None:
        with self._nodes_lock:
            state = self._nodes.get(reading.address)
            if state is None:
                governor = Governor(reading.limit, self.thresholds, critical_grace=self.critical_grace,
                                    forecast_horizon=self.forecast_horizon)
                state = self._nodes[reading.address] = _NodeState(governor, reading)
            state.reading, state.seen = reading, time.monotonic()
        for action in state.governor.on_sample(reading.used, training=len(reading.children)):
            self._carry_out(state, action)
        self._kill_runaway(state)

    def _carry_out(self, state: _NodeState, action) -> None:
        """One action of a node's governor, carried out on that node (the poller thread)."""
        from milo_tui.cluster.node import cap_jobs_on_node, clean_up_on_node, open_node

        host, address = state.reading.host, state.reading.address
        match action:
            case Alert() if action.message == MSG_STOPPED:
                pass  # one node's stop retires that node; _retire says so, or stops the run when it is the last
            case Alert():
                self._actions.put(Alert(action.level, action.message, f"{host}: {action.detail}",
                                        {**action.data, "host": host, "address": address}))
            case Cleanup(level=level):
                report = self._on_node(clean_up_on_node, address, level)
                if isinstance(report, CleanupReport):
                    self._actions.put(report)
            case PauseStarts():
                state.paused = True
                self._on_node(open_node, address, False)
            case ResumeStarts():
                state.paused = False
                if not state.retired:
                    self._on_node(open_node, address, True)
            case SetInnerJobs(n_jobs=n_jobs):
                self._on_node(cap_jobs_on_node, address, n_jobs)
            case StopRun(reason=reason):
                self._retire(state, reason)
            case _:
                raise TypeError(f"a node's memory governor sent an action the executor does not know: {action!r}")

    def _retire(self, state: _NodeState, reason: str) -> None:
        """The node stayed red with nothing of milo's on it: no more pipelines there; stop if none is left."""
        with self._nodes_lock:
            state.retired = state.paused = True
            left = [s for s in self._nodes.values() if not s.retired]
        host = state.reading.host
        if left:
            self._actions.put(Alert("critical", "A cluster node gets no more pipelines in this run", (
                f"{host} ({state.reading.address}): {reason}; the other {len(left)} node(s) go on"),
                {"host": host, "address": state.reading.address}))
        else:
            self._actions.put(StopRun(f"{host}: {reason} (no cluster node is left that can train)"))

    def _on_node(self, function, address: str, *args):
        """Run `function` on one node and return its answer (None if that node could not be reached)."""
        try:
            return self.client.run(function, *args, workers=[address], on_error="return").get(address)
        except Exception:  # the node just left: its next reading (or absence) says so
            return None

    def _kill_runaway(self, state: _NodeState) -> None:
        reading, governor = state.reading, state.governor
        trees = {c.pid: c.pss for c in reading.children}
        victim = governor.runaway(reading.used, trees)
        if victim is None:
            return
        child = next(c for c in reading.children if c.pid == victim)
        handle = next((s.handle for s in self._submissions if s.key == child.task_key), None)
        if handle is None or handle.killed is not None:
            return
        allowance = governor.worker_allowance(reading.used, child.pss)
        self.kill(handle, KillReason(KillKind.MEMORY, (
            f"the worker on {reading.host} used {format_size(child.pss)}, over its allowance of "
            f"{format_size(allowance)} ({format_size(reading.limit.bytes)} {reading.limit.source} limit "
            "of that node)")))

    def shutdown(self) -> None:
        self._stop.set()
        if self.client is not None:
            stopping = KillReason(KillKind.STOPPED, "the run was stopped")
            for submission in list(self._submissions):
                try:
                    self.kill(submission.handle, stopping)
                    submission.future.cancel()
                except Exception:
                    pass
            self._submissions.clear()
            try:
                self.client.unregister_worker_plugin(PLUGIN_NAME)  # teardown kills any child left
            except Exception:
                pass
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        if self._poller is not None:
            self._poller.join(timeout=5)
        self._local.shutdown()


def _connect(client_class, scheduler: str):
    where = {"scheduler_file": scheduler} if scheduler.endswith(".json") else {"address": scheduler}
    try:
        return client_class(timeout="20s", **where)
    except (OSError, TimeoutError, ValueError) as exc:
        raise BadInputError(
            f"Could not reach the Dask scheduler {scheduler} ({exc}). Nothing was changed. Check that the "
            "scheduler runs and this machine can reach it (`milo node --help` shows how a node joins), or train on this machine "
            "alone by removing the scheduler setting.") from None


# Beyond what Dask compares itself (python, dask, distributed, numpy, pandas, ...): a model is
# trained on a node and loaded on the engine's machine, so these must match too.
CHECKED_PACKAGES = ["sklearn", "joblib", "scipy", "milo_tui"]


def _check_versions(client) -> None:
    """Refuse a cluster whose machines run different versions (Dask's own check=True only warns)."""
    from distributed.versions import error_message

    versions = client.get_versions(packages=CHECKED_PACKAGES)
    mismatch = error_message(versions["scheduler"], versions["workers"], versions["client"])["warning"]
    if mismatch:
        client.close()
        raise BadInputError(
            f"The cluster's machines run different versions of the packages milo needs.\n{mismatch}\n"
            "Nothing was changed. Install the same versions on the engine's machine and every node "
            "(`pip list` on each machine shows what it has).")


def _exception_of(future) -> BaseException | None:
    try:
        return future.exception(timeout=1)
    except Exception as exc:  # cancelled futures raise here
        return exc


def _node_lost(error: BaseException | None, status: str) -> bool:
    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    return status in ("cancelled", "lost") or isinstance(error, (KilledWorker, CommClosedError, OSError))


