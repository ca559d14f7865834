"""The read API: listing, cache bounds, workspaces, export, statistics, reading during a run."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import joblib
import pytest

from milo_tui.errors import BadInputError, IntegrityError
from milo_tui.storage import ModelCache, ModelStore, project_storage_stats
from milo_tui.storage import store as store_module
from milo_tui.storage.stats import live_storage_stats
from milo_tui.storage.workspace import Workspace, sweep_stale_workspaces
from storage_helpers import fake_model, models_equal, project, save, writer

KEYS = [f"m_{i}" for i in range(7)]


def _project_with_pending(tmp_path):
    """5 archived models in main, 2 waiting as files; one archived OvR model."""
    paths = project(tmp_path)
    w = writer(paths, batch_models=5)
    w.recover()
    save(paths, KEYS)
    for k in KEYS:
        w.add(k)
    w.close()
    ovr = writer(paths, "ovr_models")
    ovr.recover()
    save(paths, ["o_ovr_class_1"], archive="ovr_models")
    ovr.add("o_ovr_class_1")
    ovr.flush()
    ovr.close()
    return paths


def test_list_models_from_indexes_and_files(tmp_path):
    paths = _project_with_pending(tmp_path)
    store = ModelStore(paths.root, workspace_dir=tmp_path / "ws")
    listed = {(m.key, m.archive, m.location, m.batch) for m in store.list_models()}
    assert listed == {(k, "main_models", "archive", 0) for k in KEYS[:5]} | {
        (k, "main_models", "file", None) for k in KEYS[5:]} | {("o_ovr_class_1", "ovr_models", "archive", 0)}
    for key in KEYS:  # archived or not, every model opens
        assert models_equal(store.open_model(key), fake_model(int(key[2:])))


def test_cache_bounds_by_count_bytes_and_time():
    now = [0.0]
    cache = ModelCache(max_models=2, max_bytes=100, ttl=10, clock=lambda: now[0])
    assert cache.put("a", "A", 40) and cache.put("b", "B", 40)
    assert cache.get("a") == "A"  # a is now the most recent
    cache.put("c", "C", 40)  # over both bounds: b, the least recent, goes
    assert "b" not in cache and "a" in cache and "c" in cache and cache.total_bytes == 80
    cache.put("d", "D", 70)  # bytes: 40 + 40 + 70 > 100 -> both older ones go
    assert len(cache) == 1 and cache.get("d") == "D"
    assert not cache.put("huge", "H", 101) and "huge" not in cache
    now[0] = 10.5
    assert cache.get("d") is None and len(cache) == 0
    assert not ModelCache(0, 100, 10).put("x", 1, 1)


def test_open_model_uses_the_cache(tmp_path, monkeypatch):
    paths = _project_with_pending(tmp_path)
    store = ModelStore(paths.root, cache_models=2, workspace_dir=tmp_path / "ws")
    loads = []
    real_load = joblib.load
    monkeypatch.setattr(store_module.joblib, "load", lambda p: loads.append(p) or real_load(p))
    first = store.open_model("m_1")
    assert store.open_model("m_1") is first and len(loads) == 1
    store.open_model("m_2"), store.open_model("m_3")
    store.open_model("m_1")
    assert len(loads) == 4  # evicted by count, loaded again


def test_workspaces_are_removed_after_use_and_on_error(tmp_path, monkeypatch):
    paths = _project_with_pending(tmp_path)
    ws = tmp_path / "ws"
    store = ModelStore(paths.root, workspace_dir=ws)
    store.open_model("m_0")
    assert list(ws.iterdir()) == [] and oct(ws.stat().st_mode & 0o777) == "0o700"

    def broken_load(path):
        assert path.exists() and oct(path.parent.stat().st_mode & 0o777) == "0o700"
        raise EOFError("truncated pickle")

    monkeypatch.setattr(store_module.joblib, "load", broken_load)
    with pytest.raises(EOFError):
        store.open_model("m_4")
    assert list(ws.iterdir()) == []


def _die_inside_a_workspace(base) -> None:
    workspace = Workspace(base).__enter__()
    (workspace.path / "m.joblib").write_bytes(b"x" * 10)
    os.kill(os.getpid(), signal.SIGKILL)


def test_stale_workspaces_of_dead_processes_are_swept_at_start(tmp_path):
    ws = tmp_path / "ws"
    proc = multiprocessing.get_context("fork").Process(target=_die_inside_a_workspace, args=(ws,))
    proc.start()
    proc.join(10)
    assert proc.exitcode == -signal.SIGKILL
    with Workspace(ws) as live:  # ours, alive: must survive the sweep
        stale = [p for p in ws.iterdir() if p != live.path]
        assert len(stale) == 1 and stale[0].name.startswith(f"ws-{proc.pid}-")
        paths = project(tmp_path)
        store = ModelStore(paths.root, workspace_dir=ws)
        assert store.temp_files_removed == 1
        assert [p for p in ws.iterdir()] == [live.path]
    assert sweep_stale_workspaces(ws) == 0 and list(ws.iterdir()) == []


def test_a_planted_workspace_base_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "ws").symlink_to(target)
    with pytest.raises(IntegrityError, match="not a folder owned by you"):
        with Workspace(tmp_path / "ws"):
            pass


def test_export_file_folder_and_bundle(tmp_path):
    paths = _project_with_pending(tmp_path)
    store = ModelStore(paths.root, workspace_dir=tmp_path / "ws")
    out = tmp_path / "out"
    out.mkdir()
    written = store.export("m_1", out)
    assert written == out / "m_1.joblib" and models_equal(joblib.load(written), fake_model(1))
    with pytest.raises(BadInputError, match="already exists"):
        store.export("m_1", out)
    assert store.export("m_2", out / "named.joblib") == out / "named.joblib"
    store.export("m_1", out, overwrite=True)
    row = {"key": "m_6", "roc_auc": 0.91, "best_params": "{'C': 0.5, 'penalty': 'l2'}"}
    folder = store.export("m_6", out, bundle=True, report_row=row)  # m_6 is not archived yet
    assert folder == out / "m_6"
    assert sorted(p.name for p in folder.iterdir()) == ["metrics.json", "model.joblib", "params.json"]
    assert json.loads((folder / "params.json").read_text()) == {"C": 0.5, "penalty": "l2"}
    assert json.loads((folder / "metrics.json").read_text())["roc_auc"] == 0.91
    assert models_equal(joblib.load(folder / "model.joblib"), fake_model(6))
    with pytest.raises(BadInputError):
        store.export("m_6", out, bundle=True, report_row=row)
    assert store_module.parse_params('{"C": 1}') == {"C": 1}
    assert store_module.parse_params("not params") == {"raw": "not params"}


def test_statistics_of_a_project_and_of_live_writers(tmp_path):
    paths = _project_with_pending(tmp_path)
    stats = project_storage_stats(paths.root)
    sizes = {k: (paths.main_models / f"{k}.joblib").stat().st_size for k in KEYS[5:]}
    assert stats.models_saved == 8 and stats.files_pending == 2
    assert stats.archives == 2 and stats.batches == 2 and stats.temp_files_removed == 6
    assert stats.bytes_in_archives == paths.main_archive.stat().st_size + paths.ovr_archive.stat().st_size
    assert stats.bytes_before_compression > stats.bytes_in_archives + sum(sizes.values())
    assert 0 < stats.compression_ratio < 1 and stats.disk_free_bytes > 0
    event = stats.as_event()
    assert set(event) >= {"models_saved", "compression_ratio", "disk_free_bytes"}
    json.dumps(event)
    w = writer(paths, batch_models=5)
    w.recover()
    live = live_storage_stats(paths.root, [w])
    assert live.models_saved == 7 and live.files_pending == 2 and live.batches == 1


WRITER_SCRIPT = r"""
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from storage_helpers import fake_model
from milo_tui.storage import ArchiveWriter, save_model
root = Path({root!r})
w = ArchiveWriter(root / "models" / "main_models.tar.gz", root / "models" / "main_models", batch_models=3)
w.recover()
print("ready", flush=True)
for i in range({count}):
    save_model(fake_model(i), root / "models" / "main_models", f"m_{{i}}")
    w.add(f"m_{{i}}")
    time.sleep(0.002)
