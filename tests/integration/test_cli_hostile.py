"""Every subcommand, given what a hostile or unlucky user types or leaves in a project folder.

What must survive: `milo` never prints a Python traceback. Each case gets one
paragraph on stderr that names the problem, and the documented exit code
(milo_tui.errors: 2 bad project/config/data/path, 64 a wrong command line).
The commands run in-process through `cli.main`, the same single error boundary
the console script uses; one case runs the real console script as a subprocess.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine_helpers import copy_sample, small_binary_project
from milo_tui import cli
from milo_tui.errors import EXIT_BAD_INPUT, EXIT_USAGE

KEY_LIKE = "std__none__lr__grid__accuracy__0"


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def milo(capsys, *args) -> Outcome:
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exc:  # argparse: --help and usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return Outcome(code, out, err)


def assert_refused(result: Outcome, code: int, *words: str) -> None:
    """One paragraph on stderr, no traceback, the documented code, and the words that matter."""
    text = result.out + result.err
    assert "Traceback" not in text, text
    assert result.code == code, (result.code, text)
    message = result.err.strip()
    assert message.startswith(("milo:", "milo ", "usage: milo")), message
    paragraph = [line for line in message.splitlines() if not line.startswith(("usage:", " "))]
    assert len(paragraph) == 1, message  # one paragraph (usage lines aside)
    for word in words:
        assert word in message, (word, message)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    project = small_binary_project(tmp_path_factory.mktemp("hostile"), algorithms=["lr"], selectors=["none"])
    result = subprocess.run([sys.executable, "-m", "milo_tui", "run", str(project), "--headless"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return project


def copy_project(finished: Path, dest: Path) -> Path:
    return Path(shutil.copytree(finished, dest / "copy", ignore=shutil.ignore_patterns(".milo")))


# -- projects that are not there, not projects, or never ran ---------------------------

PROJECT_COMMANDS = [
    ["run", "{p}", "--headless"],
    ["watch", "{p}", "--headless", "--no-follow"],
    ["models", "{p}"],
    ["extract", "{p}", KEY_LIKE],
    ["estimate", "{p}"],
    ["stats", "{p}"],
    ["predict", "{p}", "{p}/rows.csv"],
    ["compare", "{p}", KEY_LIKE, KEY_LIKE.replace("__0", "__1")],
    ["summary", "{p}"],
]


@pytest.mark.parametrize("command", PROJECT_COMMANDS, ids=lambda c: c[0])
def test_missing_project(capsys, tmp_path, command):
    missing = tmp_path / "nowhere"
    result = milo(capsys, *[part.format(p=missing) for part in command])
    assert_refused(result, EXIT_BAD_INPUT, "nowhere")
    assert not missing.exists()  # nothing was created for a typo


@pytest.mark.parametrize("command", PROJECT_COMMANDS, ids=lambda c: c[0])
def test_a_file_given_as_the_project(capsys, tmp_path, command):
    csv = tmp_path / "train.csv"
    csv.write_text("a,target\n1,x\n")
    result = milo(capsys, *[part.format(p=csv) for part in command])
    assert_refused(result, EXIT_BAD_INPUT, "is a file, not a project folder")


@pytest.mark.parametrize("command", PROJECT_COMMANDS, ids=lambda c: c[0])
def test_a_folder_that_is_not_a_project(capsys, tmp_path, command):
    (tmp_path / "notes.txt").write_text("not a project")
    result = milo(capsys, *[part.format(p=tmp_path) for part in command])
    assert_refused(result, EXIT_BAD_INPUT, "not a milo project")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("command", [c for c in PROJECT_COMMANDS if c[0] not in ("run", "estimate")],
                         ids=lambda c: c[0])
def test_a_project_that_never_ran(capsys, tmp_path, command):
    project = copy_sample("breast_cancer", tmp_path)
    result = milo(capsys, *[part.format(p=project) for part in command])
    if command[0] == "stats":  # an honest answer: nothing stored yet
        assert result.code == 0 and "Models Saved: 0" in result.out
        return
    assert_refused(result, EXIT_BAD_INPUT, *(["never run"] if command[0] == "watch" else []))


def test_watch_following_a_project_that_never_ran_says_so_instead_of_waiting(capsys, tmp_path):
    project = copy_sample("breast_cancer", tmp_path)
    assert_refused(milo(capsys, "watch", project, "--headless"), EXIT_BAD_INPUT, "never run", "milo run")


# -- odd model keys and destinations -------------------------------------------------------

@pytest.mark.parametrize("key", ["../x", "", "k" * 5000, "modèle/ü", "-", "/etc/passwd", "a\nb"],
                         ids=["dotdot", "empty", "long", "unicode", "dash", "absolute", "newline"])
def test_extract_odd_keys(capsys, finished, tmp_path, key):
    result = milo(capsys, "extract", finished, key, "-o", tmp_path / "out.joblib")
    assert_refused(result, EXIT_BAD_INPUT)
    assert not (tmp_path / "out.joblib").exists()
    assert list(tmp_path.iterdir()) == []  # nothing written anywhere near


def test_extract_into_an_unwritable_place(capsys, finished, tmp_path):
    best = json.loads(milo(capsys, "models", finished, "--json", "--limit", "1").out)[0]["key"]
    for target in ("/proc/milo-test.joblib", "/sys/milo-test-bundle"):
        bundle = ["--bundle"] if "bundle" in target else []
        result = milo(capsys, "extract", finished, best, "-o", target, *bundle)
        assert_refused(result, EXIT_BAD_INPUT, target)
        assert ".tmp" not in result.err  # names the user's path, not milo's temp file


def test_extract_into_a_new_folder_with_a_trailing_slash(capsys, finished, tmp_path):
    best = json.loads(milo(capsys, "models", finished, "--json", "--limit", "1").out)[0]["key"]
    result = milo(capsys, "extract", finished, best, "-o", f"{tmp_path / 'newdir'}/", "--json")
    assert result.code == 0, result.err
    assert (tmp_path / "newdir").is_dir()  # a folder, not a file named newdir
    written = Path(json.loads(result.out)["path"])
    assert written.parent == tmp_path / "newdir" and written.is_file()


# -- damaged project files ----------------------------------------------------------------

@pytest.mark.parametrize("damage", ["binary", "folder"])
@pytest.mark.parametrize("command", ["models", "extract"])
def test_unreadable_report(capsys, finished, tmp_path, damage, command):
    project = copy_project(finished, tmp_path)
    report = project / "report.csv"
    report.unlink()
    if damage == "binary":
        report.write_bytes(b"\xff\xfe\x00\x81garbage\n1,2,3\n")
    else:
        report.mkdir()
    args = [command, project] + ([KEY_LIKE, "-o", tmp_path / "m.joblib"] if command == "extract" else [])
    assert_refused(milo(capsys, *args), EXIT_BAD_INPUT, "report.csv")


def test_watch_survives_journal_lines_of_the_wrong_type(capsys, finished, tmp_path):
    project = copy_project(finished, tmp_path)
    hostile = [
        "[1, 2, 3]", '"a string"', "42", "null", '{"type": 5}',
        '{"v":1,"seq":900,"ts":1,"type":"model_finished","data":[1]}',
        '{"v":1,"seq":901,"ts":1,"type":"model_finished","data":{"key":5,"metrics":"x","completed":"a"}}',
        '{"v":1,"seq":902,"ts":1,"type":"run_started","data":{"phases":[],"class_labels":7,"resume":1}}',
        '{"v":1,"seq":903,"ts":1,"type":"model_failed","data":{"keys":5,"pipeline":[]}}',
        '{"v":1,"seq":904,"ts":1,"type":"archive_batch","data":{"keys":null,"raw_bytes":"big"}}',
        '{"v":1,"seq":905,"ts":1,"type":"run_finished","data":{"seconds":"soon","best":"x"}}',
    ]
    with open(project / "events.jsonl", "a") as journal:
        journal.write("\n".join(hostile) + "\n")
    result = milo(capsys, "watch", project, "--headless", "--no-follow")
    assert result.code == 0 and "Traceback" not in result.out + result.err
    assert "run completed: 8 models" in result.out  # the real events still replay
    assert "garbled journal lines were skipped" in result.err
    assert "malformed" in result.out  # a wrong-shaped payload is said, not fatal


def test_models_limit_is_never_negative(capsys, finished):
    assert_refused(milo(capsys, "models", finished, "--limit", "-1"), EXIT_USAGE, "--limit")
    assert len(json.loads(milo(capsys, "models", finished, "--json", "--limit", "0").out)) == 8


# -- config values that pass validation and crash later ------------------------------------

@pytest.mark.parametrize("section,key,value,words", [
    ("search", "seed", 2**32, ["search.seed", "4294967295"]),
    ("search", "seed", -1, ["search.seed"]),
    ("search", "algoritms", ["lr"], ["did you mean search.algorithms"]),
    ("search", "workers", 2, ["did you mean run.workers"]),
])
def test_config_values_are_refused_by_name(capsys, tmp_path, section, key, value, words):
    import tomllib

    project = copy_sample("breast_cancer", tmp_path)
    raw = tomllib.loads((project / "milo.toml").read_text())
    (project / "milo.toml").write_text(_toml_with(raw, section, key, value))
    for command in ("estimate", "run"):
        assert_refused(milo(capsys, command, project), EXIT_BAD_INPUT, *words)
    assert not (project / ".milo").exists() and not (project / "events.jsonl").exists()  # nothing started


def _toml_with(raw: dict, section: str, key: str, value) -> str:
    """milo.toml with `key = value` in [section], whether or not the key is a known setting."""
    from milo_tui.config import render_toml

    lines = [line for line in render_toml(raw, comments=False).splitlines() if not line.startswith(f"{key} = ")]
    at = lines.index(f"[{section}]") + 1
    return "\n".join(lines[:at] + [f"{key} = {json.dumps(value)}"] + lines[at:]) + "\n"


# -- usage errors are not bad input -------------------------------------------------------

@pytest.mark.parametrize("args", [[], ["bogus"], ["models"], ["models", "P", "--limit", "x"],
                                  ["run", "P", "--no-such-flag"], ["init", "P", "--preset", "huge"],
                                  ["run", "P", "--resume", "--force"]])
def test_usage_errors_have_their_own_exit_code(capsys, args):
    assert_refused(milo(capsys, *args), EXIT_USAGE, "error:")


# -- a read-only project ------------------------------------------------------------------

@pytest.fixture
def read_only_copy(finished, tmp_path):
    """The finished project on a read-only file system (root cannot be kept out by chmod)."""
    mount = tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        shutil.copytree(finished, mount / "project", ignore=shutil.ignore_patterns(".milo"))
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True, capture_output=True)
        yield mount / "project"
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.parametrize("command", [["run", "{p}", "--headless", "--resume"], ["run", "{p}", "--headless", "--force"],
                                     ["init", "{p}/sub", "--train", "{p}/train.csv", "--test", "{p}/test.csv",
                                      "--target", "target"]], ids=["resume", "force", "init"])
def test_a_read_only_project_is_refused_plainly(capsys, read_only_copy, command):
    result = milo(capsys, *[part.format(p=read_only_copy) for part in command])
    assert_refused(result, EXIT_BAD_INPUT, "read-only file system")


def test_a_read_only_project_can_still_be_read(capsys, read_only_copy, tmp_path):
    listed = milo(capsys, "models", read_only_copy, "--json")
    assert listed.code == 0 and len(json.loads(listed.out)) == 8
    stats = milo(capsys, "stats", read_only_copy, "--json")
    assert stats.code == 0 and json.loads(stats.out)["models_saved"] == 8
    key = json.loads(listed.out)[0]["key"]
    out = milo(capsys, "extract", read_only_copy, key, "-o", tmp_path / "m.joblib")
    assert out.code == 0 and (tmp_path / "m.joblib").is_file(), out.err


# -- the console script itself ------------------------------------------------------------

def test_the_console_script_prints_a_paragraph_not_a_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "milo_tui", "watch", str(tmp_path), "--headless"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == EXIT_BAD_INPUT and "Traceback" not in result.stderr
    assert result.stderr.startswith("milo: ") and len(result.stderr.strip().splitlines()) == 1


def test_an_unexpected_error_is_a_paragraph_with_a_way_to_the_details(capsys, monkeypatch):
    def broken(args):
        raise ZeroDivisionError("division by zero")

    result = cli.run_command(broken, None)
    _, err = capsys.readouterr()
    assert result == 1 and "ZeroDivisionError" in err and "MILO_DEBUG=1" in err and "Traceback" not in err
    monkeypatch.setenv("MILO_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        cli.run_command(broken, None)
