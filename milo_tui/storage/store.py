"""The read API over a project's models: list, open, export. Used by the CLI and the TUI,
also while a run is still appending to the archives (it only reads what the index has
committed, and bytes before the indexed end are never rewritten).

`open_store(project_root)` is the one way both front ends get a store: it reads the
project's cache settings from milo.toml (defaults if it has none or a broken one).
"""

from __future__ import annotations

import ast
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import joblib

from milo_tui.errors import BadInputError, MiloError
from milo_tui.project import ProjectPaths, disk_full_error, is_disk_full
from milo_tui.storage.cache import ModelCache
from milo_tui.storage.export import bundle_folder, model_target, write_exported
from milo_tui.storage.extract import copy_model, untrusted_model_error
from milo_tui.storage.files import COPY_CHUNK, key_of, model_path, open_model_file, regular_file_size, validate_key
from milo_tui.storage.index import NEEDS_FULL_READ, IndexEntry, IndexReader, lookup_entry
from milo_tui.storage.stats import ARCHIVES, StorageStats, project_storage_stats
from milo_tui.storage.workspace import Workspace, sweep_stale_workspaces


def open_store(project_root: Path, *, trust_archive: bool = False, workspace_dir: Path | None = None) -> "ModelStore":
    """The model store of a project, with its configured cache (CLI and TUI both use this)."""
    from milo_tui import config as cfg  # late: the config module pulls in the search settings

    settings: dict = {}
    try:
        storage = cfg.load(Path(project_root)).storage
        settings = {"cache_models": storage["cache_models"], "cache_bytes": storage["cache_bytes"],
                    "cache_ttl": storage["cache_ttl"]}
    except (MiloError, KeyError):
        pass  # no milo.toml, or a broken one: the models can still be read with the defaults
    return ModelStore(Path(project_root), trust_archive=trust_archive, workspace_dir=workspace_dir, **settings)


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
    # False when the only hash is one computed from the archive itself (no index, or one rebuilt by
    # scanning): such a model is not loaded unless the store trusts the archive.
    trusted: bool = True


class ModelStore:
    def __init__(
        self,
        project_root: Path,
        *,
        cache_models: int = 8,
        cache_bytes: int = 256_000_000,
        cache_ttl: float = 60.0,
        workspace_dir: Path | None = None,
        trust_archive: bool = False,
    ) -> None:
        self.paths = ProjectPaths.of(project_root)
        self.workspace_dir = workspace_dir
        self.trust_archive = trust_archive  # load models whose hash only the archive itself vouches for
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
            entry = self._entry(name, key)
            if entry is not None:
                return _archived_entry(entry)
            size = regular_file_size(model_path(self.paths.models_dir(name), key))
            if size is not None:
                return ModelEntry(key=key, archive=name, location="file", size=size, sha256=None, batch=None)
        raise self._not_found(key)

    # ---- opening and exporting ----

    def open_model(self, key: str):
        """The loaded model, verified against its sha256 when archived; cached briefly."""
        self._check_key(key)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        with Workspace(self.workspace_dir) as workspace:
            path = workspace.file(f"{key}.joblib")
            size = _to_private_file(path, lambda handle: self._write_verified(key, handle))
            model = joblib.load(path)
        self.cache.put(key, model, size)
        return model

    def export(
        self,
        key: str,
        dest: str | Path,
        *,
        bundle: bool = False,
        report_row: dict | None = None,
        overwrite: bool = False,
    ) -> Path:
        """bundle=False: the verified .joblib at `dest` (a file path, or a folder -> folder/<key>.joblib;
        a path ending in "/" is a folder, created if missing). bundle=True: a folder with model.joblib,
        metrics.json and params.json (an existing folder -> folder/<key>/). Existing files are not
        overwritten unless overwrite=True. The model's bytes are streamed from the archive into the
        destination once, and only renamed into place once their hash matched. Returns what was written."""
        self._check_key(key)
        if bundle:
            return self._export_bundle(key, bundle_folder(dest, key), report_row, overwrite)
        target = model_target(dest, key)
        write_exported(target, lambda out: self._write_verified(key, out), overwrite=overwrite,
                       what=f"model {key}")
        return target

    def stats(self) -> StorageStats:
        return project_storage_stats(self.paths.root, extra_removed=self.temp_files_removed)

    # ---- internals ----

    def _write_verified(self, key: str, out: BinaryIO) -> int:
        """Stream the model's verified bytes to `out`; returns the size. A file archived (and
        deleted) between listing and reading is looked up again in the refreshed index."""
        for _ in range(3):
            for name in ARCHIVES:
                entry = self._entry(name, key)
                if entry is None:
                    continue
                if entry.trusted or self.trust_archive:
                    return copy_model(self.paths.archive(name), entry, out)
                # Only the archive vouches for this copy; the engine's own file, if it is still
                # there (the index is not written yet), is the trusted source.
                size = _copy_model_file(model_path(self.paths.models_dir(name), key), out)
                if size is None:
                    raise untrusted_model_error(entry)
                return size
            for name in ARCHIVES:
                size = _copy_model_file(model_path(self.paths.models_dir(name), key), out)
                if size is not None:
                    return size
        raise self._not_found(key)

    def _entry(self, name: str, key: str) -> IndexEntry | None:
        """One model's entry: looked up lazily when the index allows it (a huge index is not
        parsed to extract one model), else from the full reader."""
        found = lookup_entry(self.paths.archive(name), key)
        if found is NEEDS_FULL_READ:
            return self._entries(name).get(key)
        return found

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
            size = regular_file_size(path)
            if size is None:
                continue  # archived and deleted while we looked, or a link that is not ours
            out.append(ModelEntry(key=key, archive=name, location="file", size=size, sha256=None, batch=None))
        return out

    def _export_bundle(self, key: str, folder: Path, report_row: dict | None, overwrite: bool) -> Path:
        if folder.is_dir() and any(folder.iterdir()) and not overwrite:
            raise BadInputError(
                f"{folder} already exists and is not empty, so model {key} was not exported there. "
                "Choose another path, or remove it first."
            )
        row = dict(report_row or {})
        row.setdefault("key", key)
        write_exported(folder / "model.joblib", lambda out: self._write_verified(key, out), overwrite=overwrite,
                       what=f"model {key}")
        for name, obj in (("metrics.json", row), ("params.json", parse_params(row.get("best_params")))):
            text = _json_text(obj)
            write_exported(folder / name, lambda out, text=text: out.write(text), overwrite=True,
                           what=f"the {name} of model {key}")
        return folder

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
                      sha256=entry.sha256, batch=entry.batch, trusted=entry.trusted)


def _json_text(obj) -> bytes:
    from milo_tui.events import json_safe  # NaN is not JSON: it becomes null

    return (json.dumps(json_safe(obj), default=str, allow_nan=False, indent=2) + "\n").encode("utf-8")


def _to_private_file(path: Path, fill) -> int:
    """A new 0600 file (never through a link) filled by `fill(handle)`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            return fill(handle)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(path, "the extracted model") from exc
        raise


def _copy_model_file(source: Path, out: BinaryIO) -> int | None:
    """Copy a not-yet-archived model file (never through a link); None if the writer archived
    and deleted it first. Once open, the writer can delete it without disturbing the copy."""
    fd = open_model_file(source)
    if fd is None:
        return None
    copied = 0
    with open(fd, "rb") as handle:
        for chunk in iter(lambda: handle.read(COPY_CHUNK), b""):
            out.write(chunk)
            copied += len(chunk)
    return copied
