"""The monitor thread on a real balloon process, driving the governor through every state."""

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from milo_tui.events import MSG_CRITICAL, MSG_WARNING
from milo_tui.memory.forecast import Forecast
from milo_tui.memory.governor import Alert, Governor, PauseStarts, ResumeStarts, SetInnerJobs
from milo_tui.memory.limits import resolve_limit
from milo_tui.memory.monitor import MemoryMonitor
from milo_tui.memory.report import effective_used, memory_event
from milo_tui.memory.sampler import sample_tree
from milo_tui.memory.status import GREEN, RED, YELLOW, Thresholds
from engine_helpers import wait_for

MIB = 1024**2

# A worker stand-in whose memory the test sets: "N\n" -> hold N bytes (touched), answers "ok".
BALLOON = textwrap.dedent("""
    import sys
    held = b""
    for line in sys.stdin:
        held = b""
        held = b"\\x01" * int(line)
        print("ok", flush=True)
""")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PSS sampling is Linux-only")


class Balloon:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", BALLOON], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def hold(self, n_bytes: int) -> None:
        self.proc.stdin.write(f"{max(0, int(n_bytes))}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture
def balloon():
    b = Balloon()
    yield b
    b.close()


def test_monitor_drives_the_governor_through_yellow_red_and_back(balloon):
    root = os.getpid()
    base = sample_tree(root).pss
    limit = resolve_limit(base + 300 * MIB, physical=os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"),
                          cgroup=None)
    governor = Governor(limit, Thresholds(), critical_grace=600, forecast_horizon=1)
    actions, statuses, lock = [], [], threading.Lock()

    def on_sample(sample):
        with lock:
            actions.extend(governor.on_sample(effective_used(sample, limit), training=1))
            statuses.append(governor.status)

    monitor = MemoryMonitor(root, 0.05, on_sample, roles=lambda: {balloon.proc.pid: "worker"})
    monitor.start()
    try:
        def hold_share(share):  # make the whole tree use `share` of the limit
            current = monitor.latest.pss
            worker = next(p.pss for p in monitor.latest.processes if p.pid == balloon.proc.pid)
            balloon.hold(worker + share * limit.bytes - current - 4 * MIB)

        assert wait_for(lambda: monitor.latest is not None and any(
            p.pid == balloon.proc.pid for p in monitor.latest.processes))
        hold_share(0.80)
        assert wait_for(lambda: governor.status == YELLOW), monitor.latest.pss / limit.bytes
        hold_share(0.90)
        assert wait_for(lambda: governor.status == RED), monitor.latest.pss / limit.bytes
        assert monitor.peak_pss >= governor.critical_bytes
        balloon.hold(0)
        assert wait_for(lambda: governor.status == GREEN)
    finally:
        monitor.stop()
    assert not monitor.is_alive() and monitor.errors == []
    with lock:
        messages = [a.message for a in actions if isinstance(a, Alert)]
        assert MSG_WARNING in messages and MSG_CRITICAL in messages
        assert messages.index(MSG_WARNING) < messages.index(MSG_CRITICAL)
        assert any(isinstance(a, PauseStarts) for a in actions) and SetInnerJobs(1) in actions
        assert ResumeStarts() in actions and SetInnerJobs(None) in actions
    worker = next(p for p in monitor.latest.processes if p.pid == balloon.proc.pid)
    assert worker.role == "worker" and monitor.latest.processes[0].role == "engine"


def test_a_killed_worker_vanishes_without_errors(balloon):
    samples = []
    monitor = MemoryMonitor(os.getpid(), 0.02, samples.append)
    monitor.start()
    try:
        balloon.hold(64 * MIB)
        assert wait_for(lambda: samples and any(p.pid == balloon.proc.pid and p.pss > 60 * MIB
                                                for p in samples[-1].processes))
        balloon.proc.kill()  # what the engine does to a runaway worker
        balloon.proc.wait(timeout=10)
        count = len(samples)
        assert wait_for(lambda: len(samples) > count + 3)
    finally:
        monitor.stop()
    assert monitor.errors == []
    assert all(p.pid != balloon.proc.pid for p in samples[-1].processes)
    assert monitor.peak_pss >= 64 * MIB


def test_a_failing_callback_does_not_kill_the_monitor():
    calls = []

    def flaky(sample):
        calls.append(sample)
        if len(calls) == 2:
            raise RuntimeError("boom")

    monitor = MemoryMonitor(os.getpid(), 0.01, flaky)
    monitor.start()
    assert wait_for(lambda: len(calls) >= 5)
    monitor.stop()
    assert len(monitor.errors) == 1 and "boom" in monitor.errors[0]
    assert monitor.samples >= 5 and monitor.cpu_seconds > 0


def test_stop_is_prompt_even_with_a_long_interval():
    monitor = MemoryMonitor(os.getpid(), 30.0, lambda s: None)
    monitor.start()
    assert wait_for(lambda: monitor.samples == 1)
    started = time.monotonic()
    monitor.stop()
    assert time.monotonic() - started < 2 and not monitor.is_alive()


def test_memory_event_payload():
    sample = sample_tree(os.getpid(), roles={os.getpid(): "engine"})
    limit = resolve_limit(4 * 1024**3, physical=24 * 1024**3, cgroup=None)
    event = memory_event(sample, limit, YELLOW, peak=2 * 1024**3, forecast=Forecast(1e6, 42.0, 99.0, True),
                         completed=847, total=1200, remaining_peak=1_500_000_000)
    assert event["status"] == YELLOW and event["used_bytes"] == sample.pss
    assert event["limit_bytes"] == limit.bytes and event["limit_source"] == "budget"
    assert event["percent"] == round(100 * sample.pss / limit.bytes, 1)
    assert event["peak_bytes"] == 2 * 1024**3
    assert event["models_completed"] == 847 and event["models_total"] == 1200
    assert event["estimated_remaining_peak_bytes"] == 1_500_000_000
    assert (event["seconds_to_critical"], event["seconds_to_limit"]) == (42.0, 99.0)
    assert event["processes"][0] == {"pid": os.getpid(), "role": "engine", "name": sample.processes[0].name,
                                     "pss_bytes": sample.processes[0].pss, "pss_estimated": False,
                                     "cpu_percent": sample.processes[0].cpu_percent}
    for key in ("system_available_bytes", "system_used_bytes", "swap_used_bytes"):
        assert isinstance(event[key], int)
    assert memory_event(sample, limit, GREEN, 0, None, 0, 0, 0)["seconds_to_critical"] is None


def test_effective_used_counts_a_crowded_machine():
    sample = sample_tree(os.getpid())
    roomy = resolve_limit(sample.system_available // 2, physical=sample.system_total, cgroup=None)
    assert effective_used(sample, roomy) == sample.pss
    crowded = resolve_limit(None, physical=sample.system_total, cgroup=None)
    assert effective_used(sample, crowded) == max(sample.pss, sample.system_used)


def test_memory_alert_and_cleanup_payloads_match_the_event_schema():
    import json
    from pathlib import Path

    import jsonschema

    import milo_tui
    from milo_tui.memory.cleanup import cleanup
    from milo_tui.memory.governor import Governor

    schema = json.loads((Path(milo_tui.__file__).parent / "schema" / "events.schema.json").read_text())
    sample = sample_tree(os.getpid())
    limit = resolve_limit(sample.pss * 2, physical=24 * 1024**3, cgroup=None)
    clock = iter(range(1000)).__next__
    governor = Governor(limit, Thresholds(), critical_grace=1, forecast_horizon=60, clock=lambda: float(clock()))
    actions = [a for used in (0.5, 0.8, 0.9, 0.9, 0.9, 0.9) for a in governor.on_sample(int(used * limit.bytes))]
    alerts = [a for a in actions if isinstance(a, Alert)]
    assert {a.level for a in alerts} >= {"warning", "critical", "emergency"}
    payloads = [("memory", memory_event(sample, limit, GREEN, sample.pss, governor.forecast, 1, 2, 3)),
                ("cleanup", cleanup("warning").as_event())] + [("alert", a.as_event()) for a in alerts]
    for etype, data in payloads:
        event = {"v": 1, "seq": 0, "ts": 0.0, "type": etype, "data": json.loads(json.dumps(data))}
        jsonschema.validate(event, schema)
