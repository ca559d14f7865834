"""PSS over a real forked tree versus RSS, vanished processes, and the parsers."""

import os
import subprocess
import sys
import textwrap
import time
import types

import psutil
import pytest

from milo_tui.memory import sampler as sampler_module
from milo_tui.memory.sampler import (PSS_FROM_RSS, PSS_PSUTIL, PSS_ROLLUP, TreeSampler, parse_meminfo,
                                     parse_smaps_rollup, sample_tree, tree_pids)

MIB = 1024**2
SHARED_MIB = 96
CHILDREN = 3

# A parent that touches SHARED_MIB of memory, then forks CHILDREN children that only
# read it: copy-on-write keeps one physical copy, which RSS counts four times.
FORKED_TREE = textwrap.dedent(f"""
    import os, sys, time
    block = bytearray(b"\\x01") * ({SHARED_MIB} * 1024 * 1024)
    parent = os.getpid()
    for _ in range({CHILDREN}):
        if os.fork() == 0:
            while os.getppid() == parent:   # leave when the parent is gone
                time.sleep(0.05)
            os._exit(0)
    print("ready", flush=True)
    sys.stdin.read()                        # the test closes stdin to end us
""")


@pytest.fixture
def forked_tree():
    proc = subprocess.Popen([sys.executable, "-c", FORKED_TREE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PSS is a Linux measure")
def test_pss_counts_shared_pages_once_where_rss_counts_them_per_process(forked_tree):
    sample = sample_tree(forked_tree.pid, roles={forked_tree.pid: "engine"})
    assert len(sample.processes) == 1 + CHILDREN
    assert sample.processes[0].pid == forked_tree.pid and sample.processes[0].role == "engine"
    assert {p.role for p in sample.processes[1:]} == {"child"}
    assert all(p.pss_source == PSS_ROLLUP for p in sample.processes)
    shared = SHARED_MIB * MIB
    # RSS sees the block in all four processes, PSS splits it: the difference is ~3 blocks.
    assert sample.rss >= (1 + CHILDREN) * shared
    assert sample.pss < 1.5 * shared
    assert sample.rss - sample.pss > 2.5 * shared
    # Cross-check one process against psutil's own reading.
    child = sample.processes[1]
    assert abs(psutil.Process(child.pid).memory_full_info().pss - child.pss) < 8 * MIB


def test_tree_walk_finds_grandchildren():
    script = ("import subprocess, sys; c = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'],"
              " stdin=subprocess.PIPE); print(c.pid, flush=True); sys.stdin.read(); c.stdin.close(); c.wait()")
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(proc.stdout.readline())
        pids = tree_pids(os.getpid())
        assert pids[0] == os.getpid()
        assert proc.pid in pids and grandchild in pids
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def test_a_process_that_vanished_mid_walk_is_left_out(monkeypatch):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    real_tree = sampler_module.tree_pids
    monkeypatch.setattr(sampler_module, "tree_pids", lambda root: real_tree(root) + [gone.pid])
    sample = sample_tree(os.getpid())
    assert gone.pid not in [p.pid for p in sample.processes]
    assert sample.processes[0].pid == os.getpid()


def test_vanished_during_psutil_fallback(monkeypatch):
    def no_such(pid):
        raise psutil.NoSuchProcess(pid)

    monkeypatch.setattr(sampler_module.psutil, "Process", no_such)
    sample = TreeSampler(use_rollup=False).sample(os.getpid())
    assert sample.processes == [] and sample.pss == 0


def test_rss_stands_in_and_is_marked_when_pss_is_denied(monkeypatch):
    class Denied:
        def __init__(self, pid):
            self.pid = pid

        def memory_full_info(self):
            raise psutil.AccessDenied(self.pid)

        def memory_info(self):
            return types.SimpleNamespace(rss=123 * MIB)

        def name(self):
            return "denied"

    monkeypatch.setattr(sampler_module.psutil, "Process", Denied)
    monkeypatch.setattr(sampler_module, "tree_pids", lambda root: [root])
    sample = TreeSampler(use_rollup=False).sample(os.getpid())
    (proc,) = sample.processes
    assert proc.pss_source == PSS_FROM_RSS and proc.pss_is_estimate
    assert proc.pss == proc.rss == 123 * MIB


def test_psutil_path_when_rollup_is_not_used():
    sample = TreeSampler(use_rollup=False).sample(os.getpid())
    me = sample.processes[0]
    assert me.pss_source in (PSS_PSUTIL, PSS_FROM_RSS)
    assert me.pss > 0 and me.rss >= me.pss


def test_missing_root_gives_an_empty_sample():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    sample = sample_tree(gone.pid)
    assert sample.processes == [] and sample.pss == 0 and sample.system_total > 0


def test_system_memory_is_consistent():
    sample = sample_tree(os.getpid())
    assert sample.system_total == sample.system_used + sample.system_available
    assert 0 < sample.system_available <= sample.system_total
    assert sample.swap_used >= 0


def test_parse_smaps_rollup():
    text = ("55a5f4251000-7ffe04df0000 ---p 00000000 00:00 0    [rollup]\n"
            "Rss:                1680 kB\nPss:                 394 kB\nSwapPss:    2 kB\nbogus line\n")
    assert parse_smaps_rollup(text) == {"Rss": 1680 * 1024, "Pss": 394 * 1024, "SwapPss": 2048}


def test_parse_meminfo_with_and_without_memavailable():
    full = "MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 600 kB\nSwapTotal: 50 kB\nSwapFree: 20 kB\n"
    system = parse_meminfo(full)
    assert (system.total, system.available, system.used, system.swap_used) == (1024000, 614400, 409600, 30720)
    old = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 90 kB\n"
    assert parse_meminfo(old).available == 200 * 1024


GROWER = "import sys\nfor line in sys.stdin:\n    held = b'\\x01' * int(line)\n    print('ok', flush=True)\n"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="statm and smaps_rollup are Linux files")
def test_between_exact_passes_pss_is_carried_forward_by_rss():
    proc = subprocess.Popen([sys.executable, "-c", GROWER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def hold(mib):
        proc.stdin.write(f"{mib * MIB}\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "ok"

    try:
        hold(16)
        sampler = TreeSampler(pss_cpu_share=1e-9)  # an exact pass is then due only in hours
        first = sampler.sample(proc.pid)
        assert first.exact and first.processes[0].pss_source == PSS_ROLLUP
        hold(96)
        carried = sampler.sample(proc.pid)
        assert not carried.exact and carried.processes[0].pss_source == sampler_module.PSS_CARRIED
        exact = sampler.sample(proc.pid, exact=True)
        assert exact.exact
        assert carried.pss > first.pss + 70 * MIB  # the growth shows without an exact pass
        assert abs(carried.pss - exact.pss) < 4 * MIB
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def test_a_generous_cpu_share_reads_exactly_every_time():
    sampler = TreeSampler(pss_cpu_share=1.0)
    sampler.sample(os.getpid())
    time.sleep(0.05)
    assert sampler.sample(os.getpid()).exact
