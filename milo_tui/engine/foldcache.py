"""A per-run cache of small per-fold results, shared by the training children of one run.

Why: pipelines that differ only in their scaler often hand a tree model the same data in every
way that model can see (engine/search.py builds the keys that say so), and the three
rf-importance selectors fit the same importance forest on each fold. One child computes such a
result; the others find it here.

What it stores: numpy arrays only, written with np.save(allow_pickle=False) and read with
np.load(allow_pickle=False): never a pickle. Names are content keys (sha256 hex of everything
the result depends on, `content_key`), so two children that compute the same key write the same
bytes, and the last rename wins harmlessly.

The hostile world: the directory is created private (0700) inside the project's private state
directory; entries are opened relative to a directory descriptor opened without following links,
and each entry with O_NOFOLLOW, so a planted link is never followed; writes go to a fresh
O_EXCL temporary name, then os.replace. Anything missing, unreadable, truncated, corrupt, of the
wrong shape or not an array is a miss ("compute it"), never an error: the cache is only an
optimisation. The runner removes the directory when a run completes; a stopped run keeps it for
--resume, and --force starts clean.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import shutil
import stat
from dataclasses import dataclass, field

import numpy as np

DIRECTORY_NAME = "foldcache"
_OPEN_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
_OPEN_READ = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
_LARGEST_ENTRY = 64 * 1024 * 1024  # results are small (scores, importances); anything bigger is not ours


def content_key(*parts) -> str:
    """sha256 over `parts`, each tagged with its kind so no two different inputs share bytes:
    arrays by dtype, shape and contents; everything else by its repr (parameters, names)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            contents = np.ascontiguousarray(part)
            header = f"array:{contents.dtype.str}:{contents.shape}:{contents.nbytes};"
            digest.update(header.encode())
            digest.update(contents.tobytes())
        else:
            text = repr(part)
            digest.update(f"repr:{len(text)};".encode())
            digest.update(text.encode())
    return digest.hexdigest()


@dataclass
class FoldCache:
    """The cache at `path` (a directory; created on first use). Picklable: only the path travels."""

    path: str
    hits: int = 0
    misses: int = 0
    _broken: bool = field(default=False, repr=False)

    def get(self, key: str, shape: tuple[int, ...] | None = None, dtype=np.float64, *,
            count: bool = True) -> np.ndarray | None:
        """The array stored under `key`, or None (missing, unreadable, or not the array asked for).
        `count=False`: the caller decides whether it was of use (`used`)."""
        value = self._read(key)
        if value is None or value.dtype != np.dtype(dtype) or (shape is not None and value.shape != tuple(shape)):
            value = None
        if count:
            self.used(value is not None)
        return value

    def used(self, hit: bool) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1

    def put(self, key: str, value: np.ndarray) -> None:
        """Store `value` under `key`; a failure (disk full, a hostile directory) only means no cache."""
        directory = self._open_directory(create=True)
        if directory is None:
            return
        temporary = f".tmp-{key}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(value), allow_pickle=False)
            descriptor = os.open(temporary, _OPEN_NEW, 0o600, dir_fd=directory)
            with os.fdopen(descriptor, "wb") as out:
                out.write(buffer.getvalue())
            os.replace(temporary, key + ".npy", src_dir_fd=directory, dst_dir_fd=directory)
        except (OSError, ValueError):
            try:
                os.unlink(temporary, dir_fd=directory)
            except OSError:
                pass
        finally:
            os.close(directory)

    def _read(self, key: str) -> np.ndarray | None:
        directory = self._open_directory(create=False)
        if directory is None:
            return None
        try:
            descriptor = os.open(key + ".npy", _OPEN_READ, dir_fd=directory)
        except OSError:  # missing, or a link (O_NOFOLLOW refuses it)
            return None
        finally:
            os.close(directory)
        try:
            with os.fdopen(descriptor, "rb") as entry:
                info = os.fstat(entry.fileno())
                if not stat.S_ISREG(info.st_mode) or info.st_size > _LARGEST_ENTRY:
                    return None
                value = np.load(entry, allow_pickle=False)
        except Exception:  # truncated, corrupt, not an .npy, a pickled object array: all a miss
            return None
        return value if isinstance(value, np.ndarray) else None

    def _open_directory(self, *, create: bool) -> int | None:
        """A descriptor of the cache directory, opened without following a link; None when it is
        missing (and not to be created), not ours, or not private."""
        if self._broken:
            return None
        if create:
            try:
                os.mkdir(self.path, 0o700)
            except FileExistsError:
                pass
            except OSError:
                self._broken = True
                return None
        try:
            directory = os.open(self.path, _OPEN_DIR)
        except OSError:
            return None
        info = os.fstat(directory)
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            os.close(directory)
            self._broken = True  # someone else's or shared: do not trust or write it
            return None
        return directory


def remove_cache(path) -> None:
    """Remove a run's cache directory (never through a link: rmtree refuses a linked top folder)."""
    try:
        if os.path.islink(path):
            return
        shutil.rmtree(path)
    except OSError:
        pass
