"""Pull one model's bytes out of an archive: one seek, one partial decompression, streamed.

Only the entry's own batch is read, only decompressed as far as the end of this
model, and the model's bytes go straight to the caller's file while they are
hashed: memory stays bounded (about 2 MB) whatever size the member claims, and
the bytes are written once.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

from milo_tui.errors import IntegrityError
from milo_tui.storage.gzmembers import iter_member
from milo_tui.storage.index import IndexEntry
from milo_tui.storage.tarmember import MAX_HEADER_BYTES, parse_member


class UntrustedModelError(IntegrityError):
    """The model's only hash comes from the archive itself: there is nothing to check it against."""


def untrusted_model_error(entry: IndexEntry) -> UntrustedModelError:
    return UntrustedModelError(
        f"Model {entry.key} in {entry.archive}.tar.gz has no trusted hash, so it was not loaded or extracted: "
        f"the archive's index is missing or was rebuilt by scanning the archive, so the only hash there is was "
        "computed from the archive's own bytes, and a rewritten archive (which can run any code when a model "
        "is loaded) would pass that check. If you made this archive yourself and nobody else can write the "
        "project folder, run `milo extract PROJECT KEY --trust-archive`; otherwise restore the index "
        "(models/*.index.jsonl) from a backup, or train again with `milo run PROJECT --force`."
    )


def copy_model(archive_path: Path, entry: IndexEntry, out: BinaryIO) -> int:
    """Write the verified content of `entry`'s .joblib file to `out`; returns its size.

    The tar header found at the indexed place must be a safe regular file named
    after the key, at the indexed offsets; the data must match the index's
    sha256. Anything else raises IntegrityError naming the model — the caller
    then discards what was written to `out` (it must never be loaded).
    """
    _check_entry(entry)
    with open(archive_path, "rb") as handle:
        stream = _RawStream(iter_member(handle, entry.offset, entry.length))
        try:
            return _copy_member(stream, 0, entry, out)[0]
        except zlib.error:
            raise _damaged(_where(entry), "its batch does not decompress") from None


def verify_batch(archive_path: Path, entries: list[IndexEntry]) -> dict[str, IntegrityError | None]:
    """Check every model of one batch against its sha256, decompressing the batch once.

    `entries` all name the same batch. Returns, per key, None when the model verified, or the
    error copy_model would raise. Checking model by model would decompress the batch's prefix
    once per model (quadratic in the batch's length); a resume checks every archived model.
    """
    ordered = sorted(entries, key=lambda e: e.header_offset)
    if len({(e.offset, e.length) for e in ordered}) > 1:
        raise ValueError("verify_batch takes the entries of one batch")
    results: dict[str, IntegrityError | None] = {}
    with open(archive_path, "rb") as handle:
        stream = _RawStream(iter_member(handle, ordered[0].offset, ordered[0].length)) if ordered else None
        position = 0
        for done, entry in enumerate(ordered):
            try:
                _check_entry(entry)
                if entry.header_offset < position:  # overlaps the model before: the index lies
                    raise _damaged(_where(entry), "its index entry overlaps another model's")
                position = _copy_member(stream, position, entry, _Discard())[1]
                results[entry.key] = None
            except (IntegrityError, zlib.error) as error:
                # Where the stream stands after a failure is unknown: check the rest one by one.
                results[entry.key] = error if isinstance(error, IntegrityError) else \
                    _damaged(_where(entry), "its batch does not decompress")
                for rest in ordered[done + 1:]:
                    try:
                        copy_model(archive_path, rest, _Discard())
                        results[rest.key] = None
                    except IntegrityError as rest_error:
                        results[rest.key] = rest_error
                break
    return results


def _check_entry(entry: IndexEntry) -> None:
    header_length = entry.data_offset - entry.header_offset
    if not 0 < header_length <= MAX_HEADER_BYTES or entry.header_offset < 0 or entry.size < 0:
        raise _damaged(_where(entry), "its index entry is impossible")


def _copy_member(stream: _RawStream, position: int, entry: IndexEntry, out: BinaryIO) -> tuple[int, int]:
    """Copy `entry`'s data from `stream`, which stands at `position` of the batch; checks as copy_model.

    Returns the bytes written and the stream's position afterwards.
    """
    where = _where(entry)
    header_length = entry.data_offset - entry.header_offset
    digest = hashlib.sha256()
    stream.skip(entry.header_offset - position)
    header = stream.read(header_length)
    if len(header) < header_length:
        raise _damaged(where, "its batch is cut short")
    member = parse_member(header, 0, where, data_present=False)
    if member is None or member.key != entry.key or member.data_offset != header_length \
            or member.size != entry.size:
        raise _damaged(where, "the tar header at its indexed place belongs to something else")
    written = 0
    for chunk in stream.take(entry.size):
        digest.update(chunk)
        out.write(chunk)
        written += len(chunk)
    if written != entry.size:
        raise _damaged(where, "its batch is cut short")
    actual = digest.hexdigest()
    if actual != entry.sha256:
        raise IntegrityError(
            f"{where} does not match its recorded sha256 (expected {entry.sha256[:16]}…, found {actual[:16]}…), "
            "so it was not loaded: the archive or its index was changed or damaged after the model was saved. "
            "To repair it, restore models/ from a backup, or train again with `milo run PROJECT --force` "
            "(which replaces every earlier result: first `milo extract` the other models you need — they are "
            "unaffected)."
        )
    return written, entry.data_offset + entry.size


def _where(entry: IndexEntry) -> str:
    return f"Model {entry.key} in {entry.archive}.tar.gz"


def read_model_bytes(archive_path: Path, entry: IndexEntry) -> bytes:
    """The verified content of `entry`'s .joblib file, in memory (for small models and benchmarks)."""
    buffer = io.BytesIO()
    copy_model(archive_path, entry, buffer)
    return buffer.getvalue()


class _RawStream:
    """Skip, read and take ranges of a decompressed stream given as chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._current = memoryview(b"")

    def _next(self) -> bool:
        if self._current:
            return True
        for chunk in self._chunks:
            if chunk:
                self._current = memoryview(chunk)
                return True
        return False

    def take(self, n: int) -> Iterator[bytes]:
        while n > 0 and self._next():
            piece = self._current[:n]
            self._current = self._current[len(piece):]
            n -= len(piece)
            yield piece

    def skip(self, n: int) -> None:
        for _ in self.take(n):
            pass

    def read(self, n: int) -> bytes:
        return b"".join(bytes(p) for p in self.take(n))


class _Discard:
    """A sink for bytes that are only hashed, never kept."""

    def write(self, data: bytes) -> int:
        return len(data)


def _damaged(where: str, why: str) -> IntegrityError:
    return IntegrityError(
        f"{where} cannot be extracted: {why}, so the archive or its index is damaged and nothing was loaded. "
        "To repair it, restore models/ from a backup, or train again with `milo run PROJECT --force` (which "
        "replaces every earlier result: first `milo extract` the other models you need)."
    )
