"""Short text forms of numbers and statuses for a terminal cell."""

from __future__ import annotations

from milo_tui.config import format_size


RUN_STATUS_TEXT = {
    "waiting": "waiting for the engine", "running": "running", "completed": "completed",
    "stopped_memory": "STOPPED: out of memory", "failed": "FAILED", "interrupted": "interrupted",
    "disk_full": "STOPPED: disk full", "engine_died": "ENGINE DIED",
}


def run_status(status: str) -> str:
    """How the screens word a run status (an unknown one as it came)."""
    return RUN_STATUS_TEXT.get(status, status)


def size(n: float | int | None) -> str:
    return format_size(n) if n is not None else "-"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def metric(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def ci(low: str | float | None, high: str | float | None) -> str:
    """"[0.912, 0.958]" from two report cells; "" when either is missing."""
    try:
        return f"[{float(low):.3f}, {float(high):.3f}]"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""


def clock_time(ts: float | None) -> str:
    import time

    return "--:--:--" if ts is None else time.strftime("%H:%M:%S", time.localtime(ts))
