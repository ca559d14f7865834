"""What runs on a cluster node: milo's own forkserver inside a Dask worker.

Dask places a task on a node; the node trains it exactly as the engine does
locally: `MiloNode` (a Dask worker plugin) holds a LocalExecutor whose
forkserver has scikit-learn preloaded, and each task forks one fresh child,
so memory returns to the OS after every pipeline and the child's peak memory is
its own. The child writes its models into a private per-task directory; the
task reads them back as bytes with their sha256 and removes the directory, so
nothing is left on the node and no shared filesystem is needed.

The data arrives with the plugin, once per node, and is cached on the node's
disk under its fingerprint; children memory-map it read-only as locally.

Also importable as a Dask preload (`dask worker --preload milo_tui.cluster.node`):
it then readies the worker process and warms its forkserver as the worker starts,
so a run's first pipeline on a fresh node does not wait for scikit-learn's imports
(see dask_setup).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import socket
import stat
import sys
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

import psutil
from distributed import WorkerPlugin, get_worker

from milo_tui.cluster.reaper import start_reaper
from milo_tui.cluster.wire import (MEMORY_RESOURCE, PLUGIN_NAME, STARTED_TOPIC, ChildMemory, ModelBytes,
                                   NodeMemory, NodeResult, data_fingerprint)
from milo_tui.engine.executor import (CHILD_GUARD, PRELOAD, THREAD_VARIABLES, KillKind, KillReason,
                                      LocalExecutor, Outcome, OutcomeKind)
from milo_tui.engine.worker import TrainTask
from milo_tui.memory.cleanup import CleanupReport, cleanup, default_temp_roots
from milo_tui.memory.limits import resolve_limit
from milo_tui.memory.sampler import sample_tree


def allow_children() -> None:
    """Let this Dask worker process start processes of its own.

    A nanny starts its worker as a daemonic process (distributed.worker.daemon,
    True by default) and multiprocessing refuses children to daemons. milo's
    children are never left behind without that flag: the plugin kills them at
    teardown, and milo_tui.engine.childguard makes them die with their forkserver,
    which dies with this worker.
    """
    current = multiprocessing.current_process()
    if current.daemon:
        current._config["daemon"] = False  # the public setter refuses a started process


def node_root() -> Path:
    """This user's private directory on the node (created 0700; refused if anyone else could use it)."""
    base = Path(os.environ.get("MILO_NODE_DIR") or tempfile.gettempdir())
    root = base / f"milo-node-{os.getuid()}"
    try:
        root.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = os.lstat(root)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise RuntimeError(f"{root} is not a private directory of this user (a link, someone else's, or "
                           "readable by others); remove it or set MILO_NODE_DIR to another place")
    for sub in ("data", "tasks"):
        (root / sub).mkdir(mode=0o700, exist_ok=True)
    return root


