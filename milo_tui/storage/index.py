"""The index beside an archive: which batch holds each model, where, and its sha256.

Format (docs/STORAGE.md): JSON lines. The first line is a header; then one
line per batch, appended and fsynced only after the batch itself is fsynced
in the archive. One line is one commit: a reader (or a crash) sees a batch
whole or not at all, and a torn last line is ignored. Later batches win when
a key appears twice, as they do for `tar -x`.

The index is rebuilt by scanning the archive's gzip members and the tar
headers inside them, whenever it is lost or does not match the archive.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Iterable

from milo_tui.errors import IntegrityError
from milo_tui.project import atomic_write
from milo_tui.storage.files import MODEL_SUFFIX, disk_full_error, is_disk_full, open_model_file
from milo_tui.storage.gzmembers import ScanEnd, ScannedMember, member_boundaries_match, scan_members
from milo_tui.storage.tarmember import BLOCK, TarStream

INDEX_FORMAT = "milo-archive-index"
INDEX_VERSION = 1
INDEX_SUFFIX = ".index.jsonl"
ARCHIVE_SUFFIX = ".tar.gz"


def archive_name(archive_path: Path) -> str:
    name = Path(archive_path).name
    return name[: -len(ARCHIVE_SUFFIX)] if name.endswith(ARCHIVE_SUFFIX) else name


def index_path(archive_path: Path) -> Path:
    """models/main_models.tar.gz -> models/main_models.index.jsonl"""
    archive_path = Path(archive_path)
    return archive_path.with_name(archive_name(archive_path) + INDEX_SUFFIX)


@dataclass(frozen=True, slots=True)
class MemberRecord:
    key: str
    header_offset: int  # in the uncompressed batch
    data_offset: int  # in the uncompressed batch
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class BatchRecord:
    batch: int
    offset: int  # of the gzip member in the archive file
    length: int  # compressed bytes of the member
    raw_length: int  # uncompressed bytes of the member
    crc32: int
    members: tuple[MemberRecord, ...]
    # True when the members' sha256s were computed from the archive's own bytes (an index rebuilt
    # by scanning) instead of from the files the engine saved: they then prove nothing.
    scanned: bool = False

    @property
    def end(self) -> int:
        return self.offset + self.length

    def to_line(self) -> str:
        return json.dumps(
            {
                "batch": self.batch, "offset": self.offset, "length": self.length,
                "raw_length": self.raw_length, "crc32": self.crc32,
                "members": [[m.key, m.header_offset, m.data_offset, m.size, m.sha256] for m in self.members],
                **({"scanned": True} if self.scanned else {}),
            },
            separators=(",", ":"),
        ) + "\n"

    @classmethod
    def from_obj(cls, obj: dict) -> "BatchRecord":
        members = tuple(
            MemberRecord(key=str(k), header_offset=int(h), data_offset=int(d), size=int(s), sha256=str(sha))
            for k, h, d, s, sha in obj["members"]
        )
        record = cls(
            batch=int(obj["batch"]), offset=int(obj["offset"]), length=int(obj["length"]),
            raw_length=int(obj["raw_length"]), crc32=int(obj["crc32"]), members=members,
            scanned=obj.get("scanned", False) is not False,
        )
        if record.offset < 0 or record.length <= 0 or not members:
            raise ValueError("bad batch record")
        return record


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """Everything needed to pull one model out of its archive."""

    key: str
    archive: str
    batch: int
    offset: int
    length: int
    header_offset: int
    data_offset: int
    size: int
    sha256: str
    trusted: bool = True  # False: the sha256 was computed from the archive itself (see BatchRecord.scanned)


def header_line() -> str:
    return json.dumps({"format": INDEX_FORMAT, "version": INDEX_VERSION}, separators=(",", ":")) + "\n"


@dataclass
class ParsedIndex:
    batches: list[BatchRecord]
    valid_bytes: int  # length of the prefix of whole, valid lines
    total_bytes: int

    @property
    def complete(self) -> bool:
        return self.valid_bytes == self.total_bytes

    @property
    def data_end(self) -> int:
        return self.batches[-1].end if self.batches else 0


def parse_index(data: bytes, *, start_batch: int = 0, start_offset: int = 0, has_header: bool = False) -> ParsedIndex:
    """Parse whole lines until the first that is torn or does not follow on from the one
    before (batch numbers in order, each member starting where the previous ended)."""
    batches: list[BatchRecord] = []
    position = 0
    expected_batch, expected_offset = start_batch, start_offset
    while True:
        newline = data.find(b"\n", position)
        if newline < 0:
            break
        line = data[position:newline]
        try:
            obj = json.loads(line)
            if not has_header:
                if obj.get("format") != INDEX_FORMAT or obj.get("version") != INDEX_VERSION:
                    break
                has_header = True
            else:
                record = BatchRecord.from_obj(obj)
                if record.batch != expected_batch or record.offset != expected_offset:
                    break
                batches.append(record)
                expected_batch, expected_offset = record.batch + 1, record.end
        except (ValueError, KeyError, TypeError, AttributeError):
            break
        position = newline + 1
    return ParsedIndex(batches=batches, valid_bytes=position, total_bytes=len(data))


def read_index(path: Path) -> ParsedIndex | None:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    return parse_index(data)


def write_index(path: Path, batches: Iterable[BatchRecord]) -> None:
    """Replace the whole index atomically (used after a rebuild or a repair)."""
    text = header_line() + "".join(b.to_line() for b in batches)
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))  # the umask's mode, like the archive


def append_batch(path: Path, record: BatchRecord) -> None:
    """Append one batch line and fsync. On failure the file is cut back to where it was,
    so a half-written line never stays behind."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)  # the umask decides, as for any file shared
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            if start == 0:
                write_all(fd, header_line().encode())
            write_all(fd, record.to_line().encode())
            os.fsync(fd)
        except OSError as exc:
            _truncate_quietly(fd, start)
            if is_disk_full(exc):
                raise disk_full_error(path, f"the index {path.name}") from exc
            raise
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _truncate_quietly(fd: int, length: int) -> None:
    try:
        os.ftruncate(fd, length)
        os.fsync(fd)
    except OSError:
        pass


