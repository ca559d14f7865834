"""Shared helpers of the storage tests (no tests here)."""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
from pathlib import Path

import numpy as np

from milo_tui.project import ProjectPaths
from milo_tui.storage import ArchiveWriter, save_model
from milo_tui.storage.index import read_index


def fake_model(i: int) -> dict:
    """A small, distinct, joblib-able stand-in for a fitted model."""
    rng = np.random.default_rng(i)
    return {"key": i, "coef": rng.normal(size=(3, 20 + i % 7)), "classes": np.arange(3), "note": "x" * (i % 50)}


def models_equal(a: dict, b: dict) -> bool:
    return a["key"] == b["key"] and np.array_equal(a["coef"], b["coef"]) and a["note"] == b["note"]


def project(tmp_path: Path) -> ProjectPaths:
    paths = ProjectPaths.of(tmp_path / "proj")
    paths.main_models.mkdir(parents=True, exist_ok=True)
    return paths


def writer(paths: ProjectPaths, archive: str = "main_models", **kwargs) -> ArchiveWriter:
    return ArchiveWriter(paths.archive(archive), paths.models_dir(archive), **kwargs)


def save(paths: ProjectPaths, keys, archive: str = "main_models") -> dict[str, str]:
    """Save fake models; returns key -> sha256 of the file."""
    hashes = {}
    for key in keys:
        i = int(key.rsplit("_", 1)[-1])
        save_model(fake_model(i), paths.models_dir(archive), key)
        hashes[key] = hashlib.sha256((paths.models_dir(archive) / f"{key}.joblib").read_bytes()).hexdigest()
    return hashes


def archived_project(tmp_path: Path, keys, **writer_kwargs) -> ProjectPaths:
    """A project whose main archive holds `keys` (fake models), flushed and closed."""
    paths = project(tmp_path)
    w = writer(paths, batch_models=10, **writer_kwargs)
    w.recover()
    save(paths, keys)
    for k in keys:
        w.add(k)
    w.flush()
    w.close()
    return paths


def tar_listing(archive: Path) -> tuple[list[str], str]:
    done = subprocess.run(["tar", "-tzf", str(archive)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.split(), done.stderr


def tarfile_contents(archive: Path) -> dict[str, str]:
    out = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            out[member.name] = hashlib.sha256(tar.extractfile(member).read()).hexdigest()
    return out


def indexed_keys(paths: ProjectPaths, archive: str = "main_models") -> set[str]:
    parsed = read_index(Path(str(paths.archive(archive)).replace(".tar.gz", ".index.jsonl")))
    return {m.key for b in (parsed.batches if parsed else []) for m in b.members}
