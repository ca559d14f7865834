"""User-facing errors: one clear paragraph that says what went wrong and what to do.

The exit codes below are the documented scheme of `milo` (README.md, `milo --help`)
and of `python -m milo_tui.engine`. Anything that escapes a command is turned
into one paragraph and one of these codes by `user_error` (the CLI's single
error boundary), never into a Python traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys

EXIT_OK = 0
EXIT_FAILED = 1  # the run failed (an unexpected error in the engine)
EXIT_BAD_INPUT = 2  # bad project, config, data or path: nothing was trained or overwritten
EXIT_STOPPED_MEMORY = 3  # stopped safely for lack of memory; resumable
EXIT_INTERRUPTED = 4  # stopped by the user (Ctrl-C, SIGTERM); resumable
EXIT_DISK_FULL = 5  # stopped because the disk filled up; resumable once space is freed
EXIT_DOES_NOT_FIT = 6  # `milo estimate`: the run as configured would not fit (an answer, not a failure)
EXIT_USAGE = 64  # the command line itself is wrong: unknown option, missing argument (sysexits EX_USAGE)

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "done (for `milo run`: the run completed)"),
    (EXIT_FAILED, "an unexpected error; details in PROJECT/.milo/engine.log for a run"),
    (EXIT_BAD_INPUT, "bad project, config, data, model key or path; nothing was changed"),
    (EXIT_STOPPED_MEMORY, "the run stopped safely for lack of memory (resumable)"),
    (EXIT_INTERRUPTED, "interrupted by Ctrl-C or SIGTERM (resumable)"),
    (EXIT_DISK_FULL, "the disk filled up (resumable once space is freed)"),
    (EXIT_DOES_NOT_FIT, "`milo estimate`: the run as configured would not fit its memory limit"),
    (EXIT_USAGE, "the command line is wrong (unknown option, missing or malformed argument)"),
)


class UsageArgumentParser(argparse.ArgumentParser):
    """argparse, with its usage errors on their own exit code (64, sysexits' EX_USAGE), so a
    script can tell a mistyped command line from a project that cannot be used (2)."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}. `{self.prog} --help` shows the usage.\n")


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


# What an operating-system error means to someone at the keyboard, and what to do about it.
_OS_ADVICE = {
    errno.EROFS: ("is on a read-only file system", "Copy the project to a writable place, or choose "
                  "a writable destination (for `milo extract`, -o)."),
    errno.EACCES: ("is not accessible to you (permission denied)", "Check its permissions (ls -ld), or choose "
                   "a place you may write to (for `milo extract`, -o)."),
    errno.EPERM: ("cannot be changed (operation not permitted)", "Choose another place, for example under "
                  "your home folder."),
    errno.ENOENT: ("does not exist (or a folder on its way does not)",
                   "Check the path; for a project, `milo init` creates one."),
    errno.EISDIR: ("is a folder where a file was expected", "Give the path of a file, or remove the folder."),
    errno.ENOTDIR: ("has a file where a folder was expected", "Check the path, or move that file away."),
    errno.EEXIST: ("already exists", "Choose another name, or remove what is there."),
    errno.ENAMETOOLONG: ("is too long for the file system", "Choose a shorter name."),
    errno.ENOSPC: ("could not be written: the disk is full", "Free some space (df -h shows how much is left) "
                   "and run again; `milo run PROJECT --resume` continues a stopped run."),
    errno.EDQUOT: ("could not be written: your disk quota is used up", "Free some space and run again; "
                   "`milo run PROJECT --resume` continues a stopped run."),
}


def os_error(exc: OSError) -> MiloError:
    """An OSError as the user should hear it: which path, what is wrong with it, what to do."""
    path = exc.filename if exc.filename is not None else "a file milo needed"
    path = _visible_path(os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path))
    what, advice = _OS_ADVICE.get(exc.errno, (f"could not be used ({exc.strerror or exc})", "Check the path "
                                              "and its permissions, then run again."))
    cls = DiskFullError if exc.errno in (errno.ENOSPC, errno.EDQUOT) else BadInputError
    return cls(f"{path} {what}. {advice}")


def _visible_path(path: str) -> str:
    """Name the file the user asked for, not milo's hidden temp file beside it ('.name.x1y2.tmp')."""
    head, name = os.path.split(path)
    if name.startswith(".") and name.endswith(".tmp") and name.count(".") >= 3:
        return os.path.join(head, name[1:].rsplit(".", 2)[0])
    return path


def unexpected_error(exc: BaseException) -> MiloError:
    """A bug, said plainly: what broke, and how to get the details for a report."""
    detail = f"{type(exc).__name__}: {exc}"
    if len(detail) > 300:
        detail = detail[:300] + "..."
    return MiloError(f"milo stopped on an unexpected error ({detail}). Nothing finished is lost. This is a "
                     "bug: run the command again with MILO_DEBUG=1 to see where it happened, and report it.")


def user_error(exc: BaseException) -> MiloError:
    """Whatever a command raised, as the one paragraph and exit code the user gets."""
    if isinstance(exc, MiloError):
        return exc
    if isinstance(exc, OSError):
        return os_error(exc)
    return unexpected_error(exc)
