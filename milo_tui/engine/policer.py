"""The memory policer: owns the monitor thread and the governor, and carries out what it decides.

The monitor samples the engine's process tree (PSS) on its own thread and
hands the governor's actions to the training loop through a queue; the loop
calls `carry_out()` between waits, so every action runs on one thread. Each
action type is dispatched by `match`, and none is dropped silently.
"""

from __future__ import annotations

import os
import queue
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import psutil

from milo_tui import events as ev
from milo_tui.config import format_size
from milo_tui.engine.executor import Executor, KillKind, KillReason, ProcessRole
from milo_tui.engine.plan import Unit
from milo_tui.errors import MiloError
from milo_tui.memory.cleanup import CleanupReport
from milo_tui.memory.cleanup import cleanup as run_cleanup
from milo_tui.memory.estimate import FootprintEstimator
from milo_tui.memory.governor import (Alert, Cleanup, Governor, PauseStarts, ResumeStarts, SetInnerJobs,
                                      StopRun, ovr_check)
from milo_tui.memory.limits import MemoryLimit
from milo_tui.memory.monitor import MemoryMonitor
from milo_tui.memory.report import effective_used, memory_event
from milo_tui.memory.sampler import TreeSample, sample_tree
from milo_tui.memory.status import RED, Thresholds

Emit = Callable[..., None]


class MemoryStop(MiloError):
    """The governor decided the run must stop for memory (the loop closes the books)."""


@dataclass(frozen=True)
class Progress:
    """What the memory event reports beside memory: models done, planned, and still to start."""

    completed: int
    total: int
    pending: list[Unit]


