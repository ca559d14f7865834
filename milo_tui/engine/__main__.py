"""`python -m milo_tui.engine PROJECT [--event-fd N] [--resume] [--force]`: run one training."""

from __future__ import annotations

import sys

from milo_tui import config as config_module
from milo_tui.errors import BadInputError, UsageArgumentParser


def main(argv: list[str] | None = None) -> int:
    parser = UsageArgumentParser(prog="python -m milo_tui.engine")
    parser.add_argument("project")
    parser.add_argument("--event-fd", type=int, default=None,
                        help="write events to this inherited pipe file descriptor")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--scheduler", default=None,
                        help="train on this Dask scheduler (overrides [cluster] scheduler in milo.toml)")
    args = parser.parse_args(argv)
    try:
        config = config_module.load(args.project)
    except BadInputError as exc:
        from milo_tui.engine.runner import refuse

        return refuse(exc, args.event_fd)
    from milo_tui.cluster import make_executor, scheduler_for
    from milo_tui.engine.runner import Run, refuse

    try:
        executor = make_executor(config, scheduler_for(config.get("cluster", "scheduler"), args.scheduler))
    except BadInputError as exc:
        return refuse(exc, args.event_fd)
    return Run(config, pipe_fd=args.event_fd, resume=args.resume, force=args.force,
               executor=executor).execute()


if __name__ == "__main__":
    sys.exit(main())
