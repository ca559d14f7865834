"""Tampered members, path traversal and unsafe member types are refused, never loaded."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zlib

import pytest

from milo_tui.errors import BadInputError, IntegrityError
from milo_tui.storage import ModelNotFoundError, ModelStore
from milo_tui.storage.gzmembers import TRAILER, compress_member
from milo_tui.storage.index import BatchRecord, MemberRecord, index_path, write_index
from storage_helpers import archived_project, project, writer

KEYS = [f"m_{i}" for i in range(4)]


def _archived_project(tmp_path):
    return archived_project(tmp_path, KEYS)


def _store(paths, tmp_path):
    return ModelStore(paths.root, workspace_dir=tmp_path / "ws")


def _rewrite_single_batch(paths, raw: bytes, members: list[MemberRecord]) -> None:
    """Replace the archive by one batch holding `raw`, indexed with `members`."""
    member = compress_member(raw, 6)
    paths.main_archive.write_bytes(member + TRAILER)
    record = BatchRecord(batch=0, offset=0, length=len(member), raw_length=len(raw),
                         crc32=zlib.crc32(raw), members=tuple(members))
    write_index(index_path(paths.main_archive), [record])


def _batch_raw(paths) -> tuple[bytes, list[MemberRecord]]:
    line = index_path(paths.main_archive).read_text().splitlines()[1]
    record = BatchRecord.from_obj(json.loads(line))
    raw = zlib.decompressobj(31).decompress(paths.main_archive.read_bytes())
    return raw, list(record.members)


def test_a_tampered_model_is_refused_by_name(tmp_path):
    paths = _archived_project(tmp_path)
    raw, members = _batch_raw(paths)
    victim = members[2]
    tampered = bytearray(raw)
    tampered[victim.data_offset + victim.size // 2] ^= 0xFF
    _rewrite_single_batch(paths, bytes(tampered), members)
    store = _store(paths, tmp_path)
    with pytest.raises(IntegrityError, match=victim.key):
        store.open_model(victim.key)
    with pytest.raises(IntegrityError, match=victim.key):
        store.export(victim.key, tmp_path / "out.joblib")
    assert not (tmp_path / "out.joblib").exists()
    assert store.open_model(members[0].key)["key"] == 0  # the others are untouched


def test_a_wrong_hash_in_the_index_is_refused(tmp_path):
    paths = _archived_project(tmp_path)
    idx = index_path(paths.main_archive)
    text = idx.read_text()
    raw, members = _batch_raw(paths)
    idx.write_text(text.replace(members[1].sha256, "0" * 64))
    with pytest.raises(IntegrityError, match="m_1.*sha256"):
        _store(paths, tmp_path).open_model("m_1")


def _evil_batch(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tuple[bytes, MemberRecord]:
    payload = b"not a model"
    info = tarfile.TarInfo(name)
    info.size = len(payload) if kind == tarfile.REGTYPE else 0
    info.type = kind
    info.linkname = linkname
    buffer = io.BytesIO()
    buffer.write(info.tobuf(format=tarfile.GNU_FORMAT))
    if info.size:
        buffer.write(payload + b"\0" * (-len(payload) % 512))
    raw = buffer.getvalue()
    data_offset = len(raw) - (512 if info.size else 0)
    digest = hashlib.sha256(payload if info.size else b"").hexdigest()
    return raw, MemberRecord(key="evil", header_offset=0, data_offset=data_offset, size=info.size, sha256=digest)


@pytest.mark.parametrize("name,kind,linkname", [
    ("../evil.joblib", tarfile.REGTYPE, ""),
    ("../../etc/evil.joblib", tarfile.REGTYPE, ""),
    ("/tmp/evil.joblib", tarfile.REGTYPE, ""),
    ("sub/evil.joblib", tarfile.REGTYPE, ""),
    ("evil.joblib", tarfile.SYMTYPE, "/etc/passwd"),
    ("evil.joblib", tarfile.LNKTYPE, "../outside"),
    ("evil.joblib", tarfile.CHRTYPE, ""),
    ("evil.joblib", tarfile.FIFOTYPE, ""),
])
def test_traversal_links_and_devices_are_refused(tmp_path, name, kind, linkname):
    paths = project(tmp_path)
    raw, member = _evil_batch(name, kind, linkname)
    _rewrite_single_batch(paths, raw, [member])
    store = _store(paths, tmp_path)
    with pytest.raises(IntegrityError, match="refused|belongs to something else"):
        store.open_model("evil")
    assert not (tmp_path / "evil.joblib").exists() and not (paths.models / "evil.joblib").exists()
    # a rebuild by scanning refuses to index it too, and keeps the cut bytes aside
    index_path(paths.main_archive).unlink()
    report = writer(paths).recover()
    assert report.index_rebuilt and report.saved_tail is not None and report.saved_tail.exists()
    assert any("refused" in p for p in report.problems)
    assert store.list_models() == []


def test_bad_and_unknown_keys(tmp_path):
    paths = _archived_project(tmp_path)
    store = _store(paths, tmp_path)
    for bad in ("../m_1", "/etc/passwd", "a/b"):
        with pytest.raises(BadInputError):
            store.open_model(bad)
    with pytest.raises(ModelNotFoundError) as caught:
        store.open_model("m_99")
    assert isinstance(caught.value, KeyError) and "m_99" in str(caught.value) and "milo models" in str(caught.value)
