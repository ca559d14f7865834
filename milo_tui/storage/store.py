"""The read API over a project's models: list, open, export. Used by the CLI and the TUI,
also while a run is still appending to the archives (it only reads what the index has
committed, and bytes before the indexed end are never rewritten)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import joblib

from milo_tui.errors import BadInputError
from milo_tui.project import ProjectPaths, atomic_write_json
from milo_tui.storage.cache import ModelCache
from milo_tui.storage.extract import read_model_bytes
from milo_tui.project import atomic_write, disk_full_error, is_disk_full
from milo_tui.storage.files import key_of, model_path, validate_key
from milo_tui.storage.index import IndexEntry, IndexReader
from milo_tui.storage.stats import ARCHIVES, StorageStats, project_storage_stats
from milo_tui.storage.workspace import Workspace, sweep_stale_workspaces

COPY_CHUNK = 1 << 20


class ModelNotFoundError(BadInputError, KeyError):
    """No model with that key in the project (a KeyError too, for dict-like callers)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass
class ModelEntry:
    key: str
    archive: str  # "main_models" or "ovr_models"
    location: str  # "archive" or "file"
    size: int
    sha256: str | None
    batch: int | None


class ModelStore:
    def __init__(
        self,
        project_root: Path,
        *,
        cache_models: int = 8,
        cache_bytes: int = 256_000_000,
        cache_ttl: float = 60.0,
        workspace_dir: Path | None = None,
    ) -> None:
        self.paths = ProjectPaths.of(project_root)
        self.workspace_dir = workspace_dir
        self.cache = ModelCache(cache_models, cache_bytes, cache_ttl)
        self._readers = {name: IndexReader(self.paths.archive(name)) for name in ARCHIVES}
        self._readers_lock = threading.Lock()  # the TUI calls in from worker threads
        # Workspaces left by processes that died mid-extraction go first.
        self.temp_files_removed = sweep_stale_workspaces(workspace_dir)

    # ---- listing ----

    def list_models(self) -> list[ModelEntry]:
        """Archived models (from the indexes) and model files not archived yet; nothing decompressed."""
        models: list[ModelEntry] = []
        for name in ARCHIVES:
            entries = self._entries(name)
            models.extend(_archived_entry(e) for e in entries.values())
            models.extend(self._pending_entries(name, set(entries)))
        return sorted(models, key=lambda m: (m.archive, m.key))

    def find(self, key: str) -> ModelEntry:
        self._check_key(key)
        for name in ARCHIVES:
            entry = self._entries(name).get(key)
            if entry is not None:
                return _archived_entry(entry)
            path = model_path(self.paths.models_dir(name), key)
            if path.is_file():
                return ModelEntry(key=key, archive=name, location="file", size=path.stat().st_size, sha256=None, batch=None)
        raise self._not_found(key)

    # ---- opening and exporting ----

    def open_model(self, key: str):
        """The loaded model, verified against its sha256 when archived; cached briefly."""
        self._check_key(key)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        with Workspace(self.workspace_dir) as workspace:
            path = self._materialize(key, workspace)
            size = path.stat().st_size
            model = joblib.load(path)
        self.cache.put(key, model, size)
        return model

    def export(
        self,
        key: str,
        dest: Path,
        *,
        bundle: bool = False,
        report_row: dict | None = None,
        overwrite: bool = False,
    ) -> Path:
        """bundle=False: the verified .joblib at `dest` (a file path, or an existing folder ->
        folder/<key>.joblib). bundle=True: a folder with model.joblib, metrics.json and
        params.json (an existing folder -> folder/<key>/). Existing files are not overwritten
        unless overwrite=True. Returns what was written."""
        self._check_key(key)
        dest = Path(dest).expanduser()
        with Workspace(self.workspace_dir) as workspace:
            source = self._materialize(key, workspace)
            if bundle:
                return self._export_bundle(key, source, dest, report_row, overwrite)
            target = dest / f"{key}.joblib" if dest.is_dir() else dest
            self._refuse_existing(target, overwrite)
            _copy_atomically(source, target)
            return target

    def stats(self) -> StorageStats:
        return project_storage_stats(self.paths.root, extra_removed=self.temp_files_removed)

    # ---- internals ----

    def _materialize(self, key: str, workspace: Workspace) -> Path:
        """Put the model's verified bytes in the workspace. A file archived (and deleted)
        between listing and reading is looked up again in the refreshed index."""
        target = workspace.file(f"{key}.joblib")
        for _ in range(3):
            for name in ARCHIVES:
                entry = self._entries(name).get(key)
                if entry is not None:
                    _write_private(target, read_model_bytes(self.paths.archive(name), entry))
                    return target
            for name in ARCHIVES:
                if _copy_if_present(model_path(self.paths.models_dir(name), key), target):
                    return target
        raise self._not_found(key)

    def _entries(self, name: str) -> dict[str, IndexEntry]:
        with self._readers_lock:
            return dict(self._readers[name].refresh())

    def _pending_entries(self, name: str, archived: set[str]) -> list[ModelEntry]:
        directory = self.paths.models_dir(name)
        if not directory.is_dir():
            return []
        out = []
        for path in directory.iterdir():
            key = key_of(path)
            if key is None or key in archived:
                continue
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue  # archived and deleted while we looked
            out.append(ModelEntry(key=key, archive=name, location="file", size=size, sha256=None, batch=None))
        return out

    def _export_bundle(self, key: str, source: Path, dest: Path, report_row: dict | None, overwrite: bool) -> Path:
        folder = dest / key if dest.is_dir() else dest
        if folder.exists() and any(folder.iterdir()) and not overwrite:
            raise BadInputError(
                f"{folder} already exists and is not empty, so model {key} was not exported there. "
                "Choose another path, or remove it first."
            )
        folder.mkdir(parents=True, exist_ok=True)
        _copy_atomically(source, folder / "model.joblib")
        row = dict(report_row or {})
        row.setdefault("key", key)
        atomic_write_json(folder / "metrics.json", row)
        atomic_write_json(folder / "params.json", parse_params(row.get("best_params")))
        return folder

    @staticmethod
    def _refuse_existing(target: Path, overwrite: bool) -> None:
        if target.exists() and not overwrite:
            raise BadInputError(
                f"{target} already exists, so it was not overwritten. Choose another path, or remove it first."
            )

    @staticmethod
    def _check_key(key: str) -> None:
        try:
            validate_key(key)
        except ValueError as exc:
            raise BadInputError(f"{exc}. `milo models PROJECT` lists the keys of a project.") from None

    def _not_found(self, key: str) -> ModelNotFoundError:
        return ModelNotFoundError(
            f"There is no model {key!r} in {self.paths.root}: it is neither in the archives' indexes nor "
            "waiting as a file. `milo models PROJECT` lists the models there are."
        )


def parse_params(value) -> dict:
    """best_params as a dict: JSON, a Python literal (MILO-ML wrote reprs), or kept raw."""
    if isinstance(value, dict):
        return value
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        for parse in (json.loads, ast.literal_eval):
            try:
                parsed = parse(value)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(parsed, dict):
                return parsed
    return {"raw": str(value)}


def _archived_entry(entry: IndexEntry) -> ModelEntry:
    return ModelEntry(key=entry.key, archive=entry.archive, location="archive", size=entry.size,
                      sha256=entry.sha256, batch=entry.batch)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(path, "the extracted model") from exc
        raise


def _copy_if_present(source: Path, target: Path) -> bool:
    """Copy a not-yet-archived model file; False if the writer archived and deleted it first.
    Once open, the file can be deleted by the writer without disturbing the copy."""
    try:
        handle = open(source, "rb")
    except FileNotFoundError:
        return False
    with handle, open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        shutil.copyfileobj(handle, out, COPY_CHUNK)
    return True


def _copy_atomically(source: Path, target: Path) -> None:
    def copy(out) -> None:
        with open(source, "rb") as handle:
            shutil.copyfileobj(handle, out, COPY_CHUNK)

    atomic_write(target, copy, what=f"the exported model {target.name}")