w.flush()
"""


def test_models_open_while_a_run_appends(tmp_path):
    paths = project(tmp_path)
    count = 150
    script = WRITER_SCRIPT.format(tests=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), root=str(paths.root), count=count)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    store = ModelStore(paths.root, cache_models=0, workspace_dir=tmp_path / "ws")
    opened = set()
    seen_archived = seen_file = 0
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        for entry in store.list_models()[-4:]:
            model = store.open_model(entry.key)  # archived or file, moved meanwhile or not
            assert model["key"] == int(entry.key[2:])
            opened.add(entry.key)
            seen_archived += entry.location == "archive"
            seen_file += entry.location == "file"
    assert proc.wait(30) == 0
    assert len(opened) > 10 and seen_archived and seen_file
    final = store.list_models()
    assert len(final) == count and all(m.location == "archive" for m in final)
    for entry in final[::10]:
        assert store.open_model(entry.key)["key"] == int(entry.key[2:])


def test_event_payloads_match_the_event_schema(tmp_path):
    import jsonschema

    from milo_tui.events import Event
    from milo_tui.storage import BatchInfo

    schema_path = os.path.join(os.path.dirname(store_module.__file__), "..", "schema", "events.schema.json")
    with open(schema_path, encoding="utf-8") as handle:
        schema = json.load(handle)
    paths = _project_with_pending(tmp_path)
    payloads = [("archive_batch", BatchInfo("main_models", 0, ["m_0"], 100, 40, 0.01).as_event()),
                ("storage", project_storage_stats(paths.root).as_event())]
    for etype, data in payloads:
        jsonschema.validate(json.loads(Event(etype, data, seq=1, ts=1.0).to_json()), schema)


def test_one_model_lookup_agrees_with_the_full_index_read(tmp_path):
    """The lazy lookup used to extract one model (a huge index is not parsed) gives what the full
    reader gives: the later copy of a key archived twice, nothing from a torn last line, the
    scanned mark, and a fallback when there is no index."""
    from milo_tui.storage.index import NEEDS_FULL_READ, IndexReader, index_path, lookup_entry

    paths = project(tmp_path)
    w = writer(paths, batch_models=2)
    w.recover()
    save(paths, ["m_1", "m_2"])
    w.add("m_1")
    w.add("m_2")
    save(paths, ["m_1"])  # re-saved: archived again, later wins
    w.add("m_1")
    w.flush()
    w.close()
    full = IndexReader(paths.main_archive).refresh()
    for key in ("m_1", "m_2"):
        assert lookup_entry(paths.main_archive, key) == full[key]
    assert lookup_entry(paths.main_archive, "m_1").batch == 1
    assert lookup_entry(paths.main_archive, "m_9") is None
    idx = index_path(paths.main_archive)
    with open(idx, "a") as handle:
        handle.write('{"batch":2,"offset":1,"length":5,"raw_length":1,"crc32":1,"members":[["m_7",0,512,1,"ab"]')
    assert lookup_entry(paths.main_archive, "m_7") is NEEDS_FULL_READ
    assert "m_7" not in IndexReader(paths.main_archive).refresh()
    assert ModelStore(paths.root, workspace_dir=tmp_path / "ws").open_model("m_2")["key"] == 2
    idx.unlink()
    assert lookup_entry(paths.main_archive, "m_1") is NEEDS_FULL_READ
    writer(paths).recover()  # rebuilt by scanning: the mark is read lazily too
    assert lookup_entry(paths.main_archive, "m_2").trusted is False