def entries_of(archive: str, batches: Iterable[BatchRecord]) -> dict[str, IndexEntry]:
    entries: dict[str, IndexEntry] = {}
    for b in batches:
        for m in b.members:
            entries[m.key] = IndexEntry(
                key=m.key, archive=archive, batch=b.batch, offset=b.offset, length=b.length,
                header_offset=m.header_offset, data_offset=m.data_offset, size=m.size, sha256=m.sha256,
                trusted=not b.scanned,
            )
    return entries


# ---- checking an index against its archive, and rebuilding it by scanning ----


def index_matches_archive(handle: BinaryIO, batches: list[BatchRecord], file_end: int) -> bool:
    return all(
        member_boundaries_match(handle, b.offset, b.length, b.crc32, b.raw_length, file_end) for b in batches
    )


# A model bigger than this is refused when no trusted index gives its size (a few KB of
# gzip can claim terabytes). Scikit-learn pipelines of the size milo trains are far smaller.
MAX_UNINDEXED_MEMBER_BYTES = 2 << 30


class _BatchSink:
    """Receives one scanned gzip member: a batch of models, or the trailer."""

    def __init__(self, where: str, offset: int, max_member: int) -> None:
        self.stream = TarStream(where=f"{where} (batch at byte {offset})", max_member=max_member)

    def feed(self, data: bytes) -> None:
        self.stream.feed(data)


def _new_sink(where: str, max_member: int):
    return lambda offset: _BatchSink(where, offset, max_member)


