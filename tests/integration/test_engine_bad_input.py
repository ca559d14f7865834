"""Bad input through the real engine: exit code 2, one clear paragraph, nothing written."""

from __future__ import annotations


import pandas as pd

from milo_tui import events as ev

from engine_helpers import run_engine, small_binary_project, write_config

OUTPUTS = ("events.jsonl", "report.csv", "metadata.json", "models", "class_results")


def _project(tmp_path):
    return small_binary_project(tmp_path, algorithms=["lr"], scalers=["none"], selectors=["none"])


def _frames(project):
    return pd.read_csv(project / "train.csv"), pd.read_csv(project / "test.csv")


def _expect_refusal(project, *phrases):
    result = run_engine(project, timeout=120)
    assert result.exit_code == 2
    message = result.finished["message"]
    assert result.finished["status"] == "bad_input"
    for phrase in phrases:
        assert phrase in message, message
    assert "\n" not in message.strip()  # one paragraph
    for name in OUTPUTS:
        assert not (project / name).exists(), f"{name} was written for a refused run"
    return message


def test_missing_train_file(tmp_path):
    project = _project(tmp_path)
    (project / "train.csv").unlink()
    _expect_refusal(project, "does not exist", "data.train")


def test_unreadable_file(tmp_path):
    project = _project(tmp_path)
    (project / "test.csv").unlink()
    (project / "test.csv").mkdir()  # a directory where a file should be: unreadable even for root
    _expect_refusal(project, "test CSV")


def test_malformed_csv(tmp_path):
    project = _project(tmp_path)
    with open(project / "train.csv", "a") as handle:
        handle.write('1,2,"unterminated\n3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34\n')
    _expect_refusal(project, "cannot be parsed")


def test_missing_target_column(tmp_path):
    project = _project(tmp_path)
    write_config(project, {"data": {"target": "diagnosis"}})
    _expect_refusal(project, "'diagnosis'", "data.target")


def test_non_numeric_features_are_named(tmp_path):
    project = _project(tmp_path)
    train, test = _frames(project)
    for frame in (train, test):
        frame["site"] = "north"
        frame["mean_radius"] = frame["mean_radius"].astype(str) + "mm"
    train.to_csv(project / "train.csv", index=False)
    test.to_csv(project / "test.csv", index=False)
    _expect_refusal(project, "site", "mean_radius", "not numeric")


def test_single_class_target(tmp_path):
    project = _project(tmp_path)
    train, _ = _frames(project)
    train["target"] = "benign"
    train.to_csv(project / "train.csv", index=False)
    _expect_refusal(project, "single class", "'benign'")


def test_class_smaller_than_cv_folds(tmp_path):
    project = _project(tmp_path)
    train, _ = _frames(project)
    rare = train[train["target"] == "malignant"].head(3)
    train = pd.concat([train[train["target"] == "benign"], rare])
    train.to_csv(project / "train.csv", index=False)
    _expect_refusal(project, "Too few rows", "'malignant' (3 rows)", "cv_folds")


def test_train_test_column_mismatch(tmp_path):
    project = _project(tmp_path)
    _, test = _frames(project)
    test.rename(columns={"mean_radius": "radius"}).to_csv(project / "test.csv", index=False)
    _expect_refusal(project, "only in train: mean_radius", "only in test: radius")


def test_empty_search_space(tmp_path):
    project = _project(tmp_path)
    write_config(project, {"search": {"algorithms": []}})
    _expect_refusal(project, "search.algorithms is empty")


def test_unknown_key_and_wrong_type(tmp_path):
    project = _project(tmp_path)
    text = (project / "milo.toml").read_text().replace("[search]", '[search]\ncv_fold = 5\ntop_k = "two"', 1)
    text = text.replace("top_k = 2\n", "")
    (project / "milo.toml").write_text(text)
    _expect_refusal(project, "unknown key search.cv_fold", "search.top_k")


def test_too_few_rows_after_dropping_missing_values(tmp_path):
    project = _project(tmp_path)
    train, _ = _frames(project)
    train.loc[train["target"] == "malignant", "mean_area"] = None
    train.to_csv(project / "train.csv", index=False)
    _expect_refusal(project, "single class", "after dropping")


def test_missing_values_are_dropped_and_reported(tmp_path):
    project = _project(tmp_path)
    train, _ = _frames(project)
    train.loc[:9, "mean_area"] = None
    train.to_csv(project / "train.csv", index=False)
    result = run_engine(project)
    assert result.exit_code == 0
    warnings = [e.data["message"] for e in result.of_type(ev.LOG) if e.data["level"] == "warning"]
    assert any("Dropped rows with missing values: 10 of the train CSV" in w for w in warnings)
    import json

    assert json.loads((project / "metadata.json").read_text())["data"]["dropped_rows"]["train"] == 10


# -- issue 10: data that used to be accepted silently -------------------------------------------


def _write_with_header(path, frame, header):
    """Write `frame` under a header of our choosing (pandas would not write duplicate names for us)."""
    body = frame.to_csv(index=False, header=False)
    path.write_text(",".join(header) + "\n" + body)


def test_a_target_column_repeated_is_refused_before_it_leaks_the_label(tmp_path):
    """A second `target` was read as `target.1` and trained on: every metric 1.000. It must be refused."""
    project = _project(tmp_path)
    train, _ = _frames(project)
    train["copy"] = train["target"]
    _write_with_header(project / "train.csv", train, [*train.columns[:-1], "target"])
    message = _expect_refusal(project, "train CSV", "'target' 2 times", "'target.1'", "leaks")
    assert "distinct name" in message

