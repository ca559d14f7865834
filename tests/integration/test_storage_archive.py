"""The archive writer: round trips, standard tar compatibility, recovery, full disks."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import tarfile

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from milo_tui.errors import DiskFullError
from milo_tui.storage import ArchiveBusyError, ModelStore, save_model
from milo_tui.storage import files as files_module
from milo_tui.storage.gzmembers import TRAILER
from milo_tui.storage.index import index_path, read_index
from storage_helpers import (
    fake_model, indexed_keys, models_equal, project, save, tar_listing, tarfile_contents, writer,
)

KEYS = [f"std__none__lr__grid__roc_auc_{i}" for i in range(11)]


def test_round_trip_of_a_fitted_sklearn_model(tmp_path):
    paths = project(tmp_path)
    X = np.random.default_rng(0).normal(size=(40, 4))
    y = (X[:, 0] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    written = save_model(model, paths.main_models, "lr_0")
    assert written == (paths.main_models / "lr_0.joblib").stat().st_size
    w = writer(paths)
    w.add("lr_0")
    info = w.flush()
    assert info is not None and info.keys == ["lr_0"] and info.as_event()["models"] == 1
    assert not (paths.main_models / "lr_0.joblib").exists()
    loaded = ModelStore(paths.root, workspace_dir=tmp_path / "ws").open_model("lr_0")
    assert np.array_equal(loaded.predict(X), model.predict(X))


def test_batches_by_count_and_bytes_and_source_files_deleted(tmp_path):
    paths = project(tmp_path)
    w = writer(paths, batch_models=4)
    w.recover()  # as the engine does, before any model is saved
    hashes = save(paths, KEYS)
    infos = [w.add(k) for k in KEYS]
    written = [i for i in infos if i is not None]
    assert [len(i.keys) for i in written] == [4, 4]
    assert w.pending_keys() == KEYS[8:]
    assert sorted(p.name for p in paths.main_models.iterdir()) == sorted(f"{k}.joblib" for k in KEYS[8:])
    w.flush()
    assert w.archived_keys() == set(KEYS) and w.pending_keys() == []
    assert list(paths.main_models.iterdir()) == []
    stats = w.stats
    assert (stats.models, stats.batches, stats.files_removed) == (len(KEYS), 3, len(KEYS))
    assert stats.compressed_bytes == paths.main_archive.stat().st_size
    assert 0 < stats.compression_ratio < 1
    # batch_bytes closes a batch too: each model is > 400 bytes
    other = project(tmp_path / "b")
    w2 = writer(other, batch_models=100, batch_bytes=400)
    w2.recover()
    save(other, KEYS[:3])
    assert w2.add(KEYS[0]) is not None
    assert len(read_index(index_path(other.main_archive)).batches) == 1
    store = ModelStore(paths.root, workspace_dir=tmp_path / "ws")
    for key, digest in hashes.items():
        assert models_equal(store.open_model(key), fake_model(int(key.rsplit("_", 1)[-1])))
        assert store.find(key).sha256 == digest


def test_archive_is_a_standard_tar_gz(tmp_path):
    paths = project(tmp_path)
    hashes = save(paths, KEYS)
    w = writer(paths, batch_models=3)
    for k in KEYS:
        w.add(k)
    w.flush()
    names, stderr = tar_listing(paths.main_archive)
    assert sorted(names) == sorted(f"{k}.joblib" for k in KEYS) and stderr == ""
    assert tarfile_contents(paths.main_archive) == {f"{k}.joblib": h for k, h in hashes.items()}
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(["tar", "-xzf", str(paths.main_archive), "-C", str(out)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == ""
    for key, digest in hashes.items():
        assert hashlib.sha256((out / f"{key}.joblib").read_bytes()).hexdigest() == digest
    # plain gzip sees one stream of concatenated members
    assert subprocess.run(["gzip", "-t", str(paths.main_archive)]).returncode == 0


def test_empty_flush_and_unknown_files_are_ignored(tmp_path):
    paths = project(tmp_path)
    (paths.main_models / "notes.txt").write_text("not a model")
    w = writer(paths)
    report = w.recover()
    assert report.queued == [] and w.flush() is None
    assert not paths.main_archive.exists()
    assert (paths.main_models / "notes.txt").exists()


def test_lost_index_is_rebuilt_by_scanning(tmp_path):
    paths = project(tmp_path)
    save(paths, KEYS)
    w = writer(paths, batch_models=4)
    for k in KEYS:
        w.add(k)
    w.flush()
    w.close()
    idx = index_path(paths.main_archive)
    original = idx.read_bytes()
    # readers scan the archive in memory when the index is gone
    idx.unlink()
    assert {m.key for m in ModelStore(paths.root, workspace_dir=tmp_path / "ws").list_models()} == set(KEYS)
    report = writer(paths).recover()
    assert report.index_rebuilt and not report.truncated_bytes
    # the same records, but marked: their hashes now come from the archive itself (no source file
    # is left to vouch for them), so readers will not load them unless told to trust the archive
    assert report.untrusted_batches == 3
    assert idx.read_bytes().replace(b',"scanned":true', b"") == original


def test_stale_index_is_rebuilt(tmp_path):
    paths = project(tmp_path)
    save(paths, KEYS[:6])
    w = writer(paths, batch_models=3)
    for k in KEYS[:6]:
        w.add(k)
    w.close()
    idx = index_path(paths.main_archive)
    good = idx.read_bytes()
    # an index from another archive: its offsets / CRCs do not match this one
    lines = good.decode().splitlines(keepends=True)
    idx.write_text(lines[0] + lines[2].replace('"batch":1', '"batch":0').replace('"offset":', '"offset":0,"x":'))
    report = writer(paths).recover()
    assert report.index_rebuilt
    assert idx.read_bytes().replace(b',"scanned":true', b"") == good
    assert indexed_keys(paths) == set(KEYS[:6])


def test_source_files_already_archived_are_removed_and_others_queued(tmp_path):
    paths = project(tmp_path)
    w = writer(paths, batch_models=3, keep_sources=True)  # as if killed between commit and deletion
    w.recover()
    save(paths, KEYS[:5])
    for k in KEYS[:3]:
        w.add(k)
    w.close()
    (paths.main_models / ".leftover.joblib.abc123.tmp").write_bytes(b"half a model")
    report = writer(paths, batch_models=3).recover()
    assert report.sources_removed == 3 and report.leftovers_removed == 1
    assert report.queued == KEYS[3:5]
    assert sorted(p.name for p in paths.main_models.iterdir()) == sorted(f"{k}.joblib" for k in KEYS[3:5])


def test_a_newer_copy_of_an_archived_key_is_archived_again_and_wins(tmp_path):
    paths = project(tmp_path)
    save(paths, ["m_1"])
    w = writer(paths)
    w.add("m_1")
    w.flush()
    save_model(fake_model(2), paths.main_models, "m_1")
    w.add("m_1")
    w.flush()
    w.close()
    assert ModelStore(paths.root, workspace_dir=tmp_path / "ws").open_model("m_1")["key"] == 2
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xzf", str(paths.main_archive), "-C", str(out)], check=True)
    assert joblib.load(out / "m_1.joblib")["key"] == 2


def test_every_torn_append_recovers_consistently(tmp_path):
    """Cut the archive at many points inside the second batch, as a kill mid-append
    would: batch 1 stays readable, batch 2's models are on disk or archived, never lost."""
    paths = project(tmp_path)
    first, second = KEYS[:3], KEYS[3:6]
    w = writer(paths, batch_models=3, keep_sources=True)
    w.recover()
    hashes = save(paths, first + second)
    for k in first:
        w.add(k)
    committed_index = index_path(paths.main_archive).read_bytes()
    committed_end = read_index(index_path(paths.main_archive)).data_end
    for k in second:
        w.add(k)
    full = paths.main_archive.read_bytes()
    full_index = index_path(paths.main_archive).read_bytes()
    w.close()
    cuts = sorted({committed_end, committed_end + 1, committed_end + 10, len(full) - len(TRAILER),
                   len(full) - 1, len(full)} | set(range(committed_end, len(full), 97)))
    for cut in cuts:
        for index_bytes in (committed_index, full_index[: len(committed_index) + 20]):
            paths.main_archive.write_bytes(full[:cut])
            index_path(paths.main_archive).write_bytes(index_bytes)
            save(paths, first + second)
            w = writer(paths, batch_models=3)
            report = w.recover()
            adopted = cut >= len(full) - len(TRAILER)
            assert report.adopted_batches == (1 if adopted else 0), cut
            assert w.archived_keys() == set(first + (second if adopted else []))
            assert set(w.pending_keys()) == (set() if adopted else set(second))
            names, stderr = tar_listing(paths.main_archive)
            assert stderr == "" and set(names) == {f"{k}.joblib" for k in w.archived_keys()}
            w.flush()
            w.close()
            assert tarfile_contents(paths.main_archive) == {f"{k}.joblib": h for k, h in hashes.items()}


