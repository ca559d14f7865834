"""Tar headers of archived models: building them, and refusing unsafe ones.

A batch is a run of tar members (header blocks + data padded to 512 bytes)
with no end-of-archive blocks, so batches can be concatenated into one tar
stream. Every member must be a regular file named "<key>.joblib" with a safe
key: no absolute paths, no "..", no links, no devices.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass, field

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


def parse_member(raw: bytes | memoryview, header_offset: int, where: str, *,
                 data_present: bool = True) -> ParsedMember | None:
    """Parse the member starting at header_offset of an uncompressed batch.

    Returns None at an all-zero block (an end-of-archive marker). Raises
    IntegrityError for a damaged or unsafe header; `where` names the place
    in the message. `data_present=False` when `raw` holds only the header
    blocks (the data is streamed separately).
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
    if data_present and data_offset + info.size > len(raw):
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


# ---- reading a batch as a stream: bounded memory whatever a member's size ----

MAX_HEADER_BYTES = 64 * 1024  # a model's header group (PAX + ustar) is ~1.5 KB; more is not ours
_EXTENSION_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)


@dataclass(frozen=True)
class StreamedMember:
    key: str
    header_offset: int
    data_offset: int
    size: int
    sha256: str


def header_group_length(buffer: bytes | bytearray, where: str, at: int) -> int | None:
    """Bytes of the header blocks that start `buffer` (extension headers and their data, then
    the real header), or None if `buffer` is too short to tell yet."""
    position = 0
    while True:
        if len(buffer) < position + BLOCK:
            return None
        block = bytes(buffer[position : position + BLOCK])
        if block[156:157] not in _EXTENSION_TYPES:
            return position + BLOCK
        try:
            size = tarfile.nti(block[124:136])
        except (tarfile.InvalidHeaderError, ValueError):
            raise IntegrityError(f"{where}: a damaged tar header at byte {at + position}.") from None
        position += BLOCK + size + (-size % BLOCK)
        if position > MAX_HEADER_BYTES:
            raise IntegrityError(f"{where}: a tar header at byte {at} is implausibly long. The archive is damaged.")


@dataclass
class TarStream:
    """Feed the decompressed bytes of one batch in chunks; collects its members and their sha256.

    Only header blocks are ever buffered; model data is hashed as it passes (and
    handed to `on_data` if given), so a huge member costs no memory. A member
    bigger than `max_member` bytes is refused as soon as its header is read.
    """

    where: str
    max_member: int
    members: list[StreamedMember] = field(default_factory=list)
    position: int = 0  # raw bytes consumed
    all_zero: bool = True
    ended: bool = False  # an all-zero block was seen: only zeros may follow
    _header: bytearray = field(default_factory=bytearray)
    _member: ParsedMember | None = None
    _digest: object = None
    _data_left: int = 0
    _pad_left: int = 0

    def feed(self, data: bytes) -> None:
        if self.all_zero and data.count(0) != len(data):
            self.all_zero = False
        view = memoryview(data)
        while view:
            if self.ended:
                if bytes(view).count(0) != len(view):
                    raise IntegrityError(f"{self.where}: data after an end-of-archive block inside a batch.")
                self.position += len(view)
                return
            if self._data_left:
                view = self._take_data(view)
            elif self._pad_left:
                n = min(self._pad_left, len(view))
                self._pad_left -= n
                self.position += n
                view = view[n:]
            else:
                view = self._take_header(view)

    def finish(self) -> None:
        if self._data_left or self._pad_left or self._header:
            raise IntegrityError(f"{self.where}: the batch ends inside a member. The archive is damaged.")

    def _take_header(self, view: memoryview) -> memoryview:
        start = self.position - len(self._header)
        need = header_group_length(self._header, self.where, start) if len(self._header) >= BLOCK else None
        if need is None:
            n = min(BLOCK - len(self._header) % BLOCK, len(view))
        else:
            n = min(need - len(self._header), len(view))
        self._header += view[:n]
        self.position += n
        view = view[n:]
        if len(self._header) == BLOCK and self._header.count(0) == BLOCK:
            self.ended, self._header = True, bytearray()
            return view
        need = header_group_length(self._header, self.where, start)
        if need is not None and len(self._header) == need:
            member = parse_member(bytes(self._header), 0, self.where, data_present=False)
            if member is None or member.data_offset != need:
                raise IntegrityError(f"{self.where}: a damaged tar header at byte {start}.")
            if member.size > self.max_member:
                raise IntegrityError(
                    f"{self.where}: the member {member.key}.joblib claims {member.size:,} bytes, more than the "
                    f"{self.max_member:,} allowed, so it was not read. The archive may have been tampered with."
                )
            self._member = ParsedMember(member.key, start, start + need, member.size)
            self._digest = hashlib.sha256()
            self._data_left, self._pad_left = member.size, -member.size % BLOCK
            self._header = bytearray()
            if member.size == 0:
                self._close_member()
        return view

    def _take_data(self, view: memoryview) -> memoryview:
        n = min(self._data_left, len(view))
        self._digest.update(view[:n])
        self._data_left -= n
        self.position += n
        if not self._data_left:
            self._close_member()
        return view[n:]

    def _close_member(self) -> None:
        m = self._member
        self.members.append(StreamedMember(m.key, m.header_offset, m.data_offset, m.size, self._digest.hexdigest()))
        self._member, self._digest = None, None
