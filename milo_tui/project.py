"""Where everything of a project lives on disk, and how it is written safely."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from milo_tui.errors import DiskFullError

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


def raise_if_disk_full(path: Path, exc: OSError) -> None:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise DiskFullError(
            f"The disk holding {path.parent} is full, so {path.name} could not be written. "
            "Everything written before is intact. Free some space (df -h shows how much is left) "
            "and run `milo run PROJECT --resume` to continue where the run stopped."
        ) from exc


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write temp file, fsync, rename: readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise_if_disk_full(path, exc)
        raise
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj) -> None:
    from milo_tui.events import json_safe  # NaN is not JSON: it becomes null

    atomic_write_text(path, json.dumps(json_safe(obj), indent=2, default=str, allow_nan=False) + "\n")
