"""Green / yellow / red: usage as a share of the limit, against two thresholds."""

from __future__ import annotations

from dataclasses import dataclass

GREEN, YELLOW, RED = "green", "yellow", "red"
STATUSES = (GREEN, YELLOW, RED)

# The dashboard's wording for each status (the source document's indicator list).
STATUS_TEXT = {
    GREEN: "Normal operation",
    YELLOW: "Warning - cleanup in progress",
    RED: "Critical - emergency protocols active",
}


@dataclass(frozen=True)
class Thresholds:
    warning: float = 0.75
    critical: float = 0.85
    # To leave a state, usage must fall this share of the limit below its threshold,
    # so a reading hovering at 85 % does not flip red/yellow on every sample.
    hysteresis: float = 0.02

    def __post_init__(self) -> None:
        if not 0 < self.warning < self.critical <= 1:
            raise ValueError(f"thresholds need 0 < warning < critical <= 1, got {self.warning}, {self.critical}")
        if not 0 <= self.hysteresis < self.warning:
            raise ValueError("hysteresis must be at least 0 and below the warning threshold")

    def critical_bytes(self, limit: int) -> int:
        return int(limit * self.critical)

    def warning_bytes(self, limit: int) -> int:
        return int(limit * self.warning)


def classify(used: int, limit: int, thresholds: Thresholds, previous: str | None = None) -> str:
    """green below warning, yellow from warning up to critical, red at critical and above.

    With `previous`, a state is only left downwards once usage is `hysteresis`
    below the threshold that entered it.
    """
    share = used / limit if limit > 0 else 1.0
    if share >= thresholds.critical:
        return RED
    if previous == RED and share >= thresholds.critical - thresholds.hysteresis:
        return RED
    if share >= thresholds.warning:
        return YELLOW
    if previous in (YELLOW, RED) and share >= thresholds.warning - thresholds.hysteresis:
        return YELLOW
    return GREEN
