"""The monitor thread: sample the engine's process tree every `interval` seconds."""

from __future__ import annotations

import threading
import time
from typing import Callable

from milo_tui.memory.sampler import TreeSample, TreeSampler


class MemoryMonitor(threading.Thread):
    """Daemon thread calling `on_sample(sample)` at a steady rate until stop().

    A failing callback or sample is recorded in `errors` (last few kept) and
    the thread carries on: losing the monitor would blind the memory policy
    for the rest of the run.
    """

    MAX_ERRORS = 20

    def __init__(self, root_pid: int, interval: float, on_sample: Callable[[TreeSample], None],
                 roles: Callable[[], dict[int, str]] | None = None) -> None:
        super().__init__(name="milo-memory-monitor", daemon=True)
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.root_pid = root_pid
        self.interval = interval
        self.on_sample = on_sample
        self.roles = roles
        self.latest: TreeSample | None = None
        self.peak_pss = 0
        self.samples = 0
        self.errors: list[str] = []
        self.cpu_seconds = 0.0  # CPU time this thread spent sampling and in the callback
        self._stop_event = threading.Event()
        self._sampler = TreeSampler()

    def run(self) -> None:
        next_due = time.monotonic()
        while not self._stop_event.is_set():
            started_cpu = time.thread_time()
            self._tick()
            self.cpu_seconds += time.thread_time() - started_cpu
            # Keep a steady rate: schedule from the previous due time, not from now,
            # but never try to catch up on missed ticks after a long stall.
            next_due = max(next_due + self.interval, time.monotonic())
            self._stop_event.wait(max(0.0, next_due - time.monotonic()))

    def _tick(self) -> None:
        try:
            roles = self.roles() if self.roles else None
            sample = self._sampler.sample(self.root_pid, roles)
        except Exception as exc:  # noqa: BLE001 - see class docstring
            self._record(f"sample failed: {exc!r}")
            return
        self.latest = sample
        self.peak_pss = max(self.peak_pss, sample.pss)
        self.samples += 1
        try:
            self.on_sample(sample)
        except Exception as exc:  # noqa: BLE001
            self._record(f"on_sample failed: {exc!r}")

    def _record(self, message: str) -> None:
        self.errors.append(message)
        del self.errors[:-self.MAX_ERRORS]

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)