def is_trailer(member: ScannedMember) -> bool:
    stream = member.sink.stream
    return member.raw_length >= 2 * BLOCK and stream.all_zero


def batch_from_scan(member: ScannedMember, batch: int, where: str) -> BatchRecord:
    """The batch record of one scanned gzip member; IntegrityError if it is damaged or unsafe."""
    stream = member.sink.stream
    stream.finish()
    if stream.ended and stream.members:
        raise IntegrityError(f"{where}: an end-of-archive block inside a batch at byte {member.offset}.")
    if not stream.members:
        raise IntegrityError(f"{where}: an empty gzip member at byte {member.offset}.")
    records = tuple(MemberRecord(key=m.key, header_offset=m.header_offset, data_offset=m.data_offset,
                                 size=m.size, sha256=m.sha256) for m in stream.members)
    return BatchRecord(batch=batch, offset=member.offset, length=member.length, raw_length=member.raw_length,
                       crc32=member.crc32, members=records, scanned=True)


@dataclass
class TailScan:
    """What lies in an archive after its last indexed batch."""

    batches: list[BatchRecord]  # whole batches found there (written, but their index line was not)
    trailer_end: int | None  # end of a trailer member right after them, if there is one
    good_end: int  # end of the last whole batch
    problem: str | None  # why the scan stopped early: a torn member, garbage, a damaged batch


def scan_tail(handle: BinaryIO, start: int, first_batch: int, file_end: int, where: str,
              max_member: int | None = None) -> TailScan:
    """Whole batches from `start` on, read as a stream (bounded memory). Their records are
    marked `scanned`: their hashes come from the archive, not from a saved model file."""
    end = ScanEnd(good_end=start, file_end=file_end)
    batches: list[BatchRecord] = []
    good_end = start
    members = scan_members(handle, start, file_end, end,
                           _new_sink(where, MAX_UNINDEXED_MEMBER_BYTES if max_member is None else max_member))
    try:
        for member in members:
            if is_trailer(member):
                trailer_end = member.offset + member.length
                problem = None if trailer_end == file_end else f"{file_end - trailer_end} stray bytes after the trailer"
                return TailScan(batches, trailer_end, good_end, problem)
            batches.append(batch_from_scan(member, first_batch + len(batches), where))
            good_end = member.offset + member.length
    except IntegrityError as exc:
        return TailScan(batches, None, good_end, str(exc))
    return TailScan(batches, None, good_end, end.problem)


def vouch_for(batch: BatchRecord, source_dir: Path) -> BatchRecord:
    """A scanned batch whose every member still has its saved model file, byte for byte the
    same (a writer killed between writing a batch and indexing it), is as trustworthy as one
    the writer indexed itself: its hashes are those of the files the engine saved."""
    for member in batch.members:
        path = Path(source_dir) / f"{member.key}{MODEL_SUFFIX}"
        try:
            if os.lstat(path).st_size != member.size or _sha256_of_regular(path) != member.sha256:
                return batch
        except OSError:
            return batch
    return replace(batch, scanned=False)


