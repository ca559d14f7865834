"""Progressive saving: one model, one uncompressed .joblib file, written atomically.

Called in the worker process right after a model is fitted. Compression is not
done here: it happens once, when the archive writer packs a batch.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

import joblib

from milo_tui.errors import IntegrityError
from milo_tui.project import atomic_write, disk_full_error, is_disk_full, shared_file_mode  # noqa: F401 (re-exported)

MODEL_SUFFIX = ".joblib"
COPY_CHUNK = 1 << 20
TEMP_SUFFIX = ".tmp"
_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")
MAX_KEY_LENGTH = 200  # keeps "<key>.joblib" well inside every filesystem's name limit


def validate_key(key: str) -> str:
    """Keys name files and tar members, so only a safe alphabet is allowed."""
    if not isinstance(key, str) or not _KEY.match(key) or ".." in key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(
            f"{key!r} is not a valid model key: use letters, digits, '_', '.' and '-' only, "
            f"no '..', at most {MAX_KEY_LENGTH} characters"
        )
    return key


def model_path(directory: Path, key: str) -> Path:
    return Path(directory) / f"{validate_key(key)}{MODEL_SUFFIX}"


def key_of(path: Path) -> str | None:
    """The key of a finished model file, or None for anything else (temp files, strays)."""
    name = Path(path).name
    if name.startswith(".") or not name.endswith(MODEL_SUFFIX):
        return None
    key = name[: -len(MODEL_SUFFIX)]
    try:
        return validate_key(key)
    except ValueError:
        return None


def open_model_file(path: Path) -> int | None:
    """A read descriptor of a model file, never through a link: None if it is missing.

    A link (or a FIFO, a device, a folder) planted under a model's name is not
    a model this program saved, so it is refused with NotARegularFileError; a
    link would otherwise have its target's bytes archived or loaded as that model.
    O_NONBLOCK keeps a planted FIFO from blocking the open."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotARegularFileError(path, "a link") from None
        raise
    kind = stat.S_IFMT(os.fstat(fd).st_mode)
    if kind != stat.S_IFREG:
        os.close(fd)
        raise NotARegularFileError(path, "a folder" if kind == stat.S_IFDIR else "not a regular file")
    os.set_blocking(fd, True)
    return fd


def regular_file_size(path: Path) -> int | None:
    """Size of a model file if it is a regular file (not followed if it is a link), else None."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


class NotARegularFileError(IntegrityError):
    def __init__(self, path: Path, kind: str) -> None:
        self.path = Path(path)
        super().__init__(
            f"{self.path} is {kind}, not a model file milo saved, so it was neither archived nor loaded "
            "(a link there would hand over another file's bytes as that model). Remove it; "
            "`milo run PROJECT --resume` then trains the model again."
        )


def is_save_leftover(path: Path) -> bool:
    """A temp file of save_model that a killed worker left behind."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(TEMP_SUFFIX) and f"{MODEL_SUFFIX}." in name


def save_model(model, directory: Path, key: str) -> int:
    """joblib.dump uncompressed to directory/<key>.joblib atomically; returns bytes written.

    The temp file lives in the same directory (so os.replace is atomic) and is
    fsynced before the rename: a reader or a crash sees no file or the whole file.
    """
    target = model_path(directory, key)
    return atomic_write(target, lambda handle: joblib.dump(model, handle, compress=0),
                        what=f"model {key}", suffix=TEMP_SUFFIX)

