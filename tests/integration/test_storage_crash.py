"""A writer SIGKILLed at random instants: the archive and its index stay consistent, nothing is lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from milo_tui.storage import ModelStore
from milo_tui.storage.index import index_path
from storage_helpers import project, tar_listing, tarfile_contents, writer

# Saves and archives models m_<start>.. forever (small batches, so kills land inside appends
# often), logging each key once its file is saved: logged keys must never be lost.
CHILD = r"""
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from storage_helpers import fake_model
from milo_tui.storage import ArchiveWriter, save_model
root = Path({root!r})
source = root / "models" / "main_models"
w = ArchiveWriter(root / "models" / "main_models.tar.gz", source, batch_models=2, batch_bytes=10**9, level=1)
w.recover()
log = open({log!r}, "a", buffering=1)
print("ready", flush=True)
i = {start}
while True:
    save_model(fake_model(i), source, f"m_{{i}}")
    log.write(f"m_{{i}}\n")
    w.add(f"m_{{i}}")
    i += 1
"""


def _run_and_kill(paths, log: Path, start: int, delay: float) -> None:
    script = CHILD.format(tests=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), root=str(paths.root), log=str(log), start=start)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"  # imports done, whatever the machine's load
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()


def test_random_kills_during_appends_lose_nothing(tmp_path):
    rng = random.Random(1234)
    paths = project(tmp_path)
    log = tmp_path / "saved.log"
    log.touch()
    start = 0
    reports = []
    for _ in range(8):
        _run_and_kill(paths, log, start, delay=rng.uniform(0.05, 0.5))
        logged = log.read_text().split()
        start = len(logged) + 10  # keys never reused, whatever was half-done
        w = writer(paths)
        report = w.recover()
        reports.append(report)
        archived, pending = w.archived_keys(), set(w.pending_keys())
        w.close()
        assert set(logged) <= archived | pending, report
        on_disk = {p.name[: -len(".joblib")] for p in paths.main_models.glob("*.joblib")}
        assert pending == on_disk and not (archived & on_disk)
        assert not [p for p in paths.main_models.iterdir() if p.name.startswith(".")]
        names, stderr = tar_listing(paths.main_archive)
        assert stderr == "" and set(names) == {f"{k}.joblib" for k in archived}
        store = ModelStore(paths.root, cache_models=0, workspace_dir=tmp_path / "ws")
        entries = {e.key: e for e in store.list_models() if e.location == "archive"}
        assert set(entries) == archived
        contents = tarfile_contents(paths.main_archive)
        for key, entry in entries.items():
            assert contents[f"{key}.joblib"] == entry.sha256
        for key in rng.sample(sorted(archived), min(5, len(archived))):
            assert store.open_model(key)["key"] == int(key[2:])
    assert len(log.read_text().split()) > 20
    # the final resume archives what is left, and the index still matches a fresh scan
    w = writer(paths)
    w.recover()
    w.flush()
    w.close()
    idx = index_path(paths.main_archive)
    before = idx.read_bytes()
    idx.unlink()
    writer(paths).recover()
    # the same records; marked as scanned, since no source file is left to vouch for their hashes
    assert idx.read_bytes().replace(b',"scanned":true', b"") == before
    assert list(paths.main_models.glob("*.joblib")) == []
    assert {f"{k}.joblib" for k in log.read_text().split()} <= set(tarfile_contents(paths.main_archive))
    # the kills did land at instants that needed repair, not only between appends
    assert sum(r.changed for r in reports) >= 2, reports
