"""`--resume`: believe a finished model only when its archive (or its file on disk) proves it.

report.csv says which models finished; the archives hold them. A crash, a full
disk or a hand that deleted or truncated an archive can make the two disagree.
Before a resumed run plans anything, each archive is recovered (torn tail
repaired, unindexed batches adopted, the index rebuilt if it lies), then every
model the report calls finished is checked: its index entry must be present
(trusted: written by the engine, not rebuilt by scanning) and its bytes must
read back with the recorded sha256, or its .joblib file
must still wait in the models folder to be archived. Every pipeline with a
model that fails the check is trained again, all of its rows leave the report,
and nothing already verified in an archive is archived a second time.

A missing report.csv beside archived models is refused rather than guessed
at: the report holds the metrics, which the archives do not, and retraining
everything would archive each model twice. The user restores the report or
starts over with --force.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from milo_tui.errors import BadInputError
from milo_tui.keys import ModelKey
from milo_tui.project import ProjectPaths
from milo_tui.storage.archive import RecoveryReport
from milo_tui.storage.files import key_of
from milo_tui.storage.extract import verify_batch
from milo_tui.storage.index import IndexEntry, IndexReader, index_path, read_index


@dataclass
class Reconciliation:
    kept_rows: list[dict]  # report rows still true
    requeued: list[str] = field(default_factory=list)  # report keys not found in any archive: retrained
    notes: list[str] = field(default_factory=list)  # what recovery did, for the journal and the screen


def verified_in_archive(archive_path: Path) -> set[str]:
    """Keys whose bytes read back from `archive_path` with the sha256 of a trusted index entry.

    An entry whose hash came from scanning the archive itself proves nothing (see
    docs/STORAGE.md), so its model is trained again. Each batch is decompressed once.
    """
    batches: dict[int, list[IndexEntry]] = defaultdict(list)
    for entry in IndexReader(archive_path).refresh().values():
        if entry.trusted:
            batches[entry.offset].append(entry)
    good: set[str] = set()
    for entries in batches.values():
        try:
            results = verify_batch(archive_path, entries)
        except OSError:
            continue
        good.update(key for key, error in results.items() if error is None)
    return good


def waiting_files(models_dir: Path) -> set[str]:
    """Keys of model files saved but not yet archived (regular files only; links are not ours)."""
    if not models_dir.is_dir():
        return set()
    return {key for path in models_dir.iterdir()
            if (key := key_of(path)) is not None and path.is_file() and not path.is_symlink()}


def describe_recovery(report: RecoveryReport) -> list[str]:
    """What ArchiveWriter.recover() did, one sentence per repair."""
    notes = []
    if report.truncated_bytes:
        notes.append(f"{report.archive}: cut {report.truncated_bytes} torn bytes off the archive's end"
                     + (f" (kept in {report.saved_tail.name})" if report.saved_tail else ""))
    if report.adopted_batches:
        notes.append(f"{report.archive}: adopted {report.adopted_batches} whole batches missing from the index")
    if report.index_rebuilt:
        notes.append(f"{report.archive}: rebuilt the index by scanning the archive")
    if report.sources_removed:
        notes.append(f"{report.archive}: removed {report.sources_removed} model files already archived")
    notes.extend(f"{report.archive}: {problem}" for problem in report.problems)
    return notes


def refuse_without_report(paths: ProjectPaths) -> None:
    """--resume with report.csv gone but models archived: refuse (see the module's docstring)."""
    if paths.report.exists():
        return
    archived = [name for name in ("main_models", "ovr_models") if _holds_models(paths.archive(name))]
    if archived:
        raise BadInputError(
            f"{paths.report} is missing, but {' and '.join(a + '.tar.gz' for a in archived)} hold finished "
            "models. Without the report their metrics are unknown, and resuming would train and archive every "
            "model a second time, so nothing was changed. Restore report.csv (from a backup) and resume again, "
            "or start over with `milo run PROJECT --force` (deletes the old results)."
        )


def _holds_models(archive_path: Path) -> bool:
    parsed = read_index(index_path(archive_path))
    if parsed is not None and parsed.batches:
        return True
    try:
        return archive_path.stat().st_size > 1024  # more than an empty archive's trailer
    except FileNotFoundError:
        return False


def reconcile(report_rows: list[dict], proven: set[str]) -> Reconciliation:
    """Keep the report rows whose models are `proven`; re-queue every pipeline with a model that is not.

    `report_rows`: the ok rows of report.csv. `proven`: keys verified in an archive or waiting on disk.
    """
    owners = [r for r in report_rows if r.get("archive")]
    missing = [r["key"] for r in owners if r["key"] not in proven]
    # A main pipeline's rows were written together and are retrained together; an OvR refit alone.
    redo_pipelines = {_pipeline(k) for k in missing if _is_main(k)}
    redo_keys = set(missing)
    kept = [r for r in report_rows
            if r["key"] not in redo_keys and not (_is_main(r["key"]) and _pipeline(r["key"]) in redo_pipelines)]
    result = Reconciliation(kept_rows=kept, requeued=sorted(missing))
    if missing:
        shown = ", ".join(sorted(missing)[:3]) + (", ..." if len(missing) > 3 else "")
        result.notes.append(f"{len(missing)} models that report.csv lists as finished are not in any archive "
                            f"with a matching sha256, so they are trained again ({shown})")
    return result


def _is_main(key: str) -> bool:
    try:
        return ModelKey.parse(key).ovr_class is None
    except ValueError:
        return True


def _pipeline(key: str) -> str:
    try:
        return ModelKey.parse(key).pipeline
    except ValueError:
        return key
