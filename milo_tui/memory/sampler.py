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
from dataclasses import dataclass
from pathlib import Path

import psutil

PROC = Path("/proc")

# How a ProcessMemory's pss was obtained.
PSS_ROLLUP = "smaps_rollup"
PSS_PSUTIL = "psutil"
PSS_FROM_RSS = "rss"  # PSS unreadable (permissions, no smaps): RSS stands in and overcounts
PSS_CARRIED = "carried"  # the last exact PSS plus the change in RSS since (see TreeSampler)


@dataclass
class ProcessMemory:
    pid: int
    name: str
    role: str
    pss: int
    rss: int
    pss_source: str = PSS_ROLLUP
    swap_pss: int = 0
    cpu_percent: float | None = None  # of one core since the previous sample; None on a process's first

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
    exact: bool = True  # every process's PSS read exactly (not carried forward from RSS)

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


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _read_statm_rss(pid: int) -> int | None:
    """Resident bytes from /proc/<pid>/statm: O(1) for the kernel, unlike smaps_rollup."""
    try:
        fields = (PROC / str(pid) / "statm").read_bytes().split()
        return int(fields[1]) * _PAGE_SIZE
    except FileNotFoundError:
        raise _Vanished from None
    except (OSError, IndexError, ValueError):
        return None


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _read_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process from /proc/<pid>/stat (one small read, like statm)."""
    try:
        text = (PROC / str(pid) / "stat").read_bytes()
        fields = text[text.rindex(b")") + 2:].split()  # after "pid (comm) "; comm may hold spaces
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime (fields 14 and 15)
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class _Known:
    pss: int
    rss: int
    source: str
    swap_pss: int


class TreeSampler:
    """Samples a tree repeatedly, within a CPU budget.

    Reading PSS makes the kernel walk every page of a process (about 0.8 ms
    per 64 MiB resident here), so exact readings of multi-GB workers at 2 Hz
    would cost several % of a core. The sampler therefore spends at most
    `pss_cpu_share` of one core on exact readings: after an exact pass that
    took d seconds of CPU, the next one is due d / pss_cpu_share later. In
    between, each known process's PSS is carried forward by its change in
    RSS (read from statm, which is O(1)); memory a worker allocates is
    private, so it moves PSS and RSS alike. New processes are always read
    exactly. A sample says whether it was exact.
    """

    def __init__(self, use_rollup: bool | None = None, pss_cpu_share: float = 0.004) -> None:
        if pss_cpu_share <= 0:
            raise ValueError("pss_cpu_share must be positive")
        self._names: dict[int, str] = {}
        self._known: dict[int, _Known] = {}
        self._cpu: dict[int, tuple[float, float]] = {}  # pid -> (CPU seconds, monotonic time) last sample
        self._use_rollup = (PROC / "self" / "smaps_rollup").exists() if use_rollup is None else use_rollup
        self._delta_supported = (PROC / "self" / "statm").exists()
        self.pss_cpu_share = pss_cpu_share
        self._next_exact = float("-inf")

    def _name(self, pid: int) -> str:
        name = self._names.get(pid)
        if name is None:
            try:
                name = psutil.Process(pid).name()
            except psutil.Error:
                name = "?"
            self._names[pid] = name
        return name

    def _measure_exact(self, pid: int) -> _Known:
        if self._use_rollup:
            rollup = _read_rollup(pid)
            if rollup is not None:
                pss, rss, swap_pss = rollup
                return _Known(pss, rss, PSS_ROLLUP, swap_pss)
        pss, rss, source = _read_psutil(pid)
        return _Known(pss, rss, source, 0)

    def _measure_carried(self, pid: int, known: _Known) -> _Known:
        rss = _read_statm_rss(pid)
        if rss is None:
            return self._measure_exact(pid)
        if known.source == PSS_FROM_RSS:
            return _Known(rss, rss, PSS_FROM_RSS, 0)
        return _Known(max(0, known.pss + rss - known.rss), rss, PSS_CARRIED, known.swap_pss)

    def sample(self, root_pid: int, roles: dict[int, str] | None = None, *, exact: bool | None = None) -> TreeSample:
        """One sample of the tree. exact=True forces exact PSS, False forbids it (new processes aside)."""
        started, started_cpu = time.monotonic(), time.thread_time()
        if exact is None:
            exact = not self._delta_supported or started >= self._next_exact
        roles = roles or {}
        processes: list[ProcessMemory] = []
        for pid in tree_pids(root_pid):
            known = self._known.get(pid)
            try:
                reading = self._measure_exact(pid) if exact or known is None else self._measure_carried(pid, known)
            except _Vanished:
                continue
            if reading.source != PSS_CARRIED:
                self._known[pid] = reading  # carry forward from exact readings only, so errors do not add up
            role = roles.get(pid) or ("engine" if pid == root_pid else "child")
            processes.append(ProcessMemory(pid=pid, name=self._name(pid), role=role, pss=reading.pss,
                                           rss=reading.rss, pss_source=reading.source, swap_pss=reading.swap_pss,
                                           cpu_percent=self._cpu_percent(pid)))
        self._forget_gone({p.pid for p in processes})
        if exact:
            spent = time.thread_time() - started_cpu
            self._next_exact = time.monotonic() + spent / self.pss_cpu_share
        system = read_system_memory()
        return TreeSample(t=started, pss=sum(p.pss for p in processes), rss=sum(p.rss for p in processes),
                          processes=processes, system_total=system.total,
                          system_available=system.available, system_used=system.used,
                          swap_used=system.swap_used, duration=time.monotonic() - started,
                          exact=all(p.pss_source != PSS_CARRIED for p in processes))

    def _cpu_percent(self, pid: int) -> float | None:
        """CPU use since this process's previous sample, as % of one core (htop's CPU% column)."""
        seconds, now = _read_cpu_seconds(pid), time.monotonic()
        if seconds is None:
            return None
        previous = self._cpu.get(pid)
        self._cpu[pid] = (seconds, now)
        if previous is None or now - previous[1] <= 0:
            return None
        return round(max(0.0, 100 * (seconds - previous[0]) / (now - previous[1])), 1)

    def _forget_gone(self, alive: set[int]) -> None:
        # A pid may be reused by another program later: drop what we knew about it.
        for cache in (self._names, self._known, self._cpu):
            for pid in [p for p in cache if p not in alive]:
                del cache[pid]


def sample_tree(root_pid: int, roles: dict[int, str] | None = None) -> TreeSample:
    """PSS and RSS of root_pid and all its descendants, plus system memory.

    `roles` names processes for the dashboard (e.g. {pid: "worker"}); unnamed
    ones are "engine" (the root) or "child".
    """
    return TreeSampler().sample(root_pid, roles, exact=True)
