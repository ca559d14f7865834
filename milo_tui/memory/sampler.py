"""One reading of memory as the OS sees it: PSS summed over a whole process tree.

RSS counts a page shared by N processes N times (forked workers share most of
the interpreter and the memory-mapped data set), so a tree's RSS sum can be
several times what the machine actually spends. PSS charges each shared page
1/N to each sharer, so the sum over a tree is the real cost.

Fast path on Linux: read the children lists from /proc/<pid>/task/*/children
and Rss/Pss from /proc/<pid>/smaps_rollup (one small file per process, no page
table walk per mapping). Fallbacks: psutil.memory_full_info() (which reads the
full smaps when the rollup is refused), then RSS, marked as an overestimate.
Processes that exit while the tree is walked are simply left out.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

PROC = Path("/proc")

# How a ProcessMemory's pss was obtained.
PSS_ROLLUP = "smaps_rollup"
PSS_PSUTIL = "psutil"
PSS_FROM_RSS = "rss"  # PSS unreadable (permissions, no smaps): RSS stands in and overcounts


@dataclass
class ProcessMemory:
    pid: int
    name: str
    role: str
    pss: int
    rss: int
    pss_source: str = PSS_ROLLUP
    swap_pss: int = 0

    @property
    def pss_is_estimate(self) -> bool:
        return self.pss_source == PSS_FROM_RSS


@dataclass
class TreeSample:
    t: float  # time.monotonic() when the sample was taken
    pss: int  # sum over the tree
    rss: int  # sum over the tree (overcounts shared pages; kept for comparison)
    processes: list[ProcessMemory]
    system_total: int
    system_available: int
    system_used: int
    swap_used: int
    duration: float = 0.0  # seconds the sample took to read

    def by_role(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for proc in self.processes:
            totals[proc.role] = totals.get(proc.role, 0) + proc.pss
        return totals


@dataclass(frozen=True)
class SystemMemory:
    total: int
    available: int
    used: int
    swap_used: int


def parse_smaps_rollup(text: str) -> dict[str, int]:
    """'Pss:   394 kB' lines -> {'Pss': 403456, ...} in bytes."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            values[key.strip()] = int(parts[0]) * 1024
    return values


def parse_meminfo(text: str) -> SystemMemory:
    values = parse_smaps_rollup(text)  # same "Key:  n kB" format
    total = values["MemTotal"]
    available = values.get("MemAvailable")
    if available is None:  # kernels before 3.14
        available = values.get("MemFree", 0) + values.get("Buffers", 0) + values.get("Cached", 0)
    swap_used = values.get("SwapTotal", 0) - values.get("SwapFree", 0)
    return SystemMemory(total=total, available=available, used=total - available, swap_used=max(0, swap_used))


def read_system_memory() -> SystemMemory:
    try:
        return parse_meminfo((PROC / "meminfo").read_text())
    except (OSError, KeyError):
        vm, swap = psutil.virtual_memory(), psutil.swap_memory()
        return SystemMemory(total=int(vm.total), available=int(vm.available),
                            used=int(vm.total - vm.available), swap_used=int(swap.used))


def _proc_children(pid: int) -> list[int] | None:
    """Direct children of pid from /proc/<pid>/task/*/children; None if unsupported."""
    task_dir = PROC / str(pid) / "task"
    try:
        tids = os.listdir(task_dir)
    except FileNotFoundError:
        return []  # the process is gone
    except OSError:
        return None
    children: list[int] = []
    for tid in tids:
        try:
            children.extend(int(c) for c in (task_dir / tid / "children").read_text().split())
        except FileNotFoundError:
            if not (task_dir / tid).exists():
                continue  # the thread ended mid-walk
            return None  # kernel without CONFIG_PROC_CHILDREN
        except OSError:
            continue
    return children


