"""Memory: limits, sampling, status, forecast, estimates, cleanup and the policy that ties them.

Plain Python (no textual). The engine runs a MemoryMonitor, feeds each sample
to a Governor and carries out the actions it returns; docs/MEMORY.md explains
how the pieces fit.
"""

from milo_tui.memory.cleanup import CleanupReport, cleanup
from milo_tui.memory.estimate import FootprintEstimator, Preflight, preflight
from milo_tui.memory.forecast import Forecast, Forecaster
from milo_tui.memory.governor import (Alert, Cleanup, Governor, PauseStarts, ResumeStarts, SetInnerJobs,
                                      StopRun, ovr_check)
from milo_tui.memory.limits import MemoryLimit, read_cgroup_limit, resolve_limit
from milo_tui.memory.monitor import MemoryMonitor
from milo_tui.memory.report import effective_used, memory_event
from milo_tui.memory.sampler import ProcessMemory, TreeSample, sample_tree
from milo_tui.memory.status import GREEN, RED, YELLOW, Thresholds, classify

__all__ = [
    "Alert", "Cleanup", "CleanupReport", "FootprintEstimator", "Forecast", "Forecaster", "GREEN", "Governor",
    "MemoryLimit", "MemoryMonitor", "PauseStarts", "Preflight", "ProcessMemory", "RED", "ResumeStarts",
    "SetInnerJobs", "StopRun", "Thresholds", "TreeSample", "YELLOW", "classify", "cleanup", "effective_used",
    "memory_event", "ovr_check", "preflight", "read_cgroup_limit", "resolve_limit", "sample_tree",
]
