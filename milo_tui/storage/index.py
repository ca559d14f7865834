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
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable

from milo_tui.errors import IntegrityError
from milo_tui.project import atomic_write_text
from milo_tui.storage.files import disk_full_error, is_disk_full
from milo_tui.storage.gzmembers import ScanEnd, ScannedMember, member_boundaries_match, scan_members
from milo_tui.storage.tarmember import BLOCK, next_header_offset, parse_member

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


@dataclass(frozen=True)
class MemberRecord:
    key: str
    header_offset: int  # in the uncompressed batch
    data_offset: int  # in the uncompressed batch
    size: int
    sha256: str


@dataclass(frozen=True)
class BatchRecord:
    batch: int
    offset: int  # of the gzip member in the archive file
    length: int  # compressed bytes of the member
    raw_length: int  # uncompressed bytes of the member
    crc32: int
    members: tuple[MemberRecord, ...]

    @property
    def end(self) -> int:
        return self.offset + self.length

    def to_line(self) -> str:
        return json.dumps(
            {
                "batch": self.batch, "offset": self.offset, "length": self.length,
                "raw_length": self.raw_length, "crc32": self.crc32,
                "members": [[m.key, m.header_offset, m.data_offset, m.size, m.sha256] for m in self.members],
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
        )
        if record.offset < 0 or record.length <= 0 or not members:
            raise ValueError("bad batch record")
        return record


@dataclass(frozen=True)
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
    atomic_write_text(path, header_line() + "".join(b.to_line() for b in batches))


def append_batch(path: Path, record: BatchRecord) -> None:
    """Append one batch line and fsync. On failure the file is cut back to where it was,
    so a half-written line never stays behind."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
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
            )
    return entries


# ---- checking an index against its archive, and rebuilding it by scanning ----


def index_matches_archive(handle: BinaryIO, batches: list[BatchRecord], file_end: int) -> bool:
    return all(
        member_boundaries_match(handle, b.offset, b.length, b.crc32, b.raw_length, file_end) for b in batches
    )


def is_trailer(raw: bytes) -> bool:
    return len(raw) >= 2 * BLOCK and raw.count(0) == len(raw)


def batch_from_scan(member: ScannedMember, batch: int, where: str) -> BatchRecord:
    """Read the tar members of one scanned gzip member; IntegrityError if any is damaged or unsafe."""
    records: list[MemberRecord] = []
    offset = 0
    raw = member.raw
    while offset < len(raw):
        parsed = parse_member(raw, offset, where)
        if parsed is None:
            raise IntegrityError(f"{where}: an end-of-archive block inside a batch at byte {member.offset}.")
        data = memoryview(raw)[parsed.data_offset : parsed.data_offset + parsed.size]
        records.append(MemberRecord(
            key=parsed.key, header_offset=parsed.header_offset, data_offset=parsed.data_offset,
            size=parsed.size, sha256=hashlib.sha256(data).hexdigest(),
        ))
        offset = next_header_offset(parsed)
    if not records:
        raise IntegrityError(f"{where}: an empty gzip member at byte {member.offset}.")
    return BatchRecord(
        batch=batch, offset=member.offset, length=member.length,
        raw_length=len(raw), crc32=member.crc32, members=tuple(records),
    )


@dataclass
class TailScan:
    """What lies in an archive after its last indexed batch."""

    batches: list[BatchRecord]  # whole batches found there (written, but their index line was not)
    trailer_end: int | None  # end of a trailer member right after them, if there is one
    good_end: int  # end of the last whole batch
    problem: str | None  # why the scan stopped early: a torn member, garbage, a damaged batch


def scan_tail(handle: BinaryIO, start: int, first_batch: int, file_end: int, where: str) -> TailScan:
    end = ScanEnd(good_end=start, file_end=file_end)
    batches: list[BatchRecord] = []
    good_end = start
    for member in scan_members(handle, start, file_end, end):
        if is_trailer(member.raw):
            trailer_end = member.offset + member.length
            problem = None if trailer_end == file_end else f"{file_end - trailer_end} stray bytes after the trailer"
            return TailScan(batches, trailer_end, good_end, problem)
        try:
            batches.append(batch_from_scan(member, first_batch + len(batches), where))
        except IntegrityError as exc:
            return TailScan(batches, None, good_end, str(exc))
        good_end = member.offset + member.length
    return TailScan(batches, None, good_end, end.problem)


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
