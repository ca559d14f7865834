"""Model storage: progressive saving, indexed tar.gz archives, on-demand extraction.

docs/STORAGE.md describes the archive and index formats and the crash-safety rules.
"""

from milo_tui.storage.archive import ArchiveBusyError, ArchiveStats, ArchiveWriter, BatchInfo, RecoveryReport
from milo_tui.storage.cache import ModelCache
from milo_tui.storage.files import model_path, save_model, validate_key
from milo_tui.storage.stats import StorageStats, live_storage_stats, project_storage_stats
from milo_tui.storage.store import ModelEntry, ModelNotFoundError, ModelStore, open_store

__all__ = [
    "ArchiveBusyError", "ArchiveStats", "ArchiveWriter", "BatchInfo", "RecoveryReport", "ModelCache",
    "model_path", "save_model", "validate_key", "StorageStats", "live_storage_stats", "project_storage_stats",
    "ModelEntry", "ModelNotFoundError", "ModelStore", "open_store",
]
