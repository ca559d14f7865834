"""`milo init` checks what it can before anything trains, and starts from a search space that fits the user.

What must survive: a target column that is not in the CSV (or is a measurement, or has
one class) is refused naming the columns and the closest name; the classes found are
listed in the user's own labels; each preset writes a milo.toml that loads, and the
default is not MILO-ML's thousands of models.
"""

from __future__ import annotations

import pytest

from engine_helpers import SAMPLES
from milo_tui import cli, config
from milo_tui.errors import EXIT_BAD_INPUT

TRAIN, TEST = SAMPLES / "breast_cancer" / "train.csv", SAMPLES / "breast_cancer" / "test.csv"


def init(capsys, dest, *extra, target="target"):
    code = cli.main(["init", str(dest), "--train", str(TRAIN), "--test", str(TEST), "--target", target, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_names_the_classes_it_found(capsys, tmp_path):
    code, out, _ = init(capsys, tmp_path / "p")
    assert code == 0
    assert "2 classes" in out and "'benign' (250 rows)" in out and "'malignant' (148 rows)" in out


@pytest.mark.parametrize("target,words", [
    ("targt", ["no column 'targt'", "Did you mean 'target'?", "mean_radius"]),
    ("mean_radius", ["looks like a measurement"]),
])
def test_refuses_a_target_that_is_not_a_class_column(capsys, tmp_path, target, words):
    code, out, err = init(capsys, tmp_path / "p", target=target)
    assert code == EXIT_BAD_INPUT and "Traceback" not in err
    assert all(word in err for word in words), err
    assert not (tmp_path / "p").exists()  # nothing was created


def test_refuses_a_single_class_and_non_utf8(capsys, tmp_path):
    one = tmp_path / "one.csv"
    one.write_text("a,target\n1,x\n2,x\n")
    assert cli.main(["init", str(tmp_path / "p"), "--train", str(one), "--test", str(one), "--target", "target"]) == 2
    assert "two classes" in capsys.readouterr().err
    latin = tmp_path / "latin.csv"
    latin.write_bytes("a,target\n1,caf\xe9\n".encode("latin-1"))
    assert cli.main(["init", str(tmp_path / "q"), "--train", str(latin), "--test", str(one), "--target", "target"]) == 2
    assert "not UTF-8" in capsys.readouterr().err


@pytest.mark.parametrize("preset", list(config.PRESETS))
def test_every_preset_writes_a_config_that_loads(capsys, tmp_path, preset):
    code, out, _ = init(capsys, tmp_path / preset, "--preset", preset)
    assert code == 0 and repr(preset) in out
    loaded = config.load(tmp_path / preset)
    for key, value in config.PRESETS[preset].search.items():
        assert loaded.search[key] == value, key


def test_the_default_preset_is_not_milo_mls_whole_space(capsys, tmp_path):
    init(capsys, tmp_path / "p")
    default, full = config.load(tmp_path / "p").search, config.PRESETS["milo-ml"].search
    pipelines = len(default["algorithms"]) * len(default["scalers"]) * len(default["selectors"]) * len(default["searchers"])
    assert pipelines < len(full["algorithms"]) * len(full["scalers"]) * len(full["selectors"]) * len(full["searchers"]) / 4
