"""Files people share: everything a project holds honours the user's umask.

What must survive: under umask 022 a colleague can read the results (report.csv,
metadata.json, class_results, models, archives, journal, exported models), not
only the archives; under umask 077 nothing of the project is readable by others.
Only the engine's private state (.milo) and temp workspaces stay private whatever
the umask.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from engine_helpers import small_binary_project
from milo_tui.project import atomic_write_bytes, current_umask


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def project_files(project: Path) -> list[Path]:
    return [p for p in project.rglob("*") if p.is_file() and ".milo" not in p.relative_to(project).parts
            and p.name not in ("train.csv", "test.csv", "milo.toml")]


@pytest.mark.parametrize("mask,expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_take_the_umask_mode(tmp_path, mask, expected):
    with umask(mask):
        assert current_umask() == mask
        atomic_write_bytes(tmp_path / "report.csv", b"key\n")
    assert mode(tmp_path / "report.csv") == expected


def test_a_run_and_an_export_under_umask_022_are_readable_by_colleagues(tmp_path):
    project = small_binary_project(tmp_path, algorithms=["lr"], selectors=["none"])
    with umask(0o022):
        run = subprocess.run([sys.executable, "-m", "milo_tui", "run", str(project), "--headless"],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        key = json.loads(subprocess.run([sys.executable, "-m", "milo_tui", "models", str(project), "--json",
                                         "--limit", "1"], capture_output=True, text=True).stdout)[0]["key"]
        for extra in ([], ["--bundle"]):
            out = subprocess.run([sys.executable, "-m", "milo_tui", "extract", str(project), key, "-o",
                                  str(tmp_path / f"export{len(extra)}/"), *extra], capture_output=True, text=True)
            assert out.returncode == 0, out.stderr
    files = project_files(project)
    names = {p.name for p in files}
    assert {"report.csv", "metadata.json", "events.jsonl", "main_models.tar.gz"} <= names
    assert any(p.parent.name == "class_results" for p in files)
    exported = [p for p in (tmp_path / "export0").rglob("*") if p.is_file()] + \
               [p for p in (tmp_path / "export1").rglob("*") if p.is_file()]
    assert len(exported) >= 3
    private = {str(p.relative_to(tmp_path)): oct(mode(p)) for p in files + exported if mode(p) != 0o644}
    assert not private, f"not shared as the umask allows: {private}"
    assert mode(project / ".milo") == 0o700  # the engine's own state stays private
