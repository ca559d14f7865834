"""Data refused at the root, in load_data (issue 10): each case one clear paragraph, nothing trained.

The engine-level twin (exit code 2, nothing written) is in tests/integration/test_engine_bad_input.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from milo_tui.engine.data import load_data
from milo_tui.errors import BadInputError

SAMPLE = Path(__file__).resolve().parents[2] / "sample_projects" / "breast_cancer"


@pytest.fixture
def files(tmp_path):
    for name in ("train.csv", "test.csv"):
        shutil.copy(SAMPLE / name, tmp_path / name)
    return tmp_path / "train.csv", tmp_path / "test.csv"


def _load(files):
    return load_data(*files, "target", cv_folds=3, test_size=0.2, seed=0)


def _refusal(files) -> str:
    with pytest.raises(BadInputError) as caught:
        _load(files)
    message = str(caught.value)
    assert "\n" not in message
    return message


def _write_with_header(path, frame, header):
    path.write_text(",".join(header) + "\n" + frame.to_csv(index=False, header=False))


def test_a_repeated_target_column_is_refused_naming_the_renamed_copy(files):
    train = pd.read_csv(files[0])
    train["copy"] = train["target"]
    _write_with_header(files[0], train, [*train.columns[:-1], "target"])
    message = _refusal(files)
    assert "'target' 2 times" in message and "'target.1'" in message and "leaks" in message


def test_duplicate_feature_names_are_refused_naming_them(files):
    test = pd.read_csv(files[1])
    header = list(test.columns)
    header[2] = header[1]
    _write_with_header(files[1], test, header)
    message = _refusal(files)
    assert f"'{header[1]}' 2 times" in message and "test CSV" in message


def test_names_that_differ_only_by_surrounding_spaces_count_as_duplicates(files):
    test = pd.read_csv(files[1])
    header = list(test.columns)
    header[1] = f" {header[0]} "
    _write_with_header(files[1], test, header)
    message = _refusal(files)
    assert f"'{header[0]}' 2 times" in message and f"' {header[0]} '" in message


def test_labels_differing_only_by_surrounding_spaces_are_refused(files):
    """' benign' and 'benign' would be trained as two classes; milo refuses rather than guess."""
    train = pd.read_csv(files[0])
    train.loc[train.index[::7], "target"] = " " + train.loc[train.index[::7], "target"]
    train.to_csv(files[0], index=False)
    message = _refusal(files)
    assert "differ only by spaces" in message and "' benign' and 'benign'" in message


def test_a_test_label_differing_by_spaces_is_named_as_such(files):
    test = pd.read_csv(files[1])
    test.loc[test.index[0], "target"] = "benign "
    test.to_csv(files[1], index=False)
    message = _refusal(files)
    assert "'benign '" in message and "surrounding spaces" in message


def test_labels_keep_their_type_and_padding_that_is_consistent_is_kept(files):
    train, test = pd.read_csv(files[0]), pd.read_csv(files[1])
    for frame, path in ((train, files[0]), (test, files[1])):
        frame["target"] = frame["target"].map({"benign": 0, "malignant": 1})
        frame.to_csv(path, index=False)
    _, summary = _load(files)
    assert summary.class_values == [0, 1] and summary.label_type == "int" and summary.rest_label == -1
    for frame, path in ((train, files[0]), (test, files[1])):
        frame["target"] = frame["target"].map({0: " no", 1: " yes"})
        frame.to_csv(path, index=False)
    _, summary = _load(files)
    assert summary.class_values == [" no", " yes"] and summary.label_type == "str"


def test_integer_labels_read_as_floats_because_of_an_empty_cell_stay_integers(files):
    train = pd.read_csv(files[0])
    test = pd.read_csv(files[1])
    train["target"] = train["target"].map({"benign": 1, "malignant": 2}).astype(float)
    train.loc[train.index[0], "target"] = float("nan")
    test["target"] = test["target"].map({"benign": 1, "malignant": 2})
    train.to_csv(files[0], index=False)
    test.to_csv(files[1], index=False)
    _, summary = _load(files)
    assert summary.class_values == [1, 2] and summary.dropped_rows["train"] == 1
