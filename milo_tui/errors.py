"""User-facing errors: one clear paragraph that says what went wrong and what to do."""

from __future__ import annotations

# Exit codes of `milo` and `python -m milo_tui.engine`, documented in README.md.
EXIT_OK = 0
EXIT_FAILED = 1  # the run failed (an unexpected error in the engine)
EXIT_BAD_INPUT = 2  # bad project, config or data: nothing was trained or overwritten
EXIT_STOPPED_MEMORY = 3  # stopped safely for lack of memory; resumable
EXIT_INTERRUPTED = 4  # stopped by the user (Ctrl-C, SIGTERM); resumable
EXIT_DISK_FULL = 5  # stopped because the disk filled up; resumable once space is freed


class MiloError(Exception):
    """An error whose message is meant for the user, as is."""

    exit_code = EXIT_FAILED


class BadInputError(MiloError):
    """The project, its config or its data cannot be used."""

    exit_code = EXIT_BAD_INPUT


class DiskFullError(MiloError):
    exit_code = EXIT_DISK_FULL


class IntegrityError(MiloError):
    """A stored model does not match its recorded hash, or an archive is unsafe."""

    exit_code = EXIT_FAILED
