"""A main module run with `python -m`, as a `milo node` worker's is: which processes import its imports?

Prints the pid of a child started by a LocalExecutor whose forkserver preloads node_preload()
(argument "node") or only the engine's list (argument "engine").
"""
import os
import sys

import probes.import_marker  # noqa: F401  (the heavy import a worker's main module brings: Dask)

if __name__ == "__main__":
    from milo_tui.cluster import node
    from milo_tui.engine.executor import CHILD_GUARD, LocalExecutor

    node.PRELOAD = [CHILD_GUARD]  # the engine's list without scikit-learn: seconds less, same rule
    executor = LocalExecutor(preload=node.node_preload() if sys.argv[1] == "node" else list(node.PRELOAD))
    try:
        print(executor.call(os.getpid), flush=True)
    finally:
        executor.shutdown()
