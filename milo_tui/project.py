"""Where everything of a project lives on disk, and how it is written safely."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from milo_tui.errors import BadInputError, DiskFullError

CONFIG_NAME = "milo.toml"


@dataclass(frozen=True)
class ProjectPaths:
    """The project layout of DESIGN.md, in one place."""

    root: Path

    @classmethod
    def of(cls, root: str | os.PathLike) -> "ProjectPaths":
        return cls(Path(root).resolve())

    @property
    def config(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def main_models(self) -> Path:
        return self.models / "main_models"

    @property
    def ovr_models(self) -> Path:
        return self.models / "ovr_models"

    @property
    def main_archive(self) -> Path:
        return self.models / "main_models.tar.gz"

    @property
    def ovr_archive(self) -> Path:
        return self.models / "ovr_models.tar.gz"

    def models_dir(self, archive: str) -> Path:
        """`archive` is "main_models" or "ovr_models"."""
        return self.models / archive

    def archive(self, archive: str) -> Path:
        return self.models / f"{archive}.tar.gz"

    @property
    def report(self) -> Path:
        return self.root / "report.csv"

    @property
    def metadata(self) -> Path:
        return self.root / "metadata.json"

    @property
    def class_results(self) -> Path:
        return self.root / "class_results"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def state(self) -> Path:
        """Private working state of the engine: cached arrays, pid file, logs."""
        return self.root / ".milo"

    @property
    def engine_log(self) -> Path:
        return self.state / "engine.log"

    @property
    def pid_file(self) -> Path:
        return self.state / "engine.pid"


def require_project(root: str | os.PathLike) -> ProjectPaths:
    """The paths of an existing project, or one clear BadInputError saying what is missing."""
    paths = ProjectPaths.of(root)
    if paths.root.exists() and not paths.root.is_dir():
        raise BadInputError(f"{paths.root} is a file, not a project folder. Give the folder that holds milo.toml.")
    if not paths.root.is_dir():
        raise BadInputError(
            f"There is no project folder at {paths.root}. Create one with "
            "`milo init DIR --train FILE --test FILE --target COLUMN`, or check the path."
        )
    if not paths.config.is_file():
        raise BadInputError(
            f"{paths.root} has no milo.toml, so it is not a milo project. Create one with "
            "`milo init DIR --train FILE --test FILE --target COLUMN`, or check the path."
        )
    return paths


def current_umask() -> int:
    """The process umask, read without changing it (os.umask can only be read by setting it,
    which would race with other threads creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def shared_file_mode() -> int:
    """The mode a plain open() would give a new file: 0o644 under umask 022, 0o600 under 077.
    A project's files are shared the way the user shares everything else; only temp
    workspaces and the engine's .milo state stay private regardless."""
    return 0o666 & ~current_umask()


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full_error(path: Path, what: str) -> DiskFullError:
    return DiskFullError(
        f"The disk holding {Path(path).parent} is full, so {what} could not be written. "
        "Everything written before is intact. Free some space (df -h shows how much is left) "
        "and run `milo run PROJECT --resume` to continue where the run stopped."
    )


def raise_if_disk_full(path: Path, exc: BaseException, what: str | None = None) -> None:
    if is_disk_full(exc):
        raise disk_full_error(path, what or Path(path).name) from exc


def atomic_write(path: Path, fill: Callable[[BinaryIO], None], *, what: str | None = None,
                 suffix: str = ".tmp", mode: int | None = None) -> int:
    """Write via `fill(handle)` into a temp file beside `path`, fsync, rename; returns the size.

    Readers and crashes see the old file or the new one, never half of one. A
    full disk becomes DiskFullError (naming `what`), and no temp file is left.
    The file gets `mode`, or by default what the umask allows (mkstemp's 0600
    would hide results from colleagues who can read everything else).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            fill(handle)
            handle.flush()
            os.fsync(handle.fileno())
            size = handle.tell()
        os.chmod(tmp, mode if mode is not None else shared_file_mode())
        os.replace(tmp, path)
        return size
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise_if_disk_full(path, exc, what)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj, *, compact: bool = False) -> None:
    """`compact` for machine-read files with long arrays (curves): indenting them triples their size."""
    from milo_tui.events import json_safe  # NaN is not JSON: it becomes null

    layout = {"separators": (",", ":")} if compact else {"indent": 2}
    atomic_write_text(path, json.dumps(json_safe(obj), default=str, allow_nan=False, **layout) + "\n")