def _sha256_of_regular(path: Path) -> str | None:
    fd = open_model_file(path)
    if fd is None:
        return None
    digest = hashlib.sha256()
    with open(fd, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class IndexReader:
    """The index of one archive as a reader sees it, refreshed cheaply while a run appends.

    Appended lines are read incrementally; a replaced index (new inode) is read
    again whole. With no usable index but an archive present (lost index, no
    writer to rebuild it yet) the archive is scanned in memory instead.
    """

    def __init__(self, archive_path: Path) -> None:
        self.archive_path = Path(archive_path)
        self.path = index_path(self.archive_path)
        self.name = archive_name(self.archive_path)
        self._identity: tuple[int, int] | None = None  # (device, inode) of the index read
        self._consumed = 0
        self._batches: list[BatchRecord] = []
        self._entries: dict[str, IndexEntry] = {}
        self._scanned_for: tuple[int, int] | None = None  # (size, mtime_ns) of an archive scanned instead
        self.scanned = False  # True when entries came from scanning the archive, not from the index

    @property
    def batches(self) -> list[BatchRecord]:
        return list(self._batches)

    def refresh(self) -> dict[str, IndexEntry]:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return self._from_archive_scan()
        identity = (info.st_dev, info.st_ino)
        if identity != self._identity or info.st_size < self._consumed:
            self._reset()
            self._identity = identity
        if info.st_size > self._consumed:
            self._read_more()
        if not self._batches and self._consumed == 0:
            return self._from_archive_scan()
        return self._entries

    def _reset(self) -> None:
        self._identity, self._consumed, self._batches, self._entries = None, 0, [], {}
        self.scanned, self._scanned_for = False, None

    def _read_more(self) -> None:
        with open(self.path, "rb") as handle:
            handle.seek(self._consumed)
            data = handle.read()
        last = self._batches[-1] if self._batches else None
        parsed = parse_index(
            data,
            start_batch=last.batch + 1 if last else 0,
            start_offset=last.end if last else 0,
            has_header=self._consumed > 0,
        )
        self._consumed += parsed.valid_bytes
        self._batches.extend(parsed.batches)
        self._entries.update(entries_of(self.name, parsed.batches))

    def _from_archive_scan(self) -> dict[str, IndexEntry]:
        try:
            info = os.stat(self.archive_path)
        except FileNotFoundError:
            self._reset()
            return self._entries
        stamp = (info.st_size, info.st_mtime_ns)
        if self.scanned and self._scanned_for == stamp:
            return self._entries
        with open(self.archive_path, "rb") as handle:
            tail = scan_tail(handle, 0, 0, info.st_size, where=str(self.archive_path))
        self._reset()
        self._batches = tail.batches
        self._entries = entries_of(self.name, tail.batches)
        self.scanned, self._scanned_for = True, stamp
        return self._entries


# ---- one model's entry without reading the whole index -------------------------------------

NEEDS_FULL_READ = object()  # lookup_entry could not decide lazily: read the index whole (IndexReader)


def lookup_entry(archive_path: Path, key: str):
    """The IndexEntry of `key`, found without parsing the index: the index is memory-mapped and
    searched from the end for the key's member record, and only that line is parsed. An index
    of a million lines costs one search, not a million JSON objects (docs/PERFORMANCE.md).

    Returns None when the index does not name the key, or NEEDS_FULL_READ when a lazy answer
    would not be the one IndexReader gives: no index (the archive must be scanned), an index
    without batches, or a line that is torn or not valid (a reader then stops before it).
    Unlike a full read, the lines before the found one are not checked to follow on from each
    other; that matters only for an index edited by hand, and the model's bytes are still
    checked against the found line's header position and sha256.
    """
    archive_path = Path(archive_path)
    name = archive_name(archive_path)
    try:
        handle = open(index_path(archive_path), "rb")
    except FileNotFoundError:
        return NEEDS_FULL_READ
    with handle:
        header = header_line().encode()
        if os.fstat(handle.fileno()).st_size <= len(header):
            return NEEDS_FULL_READ
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
            if view[: len(header)] != header:
                return NEEDS_FULL_READ
            return _entry_at_last_mention(view, name, key)


def _entry_at_last_mention(view: mmap.mmap, archive: str, key: str):
    # Member records are written as ["<key>",header,data,size,"sha"]; keys cannot contain '"'.
    position = view.rfind(b'["' + key.encode("ascii") + b'",')
    if position < 0:
        return None
    start = view.rfind(b"\n", 0, position) + 1
    end = view.find(b"\n", position)
    if end < 0:
        return NEEDS_FULL_READ  # a torn last line: not committed
    try:
        record = BatchRecord.from_obj(json.loads(view[start:end]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return NEEDS_FULL_READ
    return entries_of(archive, [record]).get(key, NEEDS_FULL_READ)