def install_data(root: Path, fingerprint: str, arrays: dict[str, bytes]) -> Path:
    """Write the arrays once under root/data/<fingerprint>/; a copy already there is reused."""
    target = root / "data" / fingerprint
    if target.is_dir() and not target.is_symlink():
        return target
    if data_fingerprint(arrays) != fingerprint:
        raise RuntimeError("the data arrived damaged (its fingerprint does not match)")
    staging = Path(tempfile.mkdtemp(prefix="incoming-", dir=root / "data"))
    try:
        for name, data in arrays.items():
            with open(staging / Path(name).name, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        try:
            staging.rename(target)
        except OSError:  # another worker on this host installed it first
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def remove_orphaned_tasks(root: Path) -> None:
    """Drop task directories of Dask workers on this host that died mid-task (named task-<pid>-...).

    Directories of live workers (several may share a host) are left alone.
    """
    for workdir in (root / "tasks").glob("task-*"):
        try:
            pid = int(workdir.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if not psutil.pid_exists(pid) and not workdir.is_symlink():
            shutil.rmtree(workdir, ignore_errors=True)


class MiloNode(WorkerPlugin):
    """Held by each Dask worker for one run: the forkserver, the data, the running children."""

    name = PLUGIN_NAME
    idempotent = False  # a new run (new data) replaces the previous run's plugin

    def __init__(self, fingerprint: str, arrays: dict[str, bytes], memory_budget: int | None,
                 critical: float = 0.85) -> None:
        self.fingerprint = fingerprint
        self.arrays = arrays
        self.memory_budget = memory_budget
        self.critical = critical  # the run's critical threshold: this node's capacity ends there

    async def setup(self, worker) -> None:
        self._prepare(worker)
        self._take_over_pausing(worker)
        # Closed while its capacity is offered (once per run, before any task of the run is here;
        # never changed while a task holds part of it): opening it then makes the scheduler place
        # the tasks that found no node so far, this one included (see open_for_starts).
        self.open_for_starts(False)
        await worker.set_resources(**{MEMORY_RESOURCE: float(self.capacity)})
        self.open_for_starts(True)

    def _prepare(self, worker) -> None:
        allow_children()
        self.worker = worker
        self.host = socket.gethostname()
        self.root = node_root()
        remove_orphaned_tasks(self.root)
        self.data_dir = install_data(self.root, self.fingerprint, self.arrays)
        self.arrays = {}  # on disk now; do not hold a second copy in the worker
        self.limit = resolve_limit(self.memory_budget)
        start_reaper()  # (once per worker; a no-op if the preload did it)
        self.executor: LocalExecutor[str] = LocalExecutor(preload=node_preload())
        self.executor.warm_up(threads_per_worker=1)
        self._lock = threading.Lock()
        self._ended: dict[int, Outcome] = {}
        self.inner_jobs: int | None = None  # set while this node is red: searches here run with n_jobs=1
        # What Dask may place here (its MEMORY_RESOURCE): the room below the critical level left
        # once the worker and its forkserver are up. Each task asks for its footprint estimate.
        idle = sample_tree(os.getpid(), {**self.executor.resources().roles(), os.getpid(): "dask-worker"})
        self.capacity = max(0, int(self.limit.bytes * self.critical) - idle.pss)

    def open_for_starts(self, open_: bool) -> None:
        """Take new pipelines here, or none while this node's memory is red (pipelines running go on).

        Dask's own worker pause does this: the scheduler places nothing new on a paused
        worker (another node may take what waits here), the worker starts nothing queued,
        and when it runs again the scheduler places the tasks that found no node meanwhile.
        Withdrawing the memory resource instead (set to 0, then back) left those tasks
        waiting for good: the scheduler looks for a node again only when a worker joins or
        resumes, not when a resource changes (distributed 2026.8).
        """
        from distributed.core import Status

        if open_ and self.worker.status == Status.paused:
            self.worker.status = Status.running
        elif not open_ and self.worker.status == Status.running:
            self.worker.status = Status.paused

    def _take_over_pausing(self, worker) -> None:
        """Pausing is milo's here: a --memory-limit backstop's memory monitor would otherwise resume a
        worker milo paused (it measures the worker process alone, not the node's training children)."""
        manager = getattr(worker, "memory_manager", None)
        self._dask_pause = getattr(manager, "memory_pause_fraction", False)
        if manager is not None:
            manager.memory_pause_fraction = False

    def teardown(self, worker) -> None:
        self.executor.shutdown()
        self.open_for_starts(True)  # the next run, or other work on this cluster, finds it running
        manager = getattr(worker, "memory_manager", None)
        if manager is not None:
            manager.memory_pause_fraction = self._dask_pause

    # -- one task ------------------------------------------------------------------------------
    def train(self, task_key: str, task: TrainTask, fingerprint: str) -> NodeResult:
        if fingerprint != self.fingerprint:
            return NodeResult(Outcome(OutcomeKind.ERROR, error_type="RuntimeError",
                                      message="this node holds another run's data"), self.host, None)
        workdir = Path(tempfile.mkdtemp(prefix=f"task-{os.getpid()}-", dir=self.root / "tasks"))
        try:
            local = self._localize(task, workdir)
            if self.inner_jobs is not None:  # this node is red: as locally, searches run with fewer jobs
                local = replace(local, n_jobs=min(local.n_jobs, self.inner_jobs))
            with self._lock:
                handle = self.executor.start(local, task_key)
            self.worker.log_event(STARTED_TOPIC, {"key": task_key, "host": self.host, "pid": handle.pid,
                                                  "address": self.worker.address})
            outcome = self._wait_for(handle.task_id)
            if outcome.kind is not OutcomeKind.OK:
                return NodeResult(outcome, self.host, handle.pid)
            return NodeResult(outcome, self.host, handle.pid, models=_read_models(workdir / "models"),
                              class_results=_read_documents(workdir / "class_results"))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _localize(self, task: TrainTask, workdir: Path) -> TrainTask:
        """The same task, pointed at this node's data copy and a private output directory."""
        models, documents = workdir / "models", workdir / "class_results"
        models.mkdir()
        documents.mkdir()
        arrays = {name: str(self.data_dir / Path(path).name) for name, path in task.arrays.items()}
        return replace(task, arrays=arrays, models_dir=str(models), class_results_dir=str(documents))

    def _wait_for(self, task_id: int) -> Outcome:
        # One executor serves every Dask thread of this worker: whichever thread holds the lock
        # collects every outcome that is ready and leaves the others' outcomes for them.
        while True:
            with self._lock:
                if task_id in self._ended:
                    return self._ended.pop(task_id)
                for handle, outcome in self.executor.wait(timeout=0.05):
                    self._ended[handle.task_id] = outcome
                if task_id in self._ended:
                    return self._ended.pop(task_id)

    # -- asked by the engine --------------------------------------------------------------------
    def kill(self, task_key: str, reason: KillReason) -> bool:
        for handle in self.executor.running():
            if handle.unit == task_key:
                self.executor.kill(handle, reason)
                return True
        return False

    def memory(self) -> NodeMemory:
        view = self.executor.resources()
        roles = {**view.roles(), os.getpid(): "dask-worker"}
        sample = sample_tree(os.getpid(), roles)
        by_pid = {p.pid: p.pss for p in sample.processes}
        children = []
        for pid, handle in view.workers().items():
            try:
                members = [pid] + [c.pid for c in psutil.Process(pid).children(recursive=True)]
            except psutil.Error:
                continue
            children.append(ChildMemory(handle.unit, pid, sum(by_pid.get(m, 0) for m in members)))
        return NodeMemory(address=self.worker.address, host=self.host, worker_pid=os.getpid(),
                          pss=sample.pss, rss=sample.rss, system_available=sample.system_available,
                          limit=self.limit, slots=self.worker.state.nthreads, capacity=self.capacity,
                          children=tuple(children))

    def clean_up(self, level: str) -> CleanupReport:
        """The governor's cleanup, here: gc and malloc_trim in the worker, stale joblib/loky temp files."""
        report = cleanup(level, temp_roots=default_temp_roots())
        report.host = self.host
        return report


def _read_models(directory: Path) -> tuple[ModelBytes, ...]:
    models = []
    for path in sorted(directory.glob("*.joblib")):
        data = path.read_bytes()
        models.append(ModelBytes(path.stem, data, hashlib.sha256(data).hexdigest()))
    return tuple(models)


def _read_documents(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.glob("*.json"))}


def _plugin() -> MiloNode:
    plugin = get_worker().plugins.get(PLUGIN_NAME)
    if plugin is None:
        raise RuntimeError("milo's node plugin is not installed on this Dask worker")
    return plugin


# -- the functions the engine sends (module level, so they pickle by reference) ----------------

def train_on_node(task_key: str, task: TrainTask, fingerprint: str) -> NodeResult:
    """A Dask task: train one pipeline in a fresh child of this node's forkserver."""
    return _plugin().train(task_key, task, fingerprint)


async def kill_on_node(task_key: str, kind: str, text: str, dask_worker=None) -> bool:
    """Run by client.run on every node: kill the child training task_key, if it is here.

    A coroutine, because client.run sends only those without waiting for every node's answer.
    """
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    return plugin is not None and plugin.kill(task_key, KillReason(KillKind(kind), text))


def memory_on_node(dask_worker=None) -> NodeMemory | None:
    """Run by client.run on every node: its tree's memory now (None before the plugin is set up)."""
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    return plugin.memory() if plugin is not None else None


async def open_node(open_: bool, dask_worker=None) -> bool:
    """Run by client.run on one node: take new pipelines there again, or none (red).

    A coroutine, so it runs on the worker's event loop, where a worker's status may change.
    """
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    if plugin is None:
        return False
    plugin.open_for_starts(open_)
    return True


def cap_jobs_on_node(n_jobs: int | None, dask_worker=None) -> None:
    """Run by client.run on one node: n_jobs of the searches started there from now (None: as configured)."""
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    if plugin is not None:
        plugin.inner_jobs = n_jobs


def clean_up_on_node(level: str, dask_worker=None) -> CleanupReport | None:
    """Run by client.run on one node: the governor's cleanup at `level`, carried out there."""
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    return plugin.clean_up(level) if plugin is not None else None


def dask_setup(worker) -> None:
    """`dask worker --preload milo_tui.cluster.node`: ready the process and start its forkserver early.

    Only the forkserver's start happens here (milliseconds); it imports scikit-learn in
    its own process while the worker joins the cluster, and the plugin's warm-up later
    waits for that. It must start on this thread, the worker's event loop, which lives as
    long as the worker: the forkserver dies with the thread that started it (Linux's
    parent-death signal follows the thread; see engine/childguard.py), so a warm-up
    thread of its own would take the forkserver, and every training child, with it.
    """
    allow_children()
    start_reaper()  # before the forkserver: everything it starts must carry the worker's token
    try:
        _start_forkserver()
    except Exception as exc:  # the plugin's own warm-up tries again and reports what fails
        print(f"milo node: starting the forkserver failed ({exc}); the first run will start it",
              file=sys.stderr, flush=True)


def node_preload() -> list[str]:
    """The forkserver's preload list on a node: the engine's, plus the worker's main module.

    multiprocessing re-runs the parent's main module (as `__mp_main__`) in every child it starts.
    In a worker of `milo node` that module is distributed.cli.dask_worker, whose imports (Dask)
    took 1.5 s or more in each training child (dask-jobqueue starts workers the same way).
    Imported once in the forkserver, the children's re-run finds every import loaded. Only a main
    module run by name (`python -m`, or a worker spawned from one) is added: multiprocessing's own
    "__main__" preload for a main run from a file is not carried out by Python 3.11's forkserver
    (it looks for a `main_path` key that get_preparation_data never writes), so a worker started
    by the `dask worker` script still re-runs that script, which imports dask.cli, in each child.
    """
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(main_spec, "name", None)
    if not name or name in PRELOAD or name == "__main__":
        return list(PRELOAD)
    last = PRELOAD.index(CHILD_GUARD)  # the guard stays last: only the forkserver imports it
    return [*PRELOAD[:last], name, *PRELOAD[last:]]


def _start_forkserver() -> None:
    from multiprocessing import forkserver

    LocalExecutor(preload=node_preload())  # sets the forkserver's preload list
    for name in THREAD_VARIABLES:  # as LocalExecutor.warm_up(threads_per_worker=1), which MiloNode uses
        os.environ[name] = "1"
    forkserver.ensure_running()
