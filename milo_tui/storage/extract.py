"""Pull one model's bytes out of an archive: one seek, one read, one partial decompression."""

from __future__ import annotations

import hashlib
from pathlib import Path

from milo_tui.errors import IntegrityError
from milo_tui.storage.gzmembers import decompress_prefix
from milo_tui.storage.index import IndexEntry
from milo_tui.storage.tarmember import parse_member


def read_model_bytes(archive_path: Path, entry: IndexEntry) -> bytes:
    """The verified content of `entry`'s .joblib file.

    Only the entry's own batch is read, and only decompressed as far as the
    end of this model. The tar header found there must be a safe regular file
    named after the key, at the offsets the index gives; the data must match
    the index's sha256. Anything else raises IntegrityError naming the model.
    """
    where = f"Model {entry.key} in {Path(archive_path).name}"
    with open(archive_path, "rb") as handle:
        handle.seek(entry.offset)
        compressed = handle.read(entry.length)
    if len(compressed) != entry.length:
        raise _damaged(where, "its batch is cut short")
    needed = entry.data_offset + entry.size
    raw = decompress_prefix(compressed, needed)
    if len(raw) < needed:
        raise _damaged(where, "its batch does not decompress")
    member = parse_member(raw, entry.header_offset, where)
    if member is None or member.key != entry.key or member.data_offset != entry.data_offset or member.size != entry.size:
        raise _damaged(where, "the tar header at its indexed place belongs to something else")
    data = raw[entry.data_offset : needed]
    actual = hashlib.sha256(data).hexdigest()
    if actual != entry.sha256:
        raise IntegrityError(
            f"{where} does not match its recorded sha256 (expected {entry.sha256[:16]}…, found {actual[:16]}…), "
            "so it was not loaded: the archive or its index was changed or damaged after the model was saved. "
            "Restore the archive from a backup or re-train this model."
        )
    return data


def _damaged(where: str, why: str) -> IntegrityError:
    return IntegrityError(
        f"{where} cannot be extracted: {why}. The archive or its index is damaged. Run `milo run PROJECT "
        "--resume` to rebuild the index by scanning the archive, or restore the archive from a backup."
    )