class _FailingWrites:
    """os.write that raises ENOSPC once `budget` bytes went to files named like `target`."""

    def __init__(self, target: str, budget: int) -> None:
        self.real = os.write
        self.target, self.budget = target, budget

    def __call__(self, fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(self.target):
            if self.budget <= 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            data = bytes(data)[: self.budget]
            self.budget -= len(data)
        return self.real(fd, data)


@pytest.mark.parametrize("target,budget", [(".tar.gz", 0), (".tar.gz", 700), (".index.jsonl", 0), (".index.jsonl", 30)])
def test_full_disk_while_archiving_loses_nothing(tmp_path, monkeypatch, target, budget):
    paths = project(tmp_path)
    w = writer(paths, batch_models=3)
    w.recover()
    hashes = save(paths, KEYS[:6])
    for k in KEYS[:3]:
        w.add(k)
    archive_before = paths.main_archive.read_bytes()
    index_before = index_path(paths.main_archive).read_bytes()
    monkeypatch.setattr(os, "write", _FailingWrites(target, budget))
    with pytest.raises(DiskFullError, match="full"):
        for k in KEYS[3:6]:
            w.add(k)
    monkeypatch.undo()
    assert paths.main_archive.read_bytes() == archive_before
    assert index_path(paths.main_archive).read_bytes() == index_before
    assert all((paths.main_models / f"{k}.joblib").exists() for k in KEYS[3:6])
    assert w.archived_keys() == set(KEYS[:3]) and w.pending_keys() == KEYS[3:6]
    w.flush()  # space is back: the same writer finishes the job
    assert tarfile_contents(paths.main_archive) == {f"{k}.joblib": h for k, h in hashes.items()}


def test_full_disk_while_saving_leaves_no_partial_file(tmp_path, monkeypatch):
    paths = project(tmp_path)

    def dump_then_fail(model, handle, compress=0):
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files_module.joblib, "dump", dump_then_fail)
    with pytest.raises(DiskFullError, match="m_1"):
        save_model(fake_model(1), paths.main_models, "m_1")
    assert list(paths.main_models.iterdir()) == []


