"""The memory policy, state by state, with a fake clock and made-up readings."""

import pytest

from milo_tui.config import format_size
from milo_tui.events import MSG_CRITICAL, MSG_OPTIMIZING, MSG_STOPPED, MSG_WARNING
from milo_tui.memory.governor import (Alert, Cleanup, Governor, PauseStarts, ResumeStarts, SetInnerJobs,
                                      StopRun, governor_from_config, ovr_check)
from milo_tui.memory.limits import resolve_limit
from milo_tui.memory.status import GREEN, RED, YELLOW, Thresholds

MB = 1_000_000
LIMIT = resolve_limit(1000 * MB, physical=24_000 * MB, cgroup=None)  # a 1 GB memory_budget


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def make(grace=30.0, horizon=120.0, **options):
    clock = Clock()
    return Governor(LIMIT, Thresholds(), critical_grace=grace, forecast_horizon=horizon, clock=clock,
                    **options), clock


def step(gov, clock, used_mb, dt=0.5, **kwargs):
    clock.now += dt
    return gov.on_sample(int(used_mb * MB), **kwargs)


def alerts(actions):
    return [(a.level, a.message) for a in actions if isinstance(a, Alert)]


def test_green_is_quiet():
    gov, clock = make()
    for _ in range(20):
        assert step(gov, clock, 300) == []
    assert gov.status == GREEN and gov.peak == 300 * MB


def test_warning_alerts_once_and_cleans_up():
    gov, clock = make()
    step(gov, clock, 300)
    actions = step(gov, clock, 780)
    assert alerts(actions) == [("warning", MSG_WARNING)]
    assert Cleanup("warning") in actions
    assert gov.status == YELLOW
    repeated = [a for _ in range(10) for a in step(gov, clock, 780)]
    assert alerts(repeated) == []  # no spam while it stays yellow


def test_yellow_repeats_cleanup_at_its_interval_without_new_alerts():
    gov, clock = make(cleanup_interval=5.0)
    step(gov, clock, 780)
    later = [a for _ in range(12) for a in step(gov, clock, 780)]  # 6 s later
    assert later.count(Cleanup("warning")) == 1 and alerts(later) == []


def test_critical_pauses_starts_and_shrinks_parallelism_then_recovers():
    gov, clock = make()
    step(gov, clock, 300)
    actions = step(gov, clock, 900)
    assert alerts(actions) == [("critical", MSG_CRITICAL)]
    assert Cleanup("critical") in actions and SetInnerJobs(1) in actions
    assert any(isinstance(a, PauseStarts) for a in actions)
    assert gov.status == RED and gov.paused
    assert gov.decide(10 * MB, 900 * MB, others_running=False)[0] == "wait"
    assert step(gov, clock, 840, training=1) == [] and gov.status == RED  # hysteresis: still red at 84 %
    back = step(gov, clock, 780, training=1)
    assert ResumeStarts() in back and SetInnerJobs(None) in back
    assert [level for level, _ in alerts(back)] == ["info"]
    assert gov.status == YELLOW and not gov.paused


def test_alert_detail_names_usage_and_limit():
    gov, clock = make()
    (alert,) = [a for a in step(gov, clock, 900) if isinstance(a, Alert)]
    assert alert.data["used_bytes"] == 900 * MB and alert.data["limit_bytes"] == 1000 * MB
    assert alert.data["limit_source"] == "budget" and alert.data["percent"] == 90.0
    assert isinstance(alert.detail, str) and "90%" in alert.detail and f"{format_size(LIMIT.bytes)} budget limit" in alert.detail
    event = alert.as_event()
    assert event["level"] == "critical" and event["message"] == MSG_CRITICAL and event["detail"] == alert.detail


def test_safe_stop_after_grace_with_nothing_training():
    gov, clock = make(grace=10.0)
    step(gov, clock, 900, training=1)
    for _ in range(40):  # 20 s red while a model still trains: it may finish and free memory
        assert not any(isinstance(a, StopRun) for a in step(gov, clock, 900, training=1))
    stopped = []
    for _ in range(25):  # nothing training now: 10 s of grace, then stop
        stopped += step(gov, clock, 900, training=0)
    stops = [a for a in stopped if isinstance(a, StopRun)]
    assert len(stops) == 1 and f"{format_size(LIMIT.bytes)} budget limit" in stops[0].reason
    assert ("emergency", MSG_STOPPED) in alerts(stopped)
    assert gov.stopped and step(gov, clock, 900) == [] and gov.after_model() == []


def test_grace_clock_restarts_when_memory_recovers():
    gov, clock = make(grace=10.0)
    for _ in range(15):
        step(gov, clock, 900, training=0)     # 7.5 s red
    step(gov, clock, 500, training=0)         # recovered
    for _ in range(15):
        assert not any(isinstance(a, StopRun) for a in step(gov, clock, 900, training=0))


def test_unknown_training_counts_from_entering_red():
    gov, clock = make(grace=2.0)
    out = [a for _ in range(6) for a in step(gov, clock, 950)]
    assert any(isinstance(a, StopRun) for a in out)


