"""Storage statistics of a project: live (from the writers) or for a finished project (from disk)."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from milo_tui.project import ProjectPaths
from milo_tui.storage.files import key_of, regular_file_size
from milo_tui.storage.index import IndexReader

ARCHIVES = ("main_models", "ovr_models")


@dataclass
class StorageStats:
    models_saved: int  # archived models plus model files waiting to be archived
    bytes_before_compression: int  # of every saved model
    bytes_in_archives: int  # size of the archive files
    compression_ratio: float  # reduction of the archived models: 0.68 = archives 68 % smaller than the files
    archives: int
    batches: int
    temp_files_removed: int  # model files deleted once archived, plus leftovers and stale workspaces cleaned
    disk_free_bytes: int
    files_pending: int  # model files not archived yet

    def as_event(self) -> dict:
        """Payload of the `storage` event."""
        return asdict(self)


def disk_free(path: Path) -> int:
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def _reduction(raw: int, compressed: int) -> float:
    return round(1.0 - compressed / raw, 4) if raw > 0 else 0.0


def _pending_files(directory: Path, archived: set[str]) -> list[Path]:
    """Model files whose key is not archived yet. (A file whose key is archived is one
    the writer is about to delete; it is counted once, as archived.)"""
    if not directory.is_dir():
        return []
    return [p for p in directory.iterdir()
            if key_of(p) is not None and key_of(p) not in archived and regular_file_size(p) is not None]


def project_storage_stats(project_root: Path, *, extra_removed: int = 0) -> StorageStats:
    """Computed from the indexes and folders on disk; nothing is decompressed.

    For a finished project "temporary files removed" counts the archived models
    whose individual file is gone (each was deleted once archived)."""
    paths = ProjectPaths.of(project_root)
    models = raw = archive_bytes = archived_raw = archives = batches = removed = pending_count = 0
    for name in ARCHIVES:
        archive_path = paths.archive(name)
        reader = IndexReader(archive_path)
        entries = reader.refresh()
        sizes = {key: entry.size for key, entry in entries.items()}
        pending = _pending_files(paths.models_dir(name), set(sizes))
        if archive_path.exists():
            archives += 1
            archive_bytes += archive_path.stat().st_size
        batches += len(reader.batches)
        archived_raw += sum(sizes.values())
        models += len(sizes) + len(pending)
        raw += sum(sizes.values()) + sum(_size(p) for p in pending)
        pending_count += len(pending)
        removed += sum(1 for key in sizes if not (paths.models_dir(name) / f"{key}.joblib").exists())
    return StorageStats(
        models_saved=models,
        bytes_before_compression=raw,
        bytes_in_archives=archive_bytes,
        compression_ratio=_reduction(archived_raw, archive_bytes),
        archives=archives,
        batches=batches,
        temp_files_removed=removed + extra_removed,
        disk_free_bytes=disk_free(paths.models),
        files_pending=pending_count,
    )


def live_storage_stats(project_root: Path, writers: Iterable) -> StorageStats:
    """For the engine's `storage` events: from its ArchiveWriters, without reading the indexes."""
    paths = ProjectPaths.of(project_root)
    models = raw = archive_bytes = archived_raw = archives = batches = removed = pending = 0
    for writer in writers:
        s = writer.stats
        pending_keys = writer.pending_keys()
        pending_bytes = sum(_size(writer.source_dir / f"{k}.joblib") for k in pending_keys)
        models += s.models + len(pending_keys)
        raw += s.raw_bytes + pending_bytes
        archived_raw += s.raw_bytes
        archive_bytes += s.compressed_bytes
        archives += 1 if s.compressed_bytes else 0
        batches += s.batches
        removed += s.files_removed
        pending += len(pending_keys)
    return StorageStats(
        models_saved=models, bytes_before_compression=raw, bytes_in_archives=archive_bytes,
        compression_ratio=_reduction(archived_raw, archive_bytes), archives=archives, batches=batches,
        temp_files_removed=removed, disk_free_bytes=disk_free(paths.models), files_pending=pending,
    )


def _size(path: Path) -> int:
    return regular_file_size(path) or 0  # a link is not followed (and not a model)
