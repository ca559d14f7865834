"""Training on a Dask distributed cluster: Dask places, milo isolates.

- `wire`: the plain values that travel between the engine and a node.
- `node`: what runs on each cluster node (a Dask worker plugin holding milo's own
  pre-warmed forkserver, the task that forks one child per pipeline, the memory report).
- `reaper`: ends what a dead worker's children leave running on its node (their joblib helpers).
- `executor`: the engine's side, an Executor that submits tasks through a Dask client.

Nothing here is imported unless a scheduler is configured, so milo works without
the `cluster` extra (dask and distributed) installed.
"""

from __future__ import annotations

import os

NODE_PRELOAD = "milo_tui.cluster.node"  # `dask worker --preload`: readies a worker and warms its forkserver
SCHEDULER_VARIABLE = "MILO_SCHEDULER"  # `milo run --scheduler` hands its choice to the engine this way


def scheduler_for(configured: str | None, given: str | None = None) -> str | None:
    """The scheduler this run uses: the command line's, else the environment's, else milo.toml's."""
    return given or os.environ.get(SCHEDULER_VARIABLE) or configured


def make_executor(config, scheduler: str | None):
    """The executor a run uses: today's local one, or a DaskExecutor when a scheduler is named."""
    if not scheduler:
        from milo_tui.engine.executor import LocalExecutor

        return LocalExecutor()
    from milo_tui.cluster.executor import DaskExecutor, require_cluster_extra
    from milo_tui.memory.status import Thresholds

    require_cluster_extra()

    memory = config.memory
    return DaskExecutor(scheduler, memory_budget=memory["memory_budget"],
                        thresholds=Thresholds(memory["warning"], memory["critical"]),
                        critical_grace=memory["critical_grace"], forecast_horizon=memory["forecast_horizon"],
                        sample_interval=memory["sample_interval"], local_workers=config.run["workers"])
