"""Progressive saving: one model, one uncompressed .joblib file, written atomically.

Called in the worker process right after a model is fitted. Compression is not
done here: it happens once, when the archive writer packs a batch.
"""

from __future__ import annotations

import re
from pathlib import Path

import joblib

from milo_tui.project import atomic_write, disk_full_error, is_disk_full  # noqa: F401 (re-exported)

MODEL_SUFFIX = ".joblib"
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

