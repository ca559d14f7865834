"""When will memory reach the critical level, or the limit, at the current trend?

The slope is a Theil-Sen estimate (the median of the slopes between all pairs
of points) over a sliding time window: one spike from a short-lived allocation
moves a least-squares fit a lot but barely moves a median. The current level is
the fitted line's value at the newest point, for the same reason.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

# Below this growth, memory is considered flat: a forecast of "critical in 3 days" is noise.
DEFAULT_MIN_SLOPE = 64 * 1024  # bytes per second
MAX_POINTS = 240  # pairs grow quadratically; more points than this add no information


@dataclass
class Forecast:
    slope_bytes_per_s: float
    seconds_to_critical: float | None  # None when memory is flat or falling (0.0 when already there)
    seconds_to_limit: float | None
    alert: bool  # either of the two is within the horizon
    level: float = 0.0  # the trend's value now, in bytes

    def as_dict(self) -> dict:
        return {"slope_bytes_per_s": self.slope_bytes_per_s, "seconds_to_critical": self.seconds_to_critical,
                "seconds_to_limit": self.seconds_to_limit, "alert": self.alert}


NO_FORECAST = Forecast(0.0, None, None, False)


def theil_sen(t: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of the Theil-Sen line through the points."""
    i, j = np.triu_indices(len(t), k=1)
    dt = t[j] - t[i]
    usable = dt > 0
    if not usable.any():
        return 0.0, float(np.median(y))
    slope = float(np.median((y[j] - y[i])[usable] / dt[usable]))
    intercept = float(np.median(y - slope * t))
    return slope, intercept


class Forecaster:
    def __init__(self, window_seconds: float = 30.0, min_points: int = 5,
                 min_slope: float = DEFAULT_MIN_SLOPE) -> None:
        if window_seconds <= 0 or min_points < 2:
            raise ValueError("window_seconds must be positive and min_points at least 2")
        self.window_seconds = window_seconds
        self.min_points = min_points
        self.min_slope = min_slope
        self._points: deque[tuple[float, int]] = deque()

    def add(self, t: float, used: int) -> None:
        if self._points and t < self._points[-1][0]:
            return  # a clock that went backwards would poison the fit
        self._points.append((t, used))
        while self._points and self._points[0][0] < t - self.window_seconds:
            self._points.popleft()
        while len(self._points) > MAX_POINTS:
            self._points.popleft()

    def reset(self) -> None:
        self._points.clear()

    def __len__(self) -> int:
        return len(self._points)

    def forecast(self, critical_bytes: int, limit_bytes: int, horizon: float) -> Forecast:
        if len(self._points) < self.min_points:
            return NO_FORECAST
        data = np.asarray(self._points, dtype=float)
        t0 = data[0, 0]
        t, y = data[:, 0] - t0, data[:, 1]  # shift time so the intercept stays well conditioned
        slope, intercept = theil_sen(t, y)
        level = intercept + slope * t[-1]
        to_critical = _seconds_to(critical_bytes, level, slope, self.min_slope)
        to_limit = _seconds_to(limit_bytes, level, slope, self.min_slope)
        alert = any(s is not None and s <= horizon for s in (to_critical, to_limit))
        return Forecast(slope, to_critical, to_limit, alert, level)


def _seconds_to(target: float, level: float, slope: float, min_slope: float) -> float | None:
    if level >= target:
        return 0.0
    if slope < min_slope:
        return None
    return (target - level) / slope
