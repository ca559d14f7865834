"""Only milo_tui.tui may import textual: the engine, memory and storage parts stay plain Python."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_linter_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Only milo_tui.tui imports textual KEPT" in result.stdout
    assert "Layers of milo_tui KEPT" in result.stdout


def test_the_textual_contract_forbids_indirect_imports_too():
    """An indirect path to textual (core -> something -> textual) must break the contract too."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    textual = next(c for c in contracts if c["name"] == "Only milo_tui.tui imports textual")
    assert not textual.get("allow_indirect_imports", False)
    assert "milo_tui.tui" not in textual["source_modules"] and "milo_tui.cli" not in textual["source_modules"]
    layers = next(c for c in contracts if c["name"] == "Layers of milo_tui")
    order = [layer.split(" | ") for layer in layers["layers"]]
    flat = [name for layer in order for name in layer]
    assert flat.index("milo_tui.tui") < flat.index("milo_tui.engine")  # engine never imports tui
    assert all(flat.index("milo_tui.tui") < flat.index(core) for core in
               ("milo_tui.runstate", "milo_tui.storage", "milo_tui.memory", "milo_tui.events"))


def test_core_modules_import_without_textual():
    code = (
        "import sys, importlib\n"
        "sys.modules['textual'] = None\n"  # any import of textual now fails
        "for name in ['milo_tui.cli', 'milo_tui.engine.runner', 'milo_tui.engine.worker', 'milo_tui.keys', "
        "'milo_tui.storage.store', 'milo_tui.memory.governor', 'milo_tui.events', 'milo_tui.launcher']:\n"
        "    importlib.import_module(name)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_no_unused_imports_or_undefined_names():
    """pyflakes' checks via ruff: dead imports and undefined names are bugs waiting."""
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "--select", "F", "--no-cache", "milo_tui", "tests", "benchmarks"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
