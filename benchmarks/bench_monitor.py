"""What does watching memory cost? The monitor's CPU time as a share of one core.

Starts a tree like a run's: this process (the "engine") and N worker processes
each holding some memory, then runs the MemoryMonitor at the configured
interval for a while and reports the CPU time it used. Side by side, in the
same run, it times one sample through each way of reading PSS:

  exact    - /proc/<pid>/task/*/children + /proc/<pid>/smaps_rollup (the monitor's exact pass)
  carried  - the last exact PSS carried forward by RSS from /proc/<pid>/statm (the monitor's
             pass between exact ones; it spends at most 0.4 % of a core on exact passes)
  psutil   - psutil children(recursive=True) + memory_full_info()
  smaps    - the full /proc/<pid>/smaps, summed (what older tools parse)

Usage: python benchmarks/bench_monitor.py [--workers 3] [--seconds 10] [--interval 0.5] [--hold-mb 64]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

import psutil

from milo_tui.memory.monitor import MemoryMonitor
from milo_tui.memory.sampler import TreeSampler

WORKER = "import sys; held = b'\\x01' * ({mb} * 1024 * 1024); print('ready', flush=True); sys.stdin.read()"
PSS_LINE = re.compile(rb"^Pss:\s+(\d+)", re.MULTILINE)


def start_workers(count: int, hold_mb: int) -> list[subprocess.Popen]:
    workers = [subprocess.Popen([sys.executable, "-c", WORKER.format(mb=hold_mb)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for _ in range(count)]
    for worker in workers:
        worker.stdout.readline()
    return workers


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.stdin.close()
    for worker in workers:
        worker.wait(timeout=10)


def psutil_sample(root_pid: int) -> int:
    root = psutil.Process(root_pid)
    total = 0
    for proc in [root] + root.children(recursive=True):
        try:
            total += proc.memory_full_info().pss
        except psutil.Error:
            pass
    return total


def smaps_sample(root_pid: int) -> int:
    root = psutil.Process(root_pid)
    total = 0
    for proc in [root] + root.children(recursive=True):
        try:
            with open(f"/proc/{proc.pid}/smaps", "rb") as handle:
                total += sum(int(kb) for kb in PSS_LINE.findall(handle.read())) * 1024
        except OSError:
            pass
    return total


def time_per_call(function, repeats: int) -> tuple[float, int]:
    """(median CPU seconds per call, last result)."""
    costs, result = [], 0
    for _ in range(repeats):
        started = time.thread_time()
        result = function()
        costs.append(time.thread_time() - started)
    return statistics.median(costs), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--hold-mb", type=int, default=64)
    args = parser.parse_args()

    root = os.getpid()
    workers = start_workers(args.workers, args.hold_mb)
    try:
        sampler = TreeSampler()
        exact_cost, exact_pss = time_per_call(lambda: sampler.sample(root, exact=True).pss, 50)
        carried_cost, carried_pss = time_per_call(lambda: sampler.sample(root, exact=False).pss, 50)
        psutil_cost, psutil_pss = time_per_call(lambda: psutil_sample(root), 50)
        smaps_cost, smaps_pss = time_per_call(lambda: smaps_sample(root), 50)

        samples = []
        monitor = MemoryMonitor(root, args.interval, samples.append)
        process_cpu_before, wall_before = time.process_time(), time.monotonic()
        monitor.start()
        time.sleep(args.seconds)  # the main thread idles, so the process's CPU time is the monitor's
        monitor.stop()
        wall = time.monotonic() - wall_before
        process_cpu = time.process_time() - process_cpu_before
    finally:
        stop_workers(workers)

    processes = len(samples[-1].processes)
    print(f"Tree: {processes} processes (this one + {args.workers} workers holding {args.hold_mb} MiB each); "
          f"{os.cpu_count()} cores; {len(psutil.pids())} processes on the machine")
    print(f"Monitor: {monitor.samples} samples at {args.interval} s over {wall:.1f} s")
    print(f"  CPU time in the monitor thread:   {monitor.cpu_seconds * 1000:8.1f} ms "
          f"= {100 * monitor.cpu_seconds / wall:.3f} % of one core")
    print(f"  CPU time of the whole process:    {process_cpu * 1000:8.1f} ms "
          f"= {100 * process_cpu / wall:.3f} % of one core (includes the idle main thread)")
    print(f"  budget: < 1 % of one core -> {'OK' if monitor.cpu_seconds / wall < 0.01 else 'OVER'}")
    print("One sample, median CPU time (same tree, same run):")
    print(f"  exact (rollup)   {exact_cost * 1000:7.2f} ms   tree PSS {exact_pss / 2**20:7.1f} MiB")
    print(f"  carried (statm)  {carried_cost * 1000:7.2f} ms   tree PSS {carried_pss / 2**20:7.1f} MiB   "
          f"{carried_cost / exact_cost:5.2f}x the exact pass")
    print(f"  psutil           {psutil_cost * 1000:7.2f} ms   tree PSS {psutil_pss / 2**20:7.1f} MiB   "
          f"{psutil_cost / exact_cost:5.2f}x the exact pass")
    print(f"  full smaps       {smaps_cost * 1000:7.2f} ms   tree PSS {smaps_pss / 2**20:7.1f} MiB   "
          f"{smaps_cost / exact_cost:5.2f}x the exact pass")
    exact_share = sum(s.exact for s in samples) / len(samples)
    print(f"  {100 * exact_share:.0f} % of the monitor's samples were exact passes")
    rss = samples[-1].rss
    print(f"Tree RSS sum {rss / 2**20:.1f} MiB vs PSS sum {samples[-1].pss / 2**20:.1f} MiB "
          f"(RSS/PSS {rss / samples[-1].pss:.2f})")


if __name__ == "__main__":
    main()
