"""Tar headers of archived models: building them, and refusing unsafe ones.

A batch is a run of tar members (header blocks + data padded to 512 bytes)
with no end-of-archive blocks, so batches can be concatenated into one tar
stream. Every member must be a regular file named "<key>.joblib" with a safe
key: no absolute paths, no "..", no links, no devices.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass

from milo_tui.errors import IntegrityError
from milo_tui.storage.files import MODEL_SUFFIX, key_of

BLOCK = 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)


def padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def header_bytes(key: str, size: int, mtime: float) -> bytes:
    """The header block(s) of one model member. PAX only adds blocks for names > 100 chars."""
    info = tarfile.TarInfo(name=f"{key}{MODEL_SUFFIX}")
    info.size = size
    info.mtime = int(mtime)
    info.mode = 0o644
    info.type = tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


@dataclass(frozen=True)
class ParsedMember:
    key: str
    header_offset: int  # where its first header block starts, in the uncompressed batch
    data_offset: int  # where its data starts, in the uncompressed batch
    size: int


def unsafe_reason(info: tarfile.TarInfo) -> str | None:
    """Why a member must not be extracted, or None if it is a plain model file."""
    name = info.name
    if name.startswith("/") or name.startswith("\\"):
        return "it has an absolute path"
    if ".." in name.replace("\\", "/").split("/") or ".." in name:
        return "its path contains '..'"
    if info.issym() or info.islnk():
        return "it is a link"
    if info.isdev() or info.isfifo():
        return "it is a device or pipe"
    if not info.isreg():
        return "it is not a regular file"
    if "/" in name or "\\" in name:
        return "it is inside a folder, where only plain model files are expected"
    if key_of(name) is None:
        return "its name is not '<key>.joblib' with a valid model key"
    return None


def parse_member(raw: bytes | memoryview, header_offset: int, where: str) -> ParsedMember | None:
    """Parse the member starting at header_offset of an uncompressed batch.

    Returns None at an all-zero block (an end-of-archive marker). Raises
    IntegrityError for a damaged or unsafe header; `where` names the place
    in the message.
    """
    block = bytes(raw[header_offset : header_offset + BLOCK])
    if len(block) < BLOCK:
        raise IntegrityError(f"{where}: a tar header is cut short at byte {header_offset}. The archive is damaged.")
    if block == b"\0" * BLOCK:
        return None
    # tarfile follows PAX / GNU long-name headers to the real member for us.
    try:
        info = tarfile.TarFile(fileobj=_BlockReader(raw, header_offset), mode="r").next()
    except tarfile.TarError as exc:
        raise IntegrityError(f"{where}: a damaged tar header at byte {header_offset} ({exc}).") from None
    if info is None:
        raise IntegrityError(f"{where}: no tar header at byte {header_offset}. The archive is damaged.")
    reason = unsafe_reason(info)
    if reason is not None:
        raise IntegrityError(
            f"{where}: the archive member {info.name!r} is refused because {reason}. The archive may have "
            "been tampered with; nothing was extracted. Restore it from a backup or re-run the training."
        )
    data_offset = header_offset + info.offset_data
    if data_offset + info.size > len(raw):
        raise IntegrityError(f"{where}: the data of {info.name!r} is cut short. The archive is damaged.")
    return ParsedMember(key=key_of(info.name) or "", header_offset=header_offset, data_offset=data_offset, size=info.size)


def next_header_offset(member: ParsedMember) -> int:
    return member.data_offset + member.size + (-member.size % BLOCK)


class _BlockReader(io.RawIOBase):
    """A read-only file view of raw[start:], without copying the whole batch."""

    def __init__(self, raw: bytes | memoryview, start: int) -> None:
        self._view = memoryview(raw)[start:]
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: len(self._view)}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def read(self, n: int = -1) -> bytes:
        end = len(self._view) if n is None or n < 0 else min(len(self._view), self._pos + n)
        out = bytes(self._view[self._pos : end])
        self._pos = end
        return out

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
