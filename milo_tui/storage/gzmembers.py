"""Gzip members of an archive: writing one, and scanning a file for them.

An archive is a series of gzip members, one per batch, closed by a tiny
trailer member that holds the tar end-of-archive blocks. gzip, tar and
Python's tarfile read concatenated members as one stream; we read one member
alone by seeking to its offset.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator, Protocol

from milo_tui.storage.tarmember import END_OF_ARCHIVE

GZIP_WBITS = 31  # zlib's "gzip container" mode
GZIP_MAGIC = b"\x1f\x8b\x08"
SCAN_CHUNK = 1 << 20  # compressed bytes read at a time
OUT_CHUNK = 1 << 20  # decompressed bytes produced at a time


def new_compressor(level: int):
    return zlib.compressobj(level, zlib.DEFLATED, GZIP_WBITS)


def compress_member(data: bytes, level: int) -> bytes:
    compressor = new_compressor(level)
    return compressor.compress(data) + compressor.flush()


# The trailer is the same bytes whatever the archive's level: it only holds zeros.
TRAILER = compress_member(END_OF_ARCHIVE, 6)


def member_footer(crc32: int, raw_length: int) -> bytes:
    """The last 8 bytes of a gzip member: CRC32 and size mod 2**32, little-endian."""
    return (crc32 & 0xFFFFFFFF).to_bytes(4, "little") + (raw_length & 0xFFFFFFFF).to_bytes(4, "little")


class Sink(Protocol):
    def feed(self, data: bytes) -> None: ...


@dataclass(frozen=True)
class ScannedMember:
    offset: int
    length: int
    raw_length: int
    crc32: int
    sink: Sink  # what the member's decompressed bytes were fed to


@dataclass
class ScanEnd:
    """Where a scan stopped: the end of the last whole member, and why it stopped there."""

    good_end: int
    file_end: int
    problem: str | None = None  # None when the file ends exactly after a whole member


def scan_members(handle: BinaryIO, start: int, file_end: int, end: ScanEnd,
                 new_sink: Callable[[int], Sink]) -> Iterator[ScannedMember]:
    """Yield every whole gzip member from `start`; fill `end` with where the whole ones stop.

    Each member's decompressed bytes are fed, chunk by chunk, to `new_sink(offset)`;
    nothing holds a whole member, so a small member that inflates to gigabytes costs
    no memory. A member cut short, or bytes that do not decompress, end the scan:
    that is what a writer killed mid-append leaves behind. An error the sink raises
    (a damaged or unsafe tar header) propagates, with `end` at the last whole member.
    """
    end.good_end, end.file_end, end.problem = start, file_end, None
    handle.seek(start)
    offset = start
    pending = b""
    while offset < file_end:
        decompressor = zlib.decompressobj(GZIP_WBITS)
        sink = new_sink(offset)
        data, pending = pending, b""
        raw_length = crc = 0
        consumed = len(data)
        try:
            while not decompressor.eof:
                if not data:
                    data = handle.read(SCAN_CHUNK)
                    if not data:
                        end.problem = f"a gzip member starting at byte {offset} is cut short"
                        return
                    consumed += len(data)
                out = decompressor.decompress(data, OUT_CHUNK)
                data = decompressor.unconsumed_tail
                if out:
                    raw_length += len(out)
                    crc = zlib.crc32(out, crc)
                    sink.feed(out)
            pending = decompressor.unused_data  # the start of the next member
            consumed -= len(pending)
        except zlib.error as exc:
            end.problem = f"bytes from {offset} are not a valid gzip member ({exc})"
            return
        yield ScannedMember(offset=offset, length=consumed, raw_length=raw_length, crc32=crc, sink=sink)
        offset += consumed
        end.good_end = offset


def iter_member(handle: BinaryIO, offset: int, length: int) -> Iterator[bytes]:
    """The decompressed bytes of the gzip member at [offset, offset + length), in chunks of at
    most OUT_CHUNK: memory stays bounded however far the member inflates. zlib.error on bad data."""
    decompressor = zlib.decompressobj(GZIP_WBITS)
    handle.seek(offset)
    remaining = length
    while remaining > 0 and not decompressor.eof:
        data = handle.read(min(SCAN_CHUNK, remaining))
        if not data:
            return
        remaining -= len(data)
        while data and not decompressor.eof:
            out = decompressor.decompress(data, OUT_CHUNK)
            data = decompressor.unconsumed_tail
            if out:
                yield out


def member_boundaries_match(handle: BinaryIO, offset: int, length: int, crc32: int, raw_length: int, file_end: int) -> bool:
    """Cheap check that a recorded member is where the index says: gzip magic at its
    start, its recorded CRC and size in its last 8 bytes. Two small reads, no decompression."""
    if length < 18 or offset + length > file_end:
        return False
    handle.seek(offset)
    if handle.read(3) != GZIP_MAGIC:
        return False
    handle.seek(offset + length - 8)
    return handle.read(8) == member_footer(crc32, raw_length)
