"""The archive writer: packs finished model files into an indexed tar.gz, batch by batch.

Write order of one batch, chosen so that a kill at any instant loses nothing:

1. the batch is compressed as one gzip member and written over the old
   trailer (at the end of the last indexed batch), followed by a new trailer;
   the file is fsynced;
2. one line describing the batch is appended to the index and fsynced: this
   is the commit point;
3. only then are the batch's source .joblib files deleted.

A kill before 2 leaves bytes past the indexed end that `recover()` either
adopts (a whole batch whose index line is missing) or cuts off (a torn one);
the source files are still there. A kill after 2 leaves source files whose
hash matches the archive, which `recover()` deletes. Bytes before the indexed
end are never rewritten, so readers can extract while a run appends.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat as stat_module
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from milo_tui.errors import MiloError
from milo_tui.storage.files import (
    MODEL_SUFFIX, NotARegularFileError, disk_full_error, is_disk_full, is_save_leftover, key_of, model_path,
    open_model_file, regular_file_size, validate_key,
)
from milo_tui.storage.gzmembers import TRAILER, new_compressor
from milo_tui.storage.index import (
    BatchRecord, MemberRecord, append_batch, archive_name, index_matches_archive, index_path,
    read_index, scan_tail, vouch_for, write_all, write_index,
)
from milo_tui.storage.tarmember import header_bytes, padding

READ_CHUNK = 1 << 20
WRITE_BUFFER = 1 << 20


class ArchiveBusyError(MiloError):
    pass


@dataclass
class BatchInfo:
    archive: str
    batch: int
    keys: list[str]
    raw_bytes: int
    compressed_bytes: int
    seconds: float

    def as_event(self) -> dict:
        """Payload of the `archive_batch` event."""
        return {
            "archive": self.archive,
            "batch": self.batch,
            "models": len(self.keys),
            "keys": list(self.keys),
            "raw_bytes": self.raw_bytes,
            "compressed_bytes": self.compressed_bytes,
            "compression_ratio": reduction(self.raw_bytes, self.compressed_bytes),
            "seconds": round(self.seconds, 4),
        }


@dataclass
class ArchiveStats:
    archive: str
    models: int
    raw_bytes: int
    compressed_bytes: int  # the archive file's size, trailer included
    batches: int
    files_removed: int  # source files and save leftovers this writer deleted

    @property
    def compression_ratio(self) -> float:
        return reduction(self.raw_bytes, self.compressed_bytes)


@dataclass
class RecoveryReport:
    archive: str
    index_rebuilt: bool = False
    adopted_batches: int = 0  # whole batches found past the index's end and added to it
    truncated_bytes: int = 0  # torn bytes cut off the archive's end
    saved_tail: Path | None = None  # where cut bytes were kept when no index vouched for them
    trailer_written: bool = False
    sources_removed: int = 0  # source files already archived with the same hash
    leftovers_removed: int = 0  # temp files of saves that a kill interrupted
    queued: list[str] = field(default_factory=list)  # source files waiting to be archived
    replaced: list[str] = field(default_factory=list)  # queued keys whose archived copy differs
    problems: list[str] = field(default_factory=list)
    # batches indexed by scanning whose hashes no saved model file vouches for: readers refuse
    # them unless told to trust the archive (docs/STORAGE.md, "What the index protects")
    untrusted_batches: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.index_rebuilt or self.adopted_batches or self.truncated_bytes or self.trailer_written
                    or self.sources_removed or self.leftovers_removed)


def untrusted_problem(archive_path: Path, batches: int) -> str:
    return (
        f"{batches} batch(es) of {Path(archive_path).name} were indexed by scanning the archive, and no saved "
        "model file vouches for their hashes, so milo will not load those models unless told to trust the "
        "archive (`milo extract ... --trust-archive`)"
    )


def reduction(raw: int, compressed: int) -> float:
    """Share of bytes saved by compression: 0.68 means 68 % smaller."""
    return round(1.0 - compressed / raw, 4) if raw > 0 else 0.0


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    fd = open_model_file(path)
    if fd is None:
        raise FileNotFoundError(path)
    with open(fd, "rb") as handle:
        for chunk in iter(lambda: handle.read(READ_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ArchiveWriter:
    """One writer per archive (a lock file enforces it). Not thread-safe: use from one thread."""

    def __init__(
        self,
        archive_path: Path,
        source_dir: Path,
        *,
        batch_models: int = 50,
        batch_bytes: int = 64_000_000,
        level: int = 6,
        keep_sources: bool = False,
        on_batch: Callable[[BatchInfo], None] | None = None,
    ) -> None:
        if batch_models < 1 or batch_bytes < 1 or not 1 <= level <= 9:
            raise ValueError("batch_models and batch_bytes must be positive and level between 1 and 9")
        self.archive_path = Path(archive_path)
        self.source_dir = Path(source_dir)
        self.index_path = index_path(self.archive_path)
        self.name = archive_name(self.archive_path)
        self.batch_models = batch_models
        self.batch_bytes = batch_bytes
        self.level = level
        self.keep_sources = keep_sources  # the benchmark keeps them to build other archives from
        self.on_batch = on_batch
        self._batches: list[BatchRecord] = []
        self._archived: dict[str, MemberRecord] = {}
        self._queue: dict[str, int] = {}  # key -> size, in arrival order
        self._files_removed = 0
        self._recovered = False
        self._lock_fd: int | None = None
        # Model files refused because they were links or not regular files (never archived).
        self.refused: list[str] = []

    # ---- public API ----

    def recover(self) -> RecoveryReport:
        """Repair a torn tail, rebuild a lost or stale index, delete source files already
        archived, queue the others. Safe to call again; called by add() if not yet."""
        self._acquire_lock()
        self.archive_path.parent.mkdir(parents=True, exist_ok=True)
        self.source_dir.mkdir(parents=True, exist_ok=True)
        report = RecoveryReport(archive=self.name)
        self._batches = self._recover_archive(report)
        self._archived = {m.key: m for b in self._batches for m in b.members}
        self._queue = {}
        self._recover_sources(report)
        self._recovered = True
        return report

    def add(self, key: str) -> BatchInfo | None:
        """Queue source_dir/<key>.joblib; write a batch when one is full."""
        self._ensure_recovered()
        path = model_path(self.source_dir, validate_key(key))
        size = regular_file_size(path)
        if size is None:
            if os.path.lexists(path):
                raise NotARegularFileError(path, "a link or not a regular file")
            if key in self._archived:
                return None  # recover() found and archived it already
            raise MiloError(
                f"The model file {path} was expected but is missing, so model {key} cannot be archived. "
                "It may have been deleted by hand; re-run the training with --resume to rebuild it."
            ) from None
        self._queue.pop(key, None)
        self._queue[key] = size
        last = None
        while self._batch_ready():
            last = self._write_next_batch() or last
        return last

    def flush(self) -> BatchInfo | None:
        """Archive everything queued (in as many batches as the limits ask for)."""
        self._ensure_recovered()
        last = None
        while self._queue:
            last = self._write_next_batch() or last
        return last

    def archived_keys(self) -> set[str]:
        return set(self._archived)

    def pending_keys(self) -> list[str]:
        return list(self._queue)

    @property
    def stats(self) -> ArchiveStats:
        size = self.archive_path.stat().st_size if self.archive_path.exists() else 0
        return ArchiveStats(
            archive=self.name,
            models=len(self._archived),
            raw_bytes=sum(m.size for m in self._archived.values()),
            compressed_bytes=size,
            batches=len(self._batches),
            files_removed=self._files_removed,
        )

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "ArchiveWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- recovery ----

    def _recover_archive(self, report: RecoveryReport) -> list[BatchRecord]:
        parsed = read_index(self.index_path)
        if not self.archive_path.exists():
            if parsed is not None and parsed.batches:
                report.problems.append(
                    f"{self.index_path.name} lists {len(parsed.batches)} batches but {self.archive_path.name} "
                    "is missing; the index was reset"
                )
                write_index(self.index_path, [])
                report.index_rebuilt = True
            return []
        with open(self.archive_path, "r+b") as handle:
            file_end = os.fstat(handle.fileno()).st_size
            batches = parsed.batches if parsed is not None else []
            trusted = parsed is not None and index_matches_archive(handle, batches, file_end)
            if not trusted:
                report.index_rebuilt = True
                if parsed is not None:
                    report.problems.append(f"{self.index_path.name} did not match the archive; rebuilt by scanning")
                # The indexed batches that still match (a truncated archive keeps its start) stay
                # trusted: each passes the same check a fully matching index does.
                batches = _matching_prefix(handle, batches, file_end)
            start = batches[-1].end if batches else 0
            tail = scan_tail(handle, start, len(batches), file_end, where=str(self.archive_path))
            found = [vouch_for(b, self.source_dir) for b in tail.batches]
            report.untrusted_batches = sum(1 for b in found if b.scanned)
            if report.untrusted_batches:
                report.problems.append(untrusted_problem(self.archive_path, report.untrusted_batches))
            batches = batches + found
            report.adopted_batches = len(tail.batches) if trusted else 0
            if tail.problem:
                report.problems.append(tail.problem)
            self._repair_tail(handle, tail, file_end, keep_cut=not trusted, report=report)
        if report.index_rebuilt or report.adopted_batches or (parsed is not None and not parsed.complete) or parsed is None:
            write_index(self.index_path, batches)
        return batches

    def _repair_tail(self, handle, tail, file_end: int, *, keep_cut: bool, report: RecoveryReport) -> None:
        """Make the file end with exactly one trailer after the last whole batch."""
        good_end = tail.good_end
        if tail.trailer_end is not None and tail.trailer_end == file_end and tail.problem is None:
            return
        cut = file_end - good_end
        if cut > 0 and keep_cut and not (tail.trailer_end is not None and tail.trailer_end == file_end):
            # No index vouched for these bytes: keep a copy rather than destroy what we cannot read.
            report.saved_tail = self.archive_path.with_name(f"{self.archive_path.name}.cut-{int(time.time())}")
            handle.seek(good_end)
            report.saved_tail.write_bytes(handle.read(cut))
        fd = handle.fileno()
        os.ftruncate(fd, good_end)
        os.pwrite(fd, TRAILER, good_end)
        os.fsync(fd)
        report.truncated_bytes = cut
        report.trailer_written = True

    def _recover_sources(self, report: RecoveryReport) -> None:
        candidates: list[tuple[float, str, int]] = []
        for path in self.source_dir.iterdir():
            if is_save_leftover(path):
                if self._unlink(path):
                    report.leftovers_removed += 1
                continue
            key = key_of(path)
            if key is None:
                continue
            info = os.lstat(path)
            if not stat_module.S_ISREG(info.st_mode):
                # Never followed: a planted link would hand its target over as this model.
                report.problems.append(str(NotARegularFileError(path, "a link" if stat_module.S_ISLNK(info.st_mode)
                                                                else "not a regular file")))
                continue
            archived = self._archived.get(key)
            if archived is not None and archived.size == info.st_size and archived.sha256 == sha256_of(path):
                if not self.keep_sources and self._unlink(path):
                    report.sources_removed += 1
                continue
            if archived is not None:
                report.replaced.append(key)
            candidates.append((info.st_mtime, key, info.st_size))
        for _, key, size in sorted(candidates):
            self._queue[key] = size
        report.queued = list(self._queue)

    # ---- writing a batch ----

    def _ensure_recovered(self) -> None:
        if not self._recovered:
            self.recover()

    def _batch_ready(self) -> bool:
        return len(self._queue) >= self.batch_models or sum(self._queue.values()) >= self.batch_bytes

    def _next_batch_keys(self) -> list[str]:
        keys: list[str] = []
        total = 0
        for key, size in self._queue.items():
            if keys and (len(keys) >= self.batch_models or total >= self.batch_bytes):
                break
            keys.append(key)
            total += size
        return keys

    def _write_next_batch(self) -> BatchInfo | None:
        keys = self._next_batch_keys()
        started = time.perf_counter()
        start = self._batches[-1].end if self._batches else 0
        record = self._append_to_archive(keys, start)
        if record is not None:
            self._commit(record, start)
        # Only now is the batch safe: leave the queue, then delete the sources.
        for key in keys:
            self._queue.pop(key, None)
        if record is None:
            return None
        if not self.keep_sources:
            for member in record.members:
                self._unlink(model_path(self.source_dir, member.key))
        info = BatchInfo(
            archive=self.name, batch=record.batch, keys=[m.key for m in record.members],
            raw_bytes=sum(m.size for m in record.members), compressed_bytes=record.length,
            seconds=time.perf_counter() - started,
        )
        if self.on_batch is not None:
            self.on_batch(info)
        return info

    def _append_to_archive(self, keys: list[str], start: int) -> BatchRecord | None:
        created = not self.archive_path.exists()
        fd = os.open(self.archive_path, os.O_RDWR | os.O_CREAT, 0o666)  # the umask decides
        try:
            if created:
                _fsync_dir(self.archive_path.parent)
            try:
                os.lseek(fd, start, os.SEEK_SET)
                packed = _BatchPacker(fd, self.level)
                members = [m for m in (packed.add(self.source_dir, key) for key in keys) if m is not None]
                self.refused.extend(packed.refused)
                if not members:
                    self._restore_tail(fd, start)
                    return None
                length, raw_length, crc = packed.finish()
                write_all(fd, TRAILER)
                os.ftruncate(fd, start + length + len(TRAILER))
                os.fsync(fd)
            except BaseException as exc:
                self._restore_tail(fd, start)
                if isinstance(exc, OSError) and is_disk_full(exc):
                    raise disk_full_error(self.archive_path, f"a batch of {self.archive_path.name}") from exc
                raise
        finally:
            os.close(fd)
        return BatchRecord(
            batch=len(self._batches), offset=start, length=length, raw_length=raw_length, crc32=crc,
            members=tuple(members),
        )

    def _commit(self, record: BatchRecord, start: int) -> None:
        """Append the index line; if that fails the batch is cut off again, so the archive
        never holds a batch that the index and the source files disagree about."""
        created = not self.index_path.exists()
        try:
            append_batch(self.index_path, record)
        except BaseException:
            fd = os.open(self.archive_path, os.O_RDWR)
            try:
                self._restore_tail(fd, start)
            finally:
                os.close(fd)
            raise
        if created:
            _fsync_dir(self.index_path.parent)
        self._batches.append(record)
        for member in record.members:
            self._archived[member.key] = member

    @staticmethod
    def _restore_tail(fd: int, start: int) -> None:
        """Best effort after a failed append: back to the last batch plus a trailer.
        If even that fails, recover() finishes the job next time."""
        try:
            os.ftruncate(fd, start)
            os.pwrite(fd, TRAILER, start)
            os.fsync(fd)
        except OSError:
            pass

    # ---- helpers ----

    def _unlink(self, path: Path) -> bool:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        self._files_removed += 1
        return True

    def _acquire_lock(self) -> None:
        if self._lock_fd is not None:
            return
        lock_path = self.archive_path.with_name(f".{self.archive_path.name}.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise ArchiveBusyError(
                    f"Another process is writing {self.archive_path}. Only one run may write a project's "
                    "archives at a time: wait for it to finish or stop it, then try again."
                ) from None
            raise
        self._lock_fd = fd


class _BatchPacker:
    """Streams tar members through one gzip compressor straight into the archive file."""

    def __init__(self, fd: int, level: int) -> None:
        self.fd = fd
        self.compressor = new_compressor(level)
        self.raw_length = 0
        self.crc = 0
        self.written = 0
        self.buffer = bytearray()
        self.refused: list[str] = []  # messages about model files that were not regular files

    def add(self, source_dir: Path, key: str) -> MemberRecord | None:
        path = model_path(source_dir, key)
        try:
            fd = open_model_file(path)
        except NotARegularFileError as exc:
            self.refused.append(str(exc))
            return None  # a link or a FIFO planted under a model's name: never archived
        if fd is None:
            return None  # deleted since it was queued: nothing to archive
        with open(fd, "rb") as handle:
            stat = os.fstat(handle.fileno())
            header = header_bytes(key, stat.st_size, stat.st_mtime)
            header_offset = self.raw_length
            self._feed(header)
            data_offset = self.raw_length
            digest = hashlib.sha256()
            remaining = stat.st_size
            while remaining > 0:
                chunk = handle.read(min(READ_CHUNK, remaining))
                if not chunk:
                    raise MiloError(f"The model file {path} shrank while it was being archived.")
                digest.update(chunk)
                self._feed(chunk)
                remaining -= len(chunk)
            self._feed(padding(stat.st_size))
        return MemberRecord(key=key, header_offset=header_offset, data_offset=data_offset,
                            size=stat.st_size, sha256=digest.hexdigest())

    def finish(self) -> tuple[int, int, int]:
        self._emit(self.compressor.flush())
        self._drain()
        return self.written, self.raw_length, self.crc

    def _feed(self, data: bytes) -> None:
        self.raw_length += len(data)
        self.crc = zlib.crc32(data, self.crc)
        self._emit(self.compressor.compress(data))

    def _emit(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= WRITE_BUFFER:
            self._drain()

    def _drain(self) -> None:
        if self.buffer:
            write_all(self.fd, self.buffer)
            self.written += len(self.buffer)
            self.buffer = bytearray()


def _matching_prefix(handle, batches: list[BatchRecord], file_end: int) -> list[BatchRecord]:
    """The leading indexed batches whose bytes are still where, and what, the index says."""
    for count, batch in enumerate(batches):
        if not index_matches_archive(handle, [batch], file_end):
            return batches[:count]
    return list(batches)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["ArchiveWriter", "ArchiveStats", "BatchInfo", "RecoveryReport", "ArchiveBusyError", "MODEL_SUFFIX"]
