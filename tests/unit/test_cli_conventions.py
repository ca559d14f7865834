"""The command line follows conventions a new user can rely on.

What must survive: every subcommand has a description and an example, every argument
and option has help text, `milo --help` lists the exit codes, usage errors (64) are
told apart from bad input (2), and every runtime dependency declares a tested floor.
"""

from __future__ import annotations

import argparse
import importlib.util
import tomllib
from pathlib import Path

import pytest

from milo_tui import cli
from milo_tui.errors import EXIT_CODES, EXIT_USAGE

ROOT = Path(__file__).resolve().parents[2]


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_subcommand_has_a_description_an_example_and_help_on_every_argument():
    commands = subcommands()
    assert {"init", "run", "watch", "models", "extract", "estimate", "stats", "completion", "settings"} <= set(commands)
    for name, parser in commands.items():
        assert parser.description and len(parser.description) > 30, name
        assert parser.epilog and f"milo {name}" in parser.epilog, f"{name} has no example"
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, f"milo {name}: {action.dest} has no help"


def test_top_level_help_lists_every_exit_code(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for code, meaning in EXIT_CODES:
        assert f"  {code:<3} {meaning}" in out


def test_readme_documents_the_same_exit_codes():
    readme = (ROOT / "README.md").read_text()
    for code, _ in EXIT_CODES:
        assert f"| {code} |" in readme, f"exit code {code} is not in README.md"


@pytest.mark.parametrize("argv", [["models"], ["nonsense"], ["stats", "P", "--jsn"], ["models", "P", "--limit", "-3"]])
def test_usage_errors_exit_64(capsys, argv):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == EXIT_USAGE
    assert "--help" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["P", "--event-fd", "x"], ["P", "--resme"]])
def test_the_engines_usage_errors_exit_64_too(capsys, argv):
    """The exit-code scheme is also `python -m milo_tui.engine`'s (errors.py)."""
    from milo_tui.engine.__main__ import main as engine_main

    with pytest.raises(SystemExit) as exited:
        engine_main(argv)
    assert exited.value.code == EXIT_USAGE
    assert "--help" in capsys.readouterr().err


@pytest.mark.parametrize("shell,marker", [("bash", "complete -o"), ("zsh", "#compdef milo")])
def test_completion_scripts(capsys, shell, marker):
    assert cli.main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert marker in script and "extract" in script and "--bundle" in script


def test_settings_prints_what_error_messages_point_to(capsys):
    assert cli.main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "memory_budget" in out and "cv_folds" in out


def test_every_runtime_dependency_has_a_floor_that_ci_installs():
    spec = importlib.util.spec_from_file_location("lower_bounds", ROOT / ".ci" / "lower_bounds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = module.lower_bounds(project["dependencies"])
    assert len(pins) == len(project["dependencies"]) and all("==" in pin for pin in pins)
    assert project["license"] == "MIT" and (ROOT / "LICENSE").is_file()
    assert "Operating System :: POSIX :: Linux" in project["classifiers"]
    assert {"test", "dev"} <= set(project["optional-dependencies"])
