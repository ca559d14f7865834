"""Gzip members of an archive: writing one, and scanning a file for them.

An archive is a series of gzip members, one per batch, closed by a tiny
trailer member that holds the tar end-of-archive blocks. gzip, tar and
Python's tarfile read concatenated members as one stream; we read one member
alone by seeking to its offset.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from milo_tui.storage.tarmember import END_OF_ARCHIVE

GZIP_WBITS = 31  # zlib's "gzip container" mode
GZIP_MAGIC = b"\x1f\x8b\x08"
SCAN_CHUNK = 1 << 20


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


@dataclass(frozen=True)
class ScannedMember:
    offset: int
    length: int
    raw: bytes
    crc32: int


@dataclass
class ScanEnd:
    """Where a scan stopped: the end of the last whole member, and why it stopped there."""

    good_end: int
    file_end: int
    problem: str | None = None  # None when the file ends exactly after a whole member


def scan_members(handle: BinaryIO, start: int, file_end: int, end: ScanEnd) -> Iterator[ScannedMember]:
    """Yield every whole gzip member from `start`; fill `end` with where the whole ones stop.

    A member cut short, or bytes that do not decompress, end the scan: that is
    what a writer killed mid-append leaves behind.
    """
    end.good_end, end.file_end, end.problem = start, file_end, None
    handle.seek(start)
    offset = start
    pending = b""
    while offset < file_end:
        decompressor = zlib.decompressobj(GZIP_WBITS)
        parts: list[bytes] = []
        consumed = 0
        data = pending
        pending = b""
        try:
            while True:
                if not data:
                    data = handle.read(SCAN_CHUNK)
                    if not data:
                        end.problem = f"a gzip member starting at byte {offset} is cut short"
                        return
                parts.append(decompressor.decompress(data))
                if decompressor.eof:
                    pending = decompressor.unused_data
                    consumed += len(data) - len(pending)
                    break
                consumed += len(data)
                data = b""
        except zlib.error as exc:
            end.problem = f"bytes from {offset} are not a valid gzip member ({exc})"
            return
        raw = b"".join(parts)
        yield ScannedMember(offset=offset, length=consumed, raw=raw, crc32=zlib.crc32(raw))
        offset += consumed
        end.good_end = offset


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


def decompress_prefix(compressed: bytes, needed: int) -> bytes:
    """Decompress one member only as far as `needed` raw bytes: a model near the
    start of its batch costs less than one at the end."""
    decompressor = zlib.decompressobj(GZIP_WBITS)
    try:
        out = decompressor.decompress(compressed, needed)
    except zlib.error:
        return b""
    return out
