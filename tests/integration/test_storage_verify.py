"""Checking a whole batch at once (what --resume does) gives copy_model's verdict on every model."""

from __future__ import annotations

import dataclasses
import io

import pytest

from milo_tui.errors import IntegrityError
from milo_tui.storage.extract import copy_model, verify_batch
from milo_tui.storage.index import IndexReader
from storage_helpers import project, save, writer

KEYS = [f"std__none__lr__grid__roc_auc_{i}" for i in range(6)]


def one_batch(tmp_path):
    paths = project(tmp_path)
    w = writer(paths, batch_models=len(KEYS))
    w.recover()
    save(paths, KEYS)
    for key in KEYS:
        w.add(key)
    entries = IndexReader(paths.main_archive).refresh()
    assert len({e.offset for e in entries.values()}) == 1
    return paths.main_archive, [entries[k] for k in KEYS]


def one_by_one(archive, entries) -> dict[str, bool]:
    verdicts = {}
    for entry in entries:
        try:
            copy_model(archive, entry, io.BytesIO())
            verdicts[entry.key] = True
        except IntegrityError:
            verdicts[entry.key] = False
    return verdicts


def lie_about(entries, index, **changes):
    return [dataclasses.replace(e, **changes) if i == index else e for i, e in enumerate(entries)]


TAMPERINGS = {
    "intact": lambda entries: entries,
    "a wrong hash in the middle": lambda entries: lie_about(entries, 2, sha256="0" * 64),
    "a wrong size": lambda entries: lie_about(entries, 3, size=entries[3].size + 1),
    "a header offset pointing at another model": lambda entries: lie_about(
        entries, 4, header_offset=entries[1].header_offset, data_offset=entries[1].data_offset),
    "an impossible entry": lambda entries: lie_about(entries, 0, data_offset=entries[0].header_offset),
    "the last model past the batch's end": lambda entries: lie_about(
        entries, 5, size=entries[5].size + 10_000_000),
}


@pytest.mark.parametrize("tamper", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_batch_verdicts_equal_model_by_model_verdicts(tmp_path, tamper):
    archive, entries = one_batch(tmp_path)
    entries = tamper(entries)
    results = verify_batch(archive, entries)
    assert {key: error is None for key, error in results.items()} == one_by_one(archive, entries)


def test_a_failure_does_not_condemn_the_models_after_it(tmp_path):
    archive, entries = one_batch(tmp_path)
    results = verify_batch(archive, lie_about(entries, 1, sha256="f" * 64))
    assert [key for key, error in results.items() if error is not None] == [KEYS[1]]
    assert "does not match its recorded sha256" in str(results[KEYS[1]])


def test_a_flipped_byte_in_the_archive_fails_the_batch_it_is_in(tmp_path):
    archive, entries = one_batch(tmp_path)
    data = bytearray(archive.read_bytes())
    middle = entries[0].offset + entries[0].length // 2
    data[middle] ^= 0xFF
    archive.write_bytes(bytes(data))
    results = verify_batch(archive, entries)
    assert results.keys() == set(KEYS)
    assert {key: error is None for key, error in results.items()} == one_by_one(archive, entries)
    assert any(error is not None for error in results.values())
