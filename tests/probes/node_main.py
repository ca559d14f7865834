"""A main module run with `python -m`, as a `milo node` worker's is: which processes import its imports?

Prints the pid of a child started by a LocalExecutor whose forkserver preloads node_preload()
(argument "node") or only the engine's list (argument "engine").
"""
import os
import sys

import probes.import_marker  # noqa: F401  (the heavy import a worker's main module brings: Dask)

if __name__ == "__main__":
    from milo_tui.cluster.node import node_preload
    from milo_tui.engine.executor import PRELOAD, LocalExecutor

    executor = LocalExecutor(preload=node_preload() if sys.argv[1] == "node" else list(PRELOAD))
    try:
        print(executor.call(os.getpid), flush=True)
    finally:
        executor.shutdown()