def test_keys_are_validated():
    for bad in ("../x", "a/b", "/abs", "..", "a..b", "", "sp ace", "x" * 300):
        with pytest.raises(ValueError):
            files_module.validate_key(bad)
    assert files_module.validate_key("std__select-75__lr__grid__roc_auc__0_ovr_class_3") 


def test_only_one_writer_per_archive(tmp_path):
    paths = project(tmp_path)
    w = writer(paths)
    w.recover()
    with pytest.raises(ArchiveBusyError):
        writer(paths).recover()
    w.close()
    writer(paths).recover()


def test_tarfile_reads_an_archive_whose_trailer_is_missing(tmp_path):
    """The instant between cutting the old trailer and writing the batch: still a readable tar.gz."""
    paths = project(tmp_path)
    save(paths, KEYS[:3])
    w = writer(paths)
    for k in KEYS[:3]:
        w.add(k)
    w.flush()
    w.close()
    data = paths.main_archive.read_bytes()
    paths.main_archive.write_bytes(data[: -len(TRAILER)])
    with tarfile.open(paths.main_archive) as tar:
        assert tar.getnames() == [f"{k}.joblib" for k in KEYS[:3]]
    report = writer(paths).recover()
    assert report.trailer_written and paths.main_archive.read_bytes() == data