def tree_pids(root_pid: int) -> list[int]:
    """root_pid and all its descendants, root first. Empty if the root is gone."""
    if not (PROC / str(root_pid)).exists() and not psutil.pid_exists(root_pid):
        return []
    pids, queue, seen = [root_pid], [root_pid], {root_pid}
    while queue:
        parent = queue.pop()
        children = _proc_children(parent)
        if children is None:
            return _psutil_tree(root_pid)
        for child in children:
            if child not in seen:
                seen.add(child)
                pids.append(child)
                queue.append(child)
    return pids


def _psutil_tree(root_pid: int) -> list[int]:
    try:
        root = psutil.Process(root_pid)
        return [root_pid] + [c.pid for c in root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return []
    except psutil.AccessDenied:
        return [root_pid]


class _Vanished(Exception):
    pass


def _read_rollup(pid: int) -> tuple[int, int, int] | None:
    """(pss, rss, swap_pss) from smaps_rollup; None when it cannot be read."""
    try:
        values = parse_smaps_rollup((PROC / str(pid) / "smaps_rollup").read_text())
    except (FileNotFoundError, ProcessLookupError):
        if not (PROC / str(pid)).exists():
            raise _Vanished from None
        return None  # alive but refused (it happens, see psutil's notes): try psutil
    except OSError:
        return None
    if "Pss" not in values:
        return None  # an empty rollup: a zombie or a kernel thread
    return values["Pss"], values.get("Rss", 0), values.get("SwapPss", 0)


def _read_psutil(pid: int) -> tuple[int, int, str]:
    """(pss, rss, source) via psutil; RSS stands in when PSS is not allowed."""
    try:
        proc = psutil.Process(pid)
        try:
            full = proc.memory_full_info()
            return int(full.pss), int(full.rss), PSS_PSUTIL
        except (psutil.AccessDenied, AttributeError):
            rss = int(proc.memory_info().rss)  # other platforms have no pss field
            return rss, rss, PSS_FROM_RSS
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        raise _Vanished from None


class TreeSampler:
    """Samples a tree repeatedly, caching process names between samples."""

    def __init__(self, use_rollup: bool | None = None) -> None:
        self._names: dict[int, str] = {}
        self._use_rollup = (PROC / "self" / "smaps_rollup").exists() if use_rollup is None else use_rollup

    def _name(self, pid: int) -> str:
        name = self._names.get(pid)
        if name is None:
            try:
                name = psutil.Process(pid).name()
            except psutil.Error:
                name = "?"
            self._names[pid] = name
        return name

    def _measure(self, pid: int) -> tuple[int, int, int, str]:
        if self._use_rollup:
            rollup = _read_rollup(pid)
            if rollup is not None:
                pss, rss, swap_pss = rollup
                return pss, rss, swap_pss, PSS_ROLLUP
        pss, rss, source = _read_psutil(pid)
        return pss, rss, 0, source

    def sample(self, root_pid: int, roles: dict[int, str] | None = None) -> TreeSample:
        started = time.monotonic()
        roles = roles or {}
        processes: list[ProcessMemory] = []
        for pid in tree_pids(root_pid):
            try:
                pss, rss, swap_pss, source = self._measure(pid)
            except _Vanished:
                continue
            role = roles.get(pid) or ("engine" if pid == root_pid else "child")
            processes.append(ProcessMemory(pid=pid, name=self._name(pid), role=role, pss=pss, rss=rss,
                                           pss_source=source, swap_pss=swap_pss))
        alive = {p.pid for p in processes}
        for pid in [p for p in self._names if p not in alive]:
            del self._names[pid]  # a pid may be reused by another program later
        system = read_system_memory()
        return TreeSample(t=started, pss=sum(p.pss for p in processes), rss=sum(p.rss for p in processes),
                          processes=processes, system_total=system.total,
                          system_available=system.available, system_used=system.used,
                          swap_used=system.swap_used, duration=time.monotonic() - started)


def sample_tree(root_pid: int, roles: dict[int, str] | None = None) -> TreeSample:
    """PSS and RSS of root_pid and all its descendants, plus system memory.

    `roles` names processes for the dashboard (e.g. {pid: "worker"}); unnamed
    ones are "engine" (the root) or "child".
    """
    return TreeSampler().sample(root_pid, roles)