def test_predictive_alert_while_still_green():
    gov, clock = make(horizon=60.0)
    out = []
    for i in range(20):  # 2 MB/s rise from 400 MB: green all along, critical ~200 s away at first
        out += step(gov, clock, 400 + 20 * i * 0.5 / 5)
    assert alerts(out) == [] and gov.status == GREEN
    gov2, clock2 = make(horizon=60.0)
    out = []
    for i in range(12):  # 10 MB/s from 400 MB: critical in ~40 s while still green
        out += step(gov2, clock2, 400 + 10 * 0.5 * i)
    predictive = [a for a in out if isinstance(a, Alert)]
    assert len(predictive) == 1 and predictive[0].level == "predictive"
    assert predictive[0].data["predictive"] and predictive[0].data["seconds_to_critical"] < 60
    assert "critical level" in predictive[0].message
    assert Cleanup("warning") in out and gov2.status == GREEN
    more = [a for i in range(12, 16) for a in step(gov2, clock2, 400 + 10 * 0.5 * i)]
    assert alerts(more) == []  # one alert per rise


def test_after_model_green_notice_is_rate_limited():
    gov, clock = make(notice_interval=60.0)
    step(gov, clock, 300)
    first = gov.after_model()
    assert alerts(first) == [("info", MSG_OPTIMIZING)] and Cleanup("normal") in first
    clock.now += 10
    assert alerts(gov.after_model()) == [] and Cleanup("normal") in gov.after_model()
    clock.now += 61
    assert alerts(gov.after_model()) == [("info", MSG_OPTIMIZING)]


def test_after_model_cleans_harder_when_not_green():
    gov, clock = make()
    step(gov, clock, 800)
    assert gov.after_model() == [Cleanup("warning")]
    step(gov, clock, 900)
    assert gov.after_model() == [Cleanup("critical")]


def test_admit_uses_headroom_below_critical_and_explains():
    gov, _ = make()
    assert gov.admit(300 * MB, 500 * MB) == (True, "")
    fits, reason = gov.admit(400 * MB, 500 * MB)
    assert not fits
    assert format_size(400 * MB) in reason and format_size(350 * MB) in reason and f"{format_size(LIMIT.bytes)} budget limit" in reason


def test_decide_waits_while_others_run_and_skips_when_alone():
    gov, _ = make()
    assert gov.decide(400 * MB, 500 * MB, others_running=True)[0] == "wait"
    decision, reason = gov.decide(400 * MB, 500 * MB, others_running=False)
    assert decision == "skip" and f"estimated {format_size(400 * MB)}" in reason
    assert gov.decide(100 * MB, 500 * MB, others_running=True) == ("start", "")


def test_runaway_worker_is_the_largest_past_the_kill_line():
    gov, clock = make()
    assert gov.kill_bytes == 925 * MB
    step(gov, clock, 900)
    workers = {101: 300 * MB, 102: 450 * MB}
    assert gov.runaway(900 * MB, workers) is None                  # red but below the kill line
    assert gov.worker_allowance(900 * MB, 450 * MB) == 475 * MB
    assert gov.runaway(940 * MB, workers) == 102
    gov_green, _ = make()
    assert gov_green.runaway(940 * MB, workers) is None             # only when red


def test_kill_then_retry_once_then_skip():
    gov, _ = make()
    assert gov.after_kill("std__none__rf__grid", 600 * MB)[0] == "retry"
    decision, reason = gov.after_kill("std__none__rf__grid", 600 * MB)
    assert decision == "skip" and format_size(600 * MB) in reason and f"{format_size(LIMIT.bytes)} budget limit" in reason
    assert gov.after_kill("std__none__lr__grid", 100 * MB)[0] == "retry"


def test_governor_from_config_settings():
    memory = {"warning": 0.6, "critical": 0.7, "critical_grace": 5.0, "forecast_horizon": 30.0}
    gov = governor_from_config(memory, LIMIT)
    assert gov.critical_bytes == 700 * MB and gov.critical_grace == 5.0 and gov.forecast_horizon == 30.0


@pytest.mark.parametrize("policy, expected", [("skip", "skip"), ("stop", "stop")])
def test_ovr_check_follows_policy_when_it_does_not_fit(policy, expected):
    decision, message = ovr_check(500 * MB, 400 * MB, LIMIT, Thresholds(), policy)
    assert decision == expected
    assert format_size(500 * MB) in message and format_size(450 * MB) in message and f'ovr_policy = "{policy}"' in message


def test_ovr_check_proceeds_when_it_fits():
    assert ovr_check(400 * MB, 400 * MB, LIMIT, Thresholds(), "stop")[0] == "proceed"
    with pytest.raises(ValueError):
        ovr_check(1, 1, LIMIT, Thresholds(), "maybe")


def test_forecast_of_the_last_sample_is_exposed_for_the_memory_event():
    gov, clock = make()
    assert gov.forecast.seconds_to_critical is None
    for i in range(10):
        step(gov, clock, 400 + 10 * i)
    assert gov.forecast is gov.last_forecast and gov.forecast.seconds_to_critical > 0
