"""Writing exported models where the user asked: the right path, atomically, no debris.

Where a model goes (`milo extract -o DEST`, the TUI's export dialog):

* DEST ending in "/" or an existing folder is a folder: the model becomes
  DEST/<key>.joblib (the folder is created if missing); anything else is the
  file's own path. A bundle is always a folder: DEST/<key>/ when DEST is an
  existing folder, else DEST itself; an existing *file* there is refused.
* Nothing existing is overwritten unless asked.

How it is written: into a hidden temp file in the destination folder (so the
final rename is atomic and never crosses filesystems), named
`.<name>.milo-export-<pid>-<start>-<random>.tmp`, fsynced, given the mode the
user's umask gives new files, then linked into place (which fails rather than
overwrite a file that appeared meanwhile). An error removes the temp file;
SIGTERM/SIGHUP remove it too (workspace.remove_on_signal). Only SIGKILL can
leave one behind, and the next export into that folder removes it: its name
says which process made it, and that process is dead.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
from pathlib import Path
from typing import BinaryIO, Callable

from milo_tui.errors import BadInputError, DiskFullError, MiloError
from milo_tui.project import is_disk_full
from milo_tui.storage.files import MODEL_SUFFIX, shared_file_mode
from milo_tui.storage.workspace import forget_on_signal, owner_is_dead, remove_on_signal, start_stamp

_TEMP = re.compile(r"^\..+\.milo-export-(\d+)-(\d+)-[0-9a-f]{16}\.tmp$")


class ExportError(BadInputError):
    """The destination cannot take the exported model (not writable, a file where a folder is needed...)."""


def model_target(dest: str | Path, key: str) -> Path:
    """The file a model is exported to (see the module docstring)."""
    if _means_folder(dest):
        return Path(dest).expanduser() / f"{key}{MODEL_SUFFIX}"
    return Path(dest).expanduser()


def bundle_folder(dest: str | Path, key: str) -> Path:
    path = Path(dest).expanduser()
    if path.is_dir():
        return path / key
    if path.exists() or path.is_symlink():
        raise ExportError(
            f"{path} is a file, and --bundle writes a folder (model.joblib, metrics.json, params.json), so "
            f"model {key} was not exported. Give a folder path (an existing folder gets a {key}/ inside), "
            "or leave out --bundle to write a single .joblib file."
        )
    return path


def _means_folder(dest: str | Path) -> bool:
    text = os.fspath(dest)
    return text.endswith(os.sep) or (os.altsep is not None and text.endswith(os.altsep)) \
        or Path(text).expanduser().is_dir()


def write_exported(target: Path, fill: Callable[[BinaryIO], object], *, overwrite: bool, what: str) -> int:
    """Write `target` via `fill(handle)` atomically; returns its size. Typed errors only."""
    target = Path(target)
    if target.name in ("", ".", ".."):
        raise ExportError(f"{target} is not a file name, so {what} was not exported. Give a file or folder path.")
    if not overwrite and (target.exists() or target.is_symlink()):
        raise ExportError(
            f"{target} already exists, so it was not overwritten and {what} was not exported. "
            "Choose another path, or remove it first."
        )
    folder_fd = _open_folder(target, what)
    try:
        sweep_export_debris(folder_fd)
        return _write_in(folder_fd, target, fill, overwrite, what)
    finally:
        os.close(folder_fd)


def _open_folder(target: Path, what: str) -> int:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise _export_failed(target, exc, what) from None


def _write_in(folder_fd: int, target: Path, fill, overwrite: bool, what: str) -> int:
    temp = f".{target.name}.milo-export-{os.getpid()}-{start_stamp(os.getpid())}-{secrets.token_hex(8)}.tmp"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=folder_fd)
    except OSError as exc:
        raise _export_failed(target, exc, what) from None
    cleanup = remove_on_signal(folder_fd, temp)
    try:
        with os.fdopen(fd, "wb") as handle:
            fill(handle)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), shared_file_mode())
            size = handle.tell()
        if overwrite:
            os.replace(temp, target.name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
        else:
            os.link(temp, target.name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd, follow_symlinks=False)
            os.unlink(temp, dir_fd=folder_fd)
        os.fsync(folder_fd)
        return size
    except BaseException as exc:
        _unlink_quietly(folder_fd, temp)
        if isinstance(exc, FileExistsError):
            raise ExportError(f"{target} appeared while {what} was being exported, so it was not overwritten. "
                              "Choose another path, or remove it first.") from None
        if isinstance(exc, OSError):
            raise _export_failed(target, exc, what) from None
        raise
    finally:
        forget_on_signal(cleanup)


def sweep_export_debris(folder_fd: int) -> int:
    """Remove temp files of exports whose process died (SIGKILL) in this folder; returns how many."""
    removed = 0
    for name in os.listdir(folder_fd):
        match = _TEMP.match(name)
        if match is None:
            continue
        try:
            info = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid() \
                and owner_is_dead(int(match.group(1)), int(match.group(2))):
            removed += _unlink_quietly(folder_fd, name)
    return removed


def _unlink_quietly(folder_fd: int, name: str) -> int:
    try:
        os.unlink(name, dir_fd=folder_fd)
        return 1
    except OSError:
        return 0


def _export_failed(target: Path, exc: OSError, what: str) -> MiloError:
    if is_disk_full(exc):
        return DiskFullError(
            f"The disk holding {target.parent} is full, so {what} was not exported (nothing partial was left there). "
            "Free some space (df -h shows how much is left) or choose another destination with -o."
        )
    reason = {
        errno.EACCES: "you may not write there", errno.EPERM: "you may not write there",
        errno.EROFS: "it is on a read-only filesystem", errno.ENOTDIR: "part of that path is a file, not a folder",
        errno.EEXIST: "part of that path is a file, not a folder",
        errno.EISDIR: "that path is a folder", errno.ENOENT: "that folder does not take new files",
    }.get(exc.errno, exc.strerror or str(exc))
    return ExportError(
        f"{what[:1].upper()}{what[1:]} could not be written to {target}: {reason}. Nothing was written there. "
        "Choose a folder you can write with -o PATH (a path ending in / is taken as a folder)."
    )