class MemoryPolicer:
    def __init__(self, memory_settings: dict, limit: MemoryLimit, executor: Executor[Unit],
                 estimator: FootprintEstimator, *, workers: int, n_jobs: int, emit: Emit,
                 progress: Callable[[], Progress]) -> None:
        self.settings = memory_settings
        self.limit = limit
        self.thresholds = Thresholds(memory_settings["warning"], memory_settings["critical"])
        self.governor = Governor(limit, self.thresholds, critical_grace=memory_settings["critical_grace"],
                                 forecast_horizon=memory_settings["forecast_horizon"])
        self.executor = executor
        self.estimator = estimator
        self.workers = workers
        self.configured_jobs = n_jobs
        self.inner_jobs = n_jobs  # n_jobs of the searches started next (SetInnerJobs changes it)
        self.starts_paused = False  # PauseStarts / ResumeStarts
        self.emit = emit
        self.progress = progress
        self.last_used = 0
        self.peak_used = 0
        self._inbox: "queue.Queue[object]" = queue.Queue()
        self._monitor: MemoryMonitor | None = None

    # -- the monitor thread ----------------------------------------------------------------

    def start(self) -> None:
        """Start sampling; returns after the first reading, so no model starts blind."""
        self._monitor = MemoryMonitor(os.getpid(), self.settings["sample_interval"], self._on_sample,
                                      roles=self.roles)
        self._monitor.start()
        deadline = time.monotonic() + 10
        while self._monitor.samples == 0 and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.stop()

    def roles(self) -> dict[int, str]:
        return {os.getpid(): ProcessRole.ENGINE.value, **self.executor.resources().roles()}

    def _on_sample(self, sample: TreeSample) -> None:
        """Monitor thread: decide, then hand the actions (and the sample) to the loop."""
        used = effective_used(sample, self.limit)
        self.last_used = used
        self.peak_used = max(self.peak_used, sample.pss)
        for action in self.governor.on_sample(used, training=len(self.executor.running())):
            self._inbox.put(action)
        self._inbox.put(sample)

    # -- the loop's side -------------------------------------------------------------------

    def carry_out(self) -> None:
        """Everything queued since the last call. Raises MemoryStop when the governor says stop."""
        # A cluster executor's node governors decide too (alerts naming the node, a safe stop).
        for action in getattr(self.executor, "drain_actions", list)():
            self._inbox.put(action)
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            self._dispatch(item)

    def _dispatch(self, item: object) -> None:
        match item:
            case TreeSample() as sample:
                self._memory_event(sample)
                if self.governor.status == RED:
                    self._kill_runaway(sample)
            case Alert() as alert:
                self.emit(ev.ALERT, **alert.as_event())
            case Cleanup(level=level):
                report = run_cleanup(level, temp_roots=_temp_roots())
                self.emit(ev.CLEANUP, **report.as_event())
            case CleanupReport() as report:  # a cluster node's governor had it carried out on that node
                self.emit(ev.CLEANUP, **report.as_event())
            case PauseStarts(reason=reason):
                self.starts_paused = True
                self.emit(ev.LOG, level="info", message=f"New models wait: {reason}")
            case ResumeStarts():
                self.starts_paused = False
                self.emit(ev.LOG, level="info", message="New models start again")
            case SetInnerJobs(n_jobs=n_jobs):
                self.inner_jobs = n_jobs if n_jobs else self.configured_jobs
            case StopRun(reason=reason):
                raise MemoryStop(f"{ev.MSG_STOPPED}: {reason}. Every finished model is archived; free memory "
                                 "or raise memory_budget, then `milo run PROJECT --resume`.")
            case _:
                raise TypeError(f"the memory governor sent an action the engine does not know: {item!r}")

    def admit(self, unit: Unit) -> tuple[str, str]:
        """("start" | "wait" | "skip", reason) for the unit about to start; sets its estimate."""
        unit.estimate = self.estimator.estimate(unit.spec.algorithm, unit.spec.selector, unit.spec.searcher)
        if self.starts_paused:
            return "wait", "memory is critical; new models wait"
        others_running = bool(self.executor.running())
        node_admission = getattr(self.executor, "admit", None)
        if node_admission is not None:  # a cluster: the model trains on a node, so the nodes' memory decides
            return node_admission(unit.estimate, others_running=others_running)
        return self.governor.decide(unit.estimate, self.last_used, others_running=others_running)

    def n_jobs_for(self, unit: Unit) -> int:
        return 1 if unit.attempt > 1 else self.inner_jobs

    def observe(self, unit: Unit, peak_bytes: int | None) -> None:
        """A task finished and its runner measured its peak: the estimates learn from it."""
        if peak_bytes is not None:
            self.estimator.observe(unit.spec.algorithm, peak_bytes)

    def after_model(self) -> None:
        for action in self.governor.after_model():
            self._inbox.put(action)

    def after_kill(self, unit: Unit) -> tuple[str, str]:
        """A worker was killed for memory: ("retry" | "skip", how)."""
        return self.governor.after_kill(unit.unit_id, unit.estimate)

    def ovr_check(self, main_models: list[tuple[str, str, str]]) -> tuple[str, str, int]:
        """Before the OvR phase: (verdict, message, projected peak bytes) on a fresh reading."""
        estimate = self.estimator.remaining_peak(main_models, self.workers)
        self.last_used = effective_used(sample_tree(os.getpid(), self.roles()), self.limit)
        verdict, text = ovr_check(estimate, self.last_used, self.limit, self.thresholds, self.settings["ovr_policy"])
        return verdict, text, estimate

    def _memory_event(self, sample: TreeSample) -> None:
        progress = self.progress()
        remaining = self.estimator.remaining_peak(
            [(u.spec.algorithm, u.spec.selector, u.spec.searcher) for u in progress.pending], self.workers)
        data = memory_event(sample, self.limit, self.governor.status, self.governor.peak, self.governor.forecast,
                            progress.completed, progress.total, remaining, used=effective_used(sample, self.limit))
        nodes = getattr(self.executor, "nodes", None)  # a cluster executor: one governor per node
        if nodes is not None:
            data["nodes"] = nodes()
        self.emit(ev.MEMORY, **data)

    def _kill_runaway(self, sample: TreeSample) -> None:
        """Red: kill the largest worker once the tree passes the kill line."""
        by_pid = {p.pid: p.pss for p in sample.processes}
        host = socket.gethostname()  # pids are per machine: a cluster node's workers are its own governor's
        workers = {pid: h for pid, h in self.executor.resources().workers().items() if h.host == host}
        trees: dict[int, int] = {}
        for pid in workers:
            try:
                members = [pid] + [c.pid for c in psutil.Process(pid).children(recursive=True)]
            except psutil.Error:
                continue
            trees[pid] = sum(by_pid.get(member, 0) for member in members)
        used = effective_used(sample, self.limit)
        victim = self.governor.runaway(used, trees)
        if victim is None:
            return
        unit = workers[victim].unit
        allowance = self.governor.worker_allowance(used, trees[victim])
        self.executor.kill(workers[victim], KillReason(KillKind.MEMORY, (
            f"the worker used {format_size(trees[victim])}, over its allowance of "
            f"{format_size(allowance)} (estimate {format_size(unit.estimate)}, "
            f"{format_size(self.limit.bytes)} {self.limit.source} limit)")))


def _temp_roots() -> list[Path]:
    roots = [Path(tempfile.gettempdir())]
    shm = Path("/dev/shm")
    if shm.is_dir():
        roots.append(shm)
    return roots
