"""The `memory` event payload: what the live memory dashboard shows."""

from __future__ import annotations

from milo_tui.memory.forecast import Forecast
from milo_tui.memory.limits import MemoryLimit
from milo_tui.memory.sampler import TreeSample
from milo_tui.memory.status import STATUS_TEXT


def effective_used(sample: TreeSample, limit: MemoryLimit) -> int:
    """The usage to hold against the limit: the tree's PSS, or more when the machine is short.

    On a shared server other users' programs take memory too. If less is
    available than the room the limit suggests, the run is as close to
    trouble as if it used the difference itself.
    """
    return max(sample.pss, limit.bytes - sample.system_available)


# What the thresholds were held against in one sample (the `used_basis` field of the event).
BASIS_MILO = "milo"  # milo's own process tree (PSS)
BASIS_MACHINE = "machine"  # the machine is short: limit minus what the OS says is available


def used_basis(used: int, sample: TreeSample) -> str:
    return BASIS_MACHINE if used > sample.pss else BASIS_MILO


def memory_event(sample: TreeSample, limit: MemoryLimit, status: str, peak: int, forecast: Forecast | None,
                 completed: int, total: int, remaining_peak: int, *, used: int | None = None) -> dict:
    """Data of a MEMORY event. `used` defaults to the tree's PSS."""
    used_bytes = sample.pss if used is None else used
    return {
        "status": status,
        "status_text": STATUS_TEXT.get(status, status),
        "used_bytes": used_bytes,
        "tree_pss_bytes": sample.pss,
        "tree_rss_bytes": sample.rss,
        "limit_bytes": limit.bytes,
        "limit_source": limit.source,
        "percent": round(100 * used_bytes / limit.bytes, 1) if limit.bytes else None,
        "peak_bytes": peak,
        "peak_percent": round(100 * peak / limit.bytes, 1) if limit.bytes else None,
        "system_available_bytes": sample.system_available,
        "system_used_bytes": sample.system_used,
        "swap_used_bytes": sample.swap_used,
        "system_total_bytes": sample.system_total,
        # Everything else on the machine: what the OS counts as used, less milo's tree.
        "other_used_bytes": max(0, sample.system_used - sample.pss),
        "used_basis": used_basis(used_bytes, sample),
        "processes": [{"pid": p.pid, "role": p.role, "name": p.name, "pss_bytes": p.pss,
                       "pss_estimated": p.pss_is_estimate, "cpu_percent": p.cpu_percent}
                      for p in sample.processes],
        "models_completed": completed,
        "models_total": total,
        "estimated_remaining_peak_bytes": remaining_peak,
        "seconds_to_critical": forecast.seconds_to_critical if forecast else None,
        "seconds_to_limit": forecast.seconds_to_limit if forecast else None,
    }
