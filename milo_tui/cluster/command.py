"""`milo node SCHEDULER`: start this machine as a cluster node for milo.

It is `dask worker` with the arguments milo needs, so anything `dask worker`
documents still applies:
- one Dask worker process, `--nthreads` = pipelines trained at once on this node;
- `--memory-limit 0`: the nanny sees only the worker process, not milo's training
  children, so its memory limit would measure the wrong thing; milo's own
  governor for this node measures the whole tree instead;
- the worker is not a daemonic process (distributed.worker.daemon = False), so it
  may start milo's forkserver;
- `--preload milo_tui.cluster.node` loads milo's node code before the first task.
"""

from __future__ import annotations

import os
import sys

from milo_tui.cluster import NODE_PRELOAD
from milo_tui.errors import BadInputError


def node_command(scheduler: str, *, nthreads: int, name: str | None = None) -> list[str]:
    """The `dask worker` command line of a milo node."""
    where = ["--scheduler-file", scheduler] if scheduler.endswith(".json") else [scheduler]
    command = [sys.executable, "-m", "distributed.cli.dask_worker", *where, "--nworkers", "1",
               "--nthreads", str(nthreads), "--memory-limit", "0", "--preload", NODE_PRELOAD]
    if name:
        command += ["--name", name]
    return command


def node_environment() -> dict[str, str]:
    return {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}


def cmd_node(args) -> int:
    from milo_tui.cluster.executor import require_cluster_extra

    if args.scheduler == "local":
        raise BadInputError('`milo node` joins a running scheduler: give its address ("tcp://host:8786") or '
                            'its scheduler .json file. "local" needs no nodes: `milo run --scheduler local`.')
    if args.nthreads < 1:
        raise BadInputError(f"--nthreads must be at least 1 (pipelines trained at once here), not {args.nthreads}.")
    require_cluster_extra()
    command = node_command(args.scheduler, nthreads=args.nthreads, name=args.name)
    print("milo node: " + " ".join(command[1:]), file=sys.stderr, flush=True)
    os.execve(command[0], command, node_environment())
    return 0  # not reached
