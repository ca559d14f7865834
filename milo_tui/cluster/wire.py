"""The plain values that travel between the engine and a cluster node (pickled by Dask).

Kept free of Dask imports so both sides, and the tests, can use them anywhere.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from milo_tui.engine.executor import Outcome
from milo_tui.memory.limits import MemoryLimit

PLUGIN_NAME = "milo-node"
STARTED_TOPIC = "milo-task-started"  # a node says which host and pid run a task
NANNY_RESTART_TOPIC = "worker-restart-memory"  # a nanny restarted its worker for memory (distributed's topic)
MEMORY_RESOURCE = "milo-memory"  # Dask resource: bytes a node has for training children below its critical level


@dataclass(frozen=True)
class ModelBytes:
    """One fitted model file, as the node wrote it, with the hash the engine checks."""

    key: str
    data: bytes
    sha256: str

    def intact(self) -> bool:
        return hashlib.sha256(self.data).hexdigest() == self.sha256


@dataclass(frozen=True)
class NodeResult:
    """What a node sends back for one task: how it ended and, if it ended well, its files."""

    outcome: Outcome
    host: str
    pid: int | None  # the child process that trained it
    models: tuple[ModelBytes, ...] = ()
    class_results: dict[str, bytes] = field(default_factory=dict)  # "<key>.json" -> document


@dataclass(frozen=True)
class ChildMemory:
    task_key: str
    pid: int
    pss: int  # the child and its own children (loky jobs)


@dataclass(frozen=True)
class NodeMemory:
    """One node's reading: its Dask worker's whole process tree, as the OS sees it."""

    address: str
    host: str
    worker_pid: int
    pss: int
    rss: int
    system_available: int
    limit: MemoryLimit  # the node's own: its RAM, cgroup or the run's memory_budget
    slots: int  # pipelines it trains at once (its Dask threads)
    capacity: int  # its MEMORY_RESOURCE: critical level minus what the worker and forkserver use idle
    children: tuple[ChildMemory, ...] = ()

    @property
    def used(self) -> int:
        """The usage to hold against the limit: like memory.report.effective_used, per node."""
        return max(self.pss, self.limit.bytes - self.system_available)


def data_fingerprint(arrays: dict[str, bytes]) -> str:
    """sha256 over the arrays' names and bytes: names the node's cached copy and checks it arrived whole."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(name.encode() + b"\0" + len(arrays[name]).to_bytes(8, "little"))
        digest.update(arrays[name])
    return digest.hexdigest()


def read_arrays(paths: dict[str, str]) -> dict[str, bytes]:
    """The engine's .npy files as bytes, keyed by file name (the node keeps the names)."""
    return {Path(path).name: Path(path).read_bytes() for path in paths.values()}
