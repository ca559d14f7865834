"""The memory policy: what to do at each reading. Pure logic, driven by numbers and a clock.

The engine feeds it the tree's usage every sample and after every model, and
carries out the actions it returns: emit alerts, run cleanups, pause or resume
starting models, shrink parallelism inside searches, kill a runaway worker,
stop the run safely. Nothing here touches a process, so every state and every
transition is unit-testable with a fake clock.

Alerts fire on transitions only (and the green notice at most once per
`notice_interval`), so a run sitting at 80 % does not print a warning twice a
second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Union

from milo_tui.config import format_size
from milo_tui.events import MSG_CRITICAL, MSG_OPTIMIZING, MSG_STOPPED, MSG_WARNING
from milo_tui.memory.cleanup import CRITICAL, NORMAL, WARNING
from milo_tui.memory.forecast import NO_FORECAST, Forecast, Forecaster
from milo_tui.memory.limits import MemoryLimit
from milo_tui.memory.status import GREEN, RED, YELLOW, Thresholds, classify

# Alert levels of docs/EVENTS.md. "predictive" is the trend warning that comes before yellow/red.
INFO, WARN, CRIT, EMERGENCY, PREDICTIVE = "info", "warning", "critical", "emergency", "predictive"

CLEANUP_FOR_STATUS = {GREEN: NORMAL, YELLOW: WARNING, RED: CRITICAL}


@dataclass(frozen=True)
class Alert:
    level: str
    message: str
    detail: str = field(default="", compare=False)  # one line for people: usage, limit, what happens
    data: dict = field(default_factory=dict, compare=False)  # the same, as numbers

    def as_event(self) -> dict:
        """Data of an ALERT event (detail is a string in the event schema)."""
        return {"level": self.level, "message": self.message, "detail": self.detail, **self.data}


@dataclass(frozen=True)
class Cleanup:
    level: str  # "normal" | "warning" | "critical" (milo_tui.memory.cleanup levels)


@dataclass(frozen=True)
class PauseStarts:
    reason: str


@dataclass(frozen=True)
class ResumeStarts:
    pass


@dataclass(frozen=True)
class SetInnerJobs:
    n_jobs: int | None  # None: back to the configured search.n_jobs


@dataclass(frozen=True)
class StopRun:
    reason: str


Action = Union[Alert, Cleanup, PauseStarts, ResumeStarts, SetInnerJobs, StopRun]


def _percent(used: int, limit: MemoryLimit) -> str:
    return f"{100 * used / limit.bytes:.0f}%"


def _limit_text(limit: MemoryLimit) -> str:
    return f"{format_size(limit.bytes)} {limit.source} limit"


class Governor:
    def __init__(self, limit: MemoryLimit, thresholds: Thresholds, *, critical_grace: float,
                 forecast_horizon: float, clock: Callable[[], float] = time.monotonic,
                 forecaster: Forecaster | None = None, notice_interval: float = 60.0,
                 cleanup_interval: float = 15.0, kill_fraction: float | None = None) -> None:
        self.limit = limit
        self.thresholds = thresholds
        self.critical_grace = critical_grace
        self.forecast_horizon = forecast_horizon
        self.clock = clock
        self.forecaster = forecaster or Forecaster()
        self.notice_interval = notice_interval
        self.cleanup_interval = cleanup_interval
        # Above critical, a worker is killed once the tree passes this share of the limit:
        # halfway between critical and the limit leaves room to act before the OOM killer does.
        self.kill_fraction = kill_fraction if kill_fraction is not None else (1 + thresholds.critical) / 2
        self.status: str = GREEN
        self.peak: int = 0
        self.used: int = 0
        self.paused = False
        self.stopped = False
        self.last_forecast: Forecast = NO_FORECAST
        self._idle_red_since: float | None = None
        self._last_cleanup = float("-inf")
        self._last_notice = float("-inf")
        self._predicted = False
        self._kills: dict[str, int] = {}

    @property
    def forecast(self) -> Forecast:
        """The forecast made at the last sample (for the memory event)."""
        return self.last_forecast

    # -- derived limits -------------------------------------------------------------------------
    @property
    def critical_bytes(self) -> int:
        return self.thresholds.critical_bytes(self.limit.bytes)

    @property
    def warning_bytes(self) -> int:
        return self.thresholds.warning_bytes(self.limit.bytes)

    @property
    def kill_bytes(self) -> int:
        return int(self.limit.bytes * self.kill_fraction)

    def _data(self, used: int) -> dict:
        return {"status": self.status, "used_bytes": used, "limit_bytes": self.limit.bytes,
                "limit_source": self.limit.source, "percent": round(100 * used / self.limit.bytes, 1)}

    def _alert(self, level: str, message: str, used: int, detail: str = "", **data) -> Alert:
        usage = f"{format_size(used)} in use, {_percent(used, self.limit)} of the {_limit_text(self.limit)}"
        return Alert(level, message, f"{detail}; {usage}" if detail else usage, self._data(used) | data)

    # -- readings -------------------------------------------------------------------------------
    def on_sample(self, used: int, *, training: int | None = None) -> list[Action]:
        """One reading of the tree's usage. `training`: models running now (None: unknown).

        The stop clock runs while memory is red and nothing is training (with
        `training` unknown, from the moment memory turned red): a running
        model may still finish and free memory, an idle red run cannot.
        """
        if self.stopped:
            return []
        now = self.clock()
        self.used = used
        self.peak = max(self.peak, used)
        self.forecaster.add(now, used)
        previous, self.status = self.status, classify(used, self.limit.bytes, self.thresholds, self.status)
        actions: list[Action] = []
        if self.status != previous:
            actions += self._transition(previous, used, now)
        elif self.status != GREEN and now - self._last_cleanup >= self.cleanup_interval:
            actions.append(self._cleanup(self.status, now))
        actions += self._predict(used, now)
        actions += self._check_grace(training, used, now)
        return actions

    def _cleanup(self, status: str, now: float) -> Cleanup:
        self._last_cleanup = now
        return Cleanup(CLEANUP_FOR_STATUS[status])

    def _transition(self, previous: str, used: int, now: float) -> list[Action]:
        if self.status == RED:
            self.paused = True
            self._idle_red_since = None
            return [self._alert(CRIT, MSG_CRITICAL, used, "no new model starts; searches run with n_jobs=1"),
                    self._cleanup(RED, now),
                    PauseStarts(f"memory at {_percent(used, self.limit)} of the {_limit_text(self.limit)}"),
                    SetInnerJobs(1)]
        actions: list[Action] = []
        if previous == RED:
            self.paused = False
            self._idle_red_since = None
            actions += [self._alert(INFO, f"Memory back below the critical level ({_percent(used, self.limit)}); "
                                          "new models start again", used), ResumeStarts(), SetInnerJobs(None)]
        if self.status == YELLOW and previous == GREEN:
            actions += [self._alert(WARN, MSG_WARNING, used), self._cleanup(YELLOW, now)]
        return actions

    def _predict(self, used: int, now: float) -> list[Action]:
        self.last_forecast = self.forecaster.forecast(self.critical_bytes, self.limit.bytes, self.forecast_horizon)
        if not self.last_forecast.alert:
            self._predicted = False  # re-arm: the next rise gets its own alert
            return []
        if self.status == RED or self._predicted:
            return []  # red has its own alert; one predictive alert per rise
        self._predicted = True
        forecast = self.last_forecast
        target, seconds = ("the critical level", forecast.seconds_to_critical)
        if seconds is None or (forecast.seconds_to_limit is not None and forecast.seconds_to_limit < seconds):
            target, seconds = "the limit", forecast.seconds_to_limit
        message = (f"Memory is rising by {format_size(forecast.slope_bytes_per_s)}/s and will reach {target} "
                   f"in about {seconds:.0f} s at this rate")
        alert = self._alert(PREDICTIVE, message, used, "cleaning up early", predictive=True,
                            seconds_to_critical=forecast.seconds_to_critical,
                            seconds_to_limit=forecast.seconds_to_limit,
                            slope_bytes_per_s=forecast.slope_bytes_per_s)
        return [alert, self._cleanup(YELLOW, now)]

    def _check_grace(self, training: int | None, used: int, now: float) -> list[Action]:
        if self.status != RED:
            return []
        if training:
            self._idle_red_since = None
            return []
        if self._idle_red_since is None:
            self._idle_red_since = now
        if now - self._idle_red_since < self.critical_grace:
            return []
        self.stopped = True
        reason = (f"memory stayed at or above {self.thresholds.critical:.0%} of the {_limit_text(self.limit)} "
                  f"for {self.critical_grace:g} s with nothing training ({format_size(used)} in use)")
        return [self._alert(EMERGENCY, MSG_STOPPED, used, reason, reason=reason), StopRun(reason)]

    def after_model(self) -> list[Action]:
        """A model finished and its worker was recycled: free memory at the level of the status."""
        if self.stopped:
            return []
        now = self.clock()
        actions: list[Action] = []
        if self.status == GREEN and now - self._last_notice >= self.notice_interval:
            self._last_notice = now
            actions.append(self._alert(INFO, MSG_OPTIMIZING, self.used, "worker recycled, garbage collected"))
        actions.append(self._cleanup(self.status, now))
        return actions

    # -- admission and runaway workers ------------------------------------------------------
    def headroom(self, used: int) -> int:
        return self.critical_bytes - used

    def admit(self, estimate_bytes: int, used: int) -> tuple[bool, str]:
        """Does a model estimated at `estimate_bytes` fit below the critical level now?"""
        room = self.headroom(used)
        if estimate_bytes <= room:
            return True, ""
        return False, (f"needs an estimated {format_size(estimate_bytes)} but only {format_size(max(0, room))} "
                       f"is free below the critical level ({self.thresholds.critical:.0%} of the "
                       f"{_limit_text(self.limit)}; {format_size(used)} in use)")

    def decide(self, estimate_bytes: int, used: int, *, others_running: bool) -> tuple[str, str]:
        """("start" | "wait" | "skip", reason) for the next model.

        A model that does not fit while others run may fit once they finish,
        so it waits; one that does not fit with nothing else running is
        skipped. Nothing starts while paused (red).
        """
        if self.stopped:
            return "wait", "the run is stopping"
        if self.paused:
            return "wait", f"memory is critical ({_percent(self.used, self.limit)}); new models wait"
        fits, reason = self.admit(estimate_bytes, used)
        if fits:
            return "start", ""
        return ("wait", reason) if others_running else ("skip", reason)

    def worker_allowance(self, used: int, worker_pss: int) -> int:
        """Bytes one worker may reach before it is killed (when red).

        The kill line minus what the rest of the tree uses: the worker may
        grow into all the room left, and is over its allowance once the tree
        as a whole passes the kill line.
        """
        return max(0, self.kill_bytes - (used - worker_pss))

    def runaway(self, used: int, workers: dict[int, int]) -> int | None:
        """The worker pid to kill now (red and past the kill line): the largest one. None otherwise."""
        if self.status != RED or not workers:
            return None
        pid, pss = max(workers.items(), key=lambda item: item[1])
        return pid if pss > self.worker_allowance(used, pss) else None

    def after_kill(self, model_key: str, estimate_bytes: int) -> tuple[str, str]:
        """A worker was killed for memory: ("retry", how) the first time, then ("skip", reason)."""
        self._kills[model_key] = self._kills.get(model_key, 0) + 1
        if self._kills[model_key] == 1:
            return "retry", "killed for memory; retrying once with n_jobs=1"
        return "skip", (f"skipped (memory): killed twice past its allowance; estimated {format_size(estimate_bytes)} "
                        f"against the {_limit_text(self.limit)}")


def ovr_check(estimate_bytes: int, used: int, limit: MemoryLimit, thresholds: Thresholds,
              policy: str) -> tuple[str, str]:
    """Before the OvR phase: ("proceed" | "skip" | "stop", message)."""
    if policy not in ("skip", "stop"):
        raise ValueError(f"ovr_policy must be 'skip' or 'stop', not {policy!r}")
    room = thresholds.critical_bytes(limit.bytes) - used
    needs = f"OvR re-optimization needs an estimated {format_size(estimate_bytes)}"
    where = (f"{format_size(max(0, room))} is free below the critical level ({thresholds.critical:.0%} of the "
             f"{_limit_text(limit)})")
    if estimate_bytes <= room:
        return "proceed", f"{needs}; {where}: proceeding"
    if policy == "skip":
        return "skip", f"{needs} but only {where}: skipping the OvR phase (ovr_policy = \"skip\")"
    return "stop", f"{needs} but only {where}: stopping the run (ovr_policy = \"stop\"); resume with more memory"


def thresholds_from_config(memory: dict) -> Thresholds:
    """Thresholds from milo.toml's [memory] table (Config.memory)."""
    return Thresholds(warning=memory["warning"], critical=memory["critical"])


def governor_from_config(memory: dict, limit: MemoryLimit, *, clock: Callable[[], float] = time.monotonic,
                         **options) -> Governor:
    """A Governor set up from milo.toml's [memory] table (Config.memory)."""
    return Governor(limit, thresholds_from_config(memory), critical_grace=memory["critical_grace"],
                    forecast_horizon=memory["forecast_horizon"], clock=clock, **options)
