"""Saved models work in the user's terms, in plain scikit-learn (issue 9, DESIGN.md decision 7).

What must survive: every saved model (main and one-vs-rest), taken out of the project, predicts the
test CSV's own labels with their type from a DataFrame without a single warning, reproduces the accuracy
the report recorded, gives the same answers on shuffled columns (selected by its feature names) or a
clear error (never a silent wrong answer), and refuses a missing or extra column by name.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from milo_tui.engine.report import model_rows, read_report
from milo_tui.results.model import ProjectData, describe_model, open_project_model
from milo_tui.storage.store import ModelStore

from engine_helpers import copy_sample, run_engine

QUICK = {"algorithms": ["lr", "knn"], "scalers": ["std"], "selectors": ["none"],
         "searchers": ["grid"], "scorers": ["accuracy"], "cv_folds": 3, "top_k": 1}


def _run(project: Path) -> Path:
    result = run_engine(project)
    assert result.exit_code == 0, result.finished
    return project


@pytest.fixture(scope="module")
def binary_strings(tmp_path_factory):
    return _run(copy_sample("breast_cancer", tmp_path_factory.mktemp("bc"), search=QUICK))


@pytest.fixture(scope="module")
def multiclass_strings(tmp_path_factory):
    return _run(copy_sample("wine", tmp_path_factory.mktemp("wine"), search=QUICK))


@pytest.fixture(scope="module")
def multiclass_integers(tmp_path_factory):
    """Wine with classes 1, 2, 3 as integers: integers must stay integers, the rest marker is -1."""
    project = copy_sample("wine", tmp_path_factory.mktemp("wine-int"), search=QUICK)
    codes = {"cultivar_a": 1, "cultivar_b": 2, "cultivar_c": 3}
    for name in ("train.csv", "test.csv"):
        frame = pd.read_csv(project / name)
        frame["target"] = frame["target"].map(codes)
        frame.to_csv(project / name, index=False)
    return _run(project)


PROJECTS = ["binary_strings", "multiclass_strings", "multiclass_integers"]


def _expected(row: dict, y: np.ndarray, rest) -> np.ndarray:
    if row["class_type"] != "ovr":
        return y
    positive = y.dtype.type(row["class_label"]) if y.dtype.kind in "iu" else row["class_label"]
    return np.where(y == positive, y, rest)


@pytest.mark.parametrize("fixture", PROJECTS)
def test_every_saved_model_predicts_the_csv_labels_and_reproduces_its_accuracy(fixture, request, tmp_path):
    project = request.getfixturevalue(fixture)
    test = pd.read_csv(project / "test.csv")
    X, y = test.drop(columns="target"), test["target"].to_numpy()
    rest = json.loads((project / "metadata.json").read_text())["data"]["rest_label"]
    rows = model_rows(read_report(project / "report.csv"))
    assert {r["phase"] for r in rows} == ({"main"} if fixture == "binary_strings" else {"main", "ovr"})
    store = ModelStore(project)
    for row in rows:
        path = store.export(row["key"], tmp_path / f"{row['key']}.joblib")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "X has feature names, but ..." would fail here
            model = joblib.load(path)  # plain scikit-learn: nothing of milo needed to use it
            predicted = model.predict(X)
            proba = model.predict_proba(X)
        expected = _expected(row, y, rest)
        assert type(model).__name__ == "Pipeline"
        assert list(model.feature_names_in_) == [c for c in pd.read_csv(project / "train.csv").columns if c != "target"]
        assert set(np.asarray(model.classes_).tolist()) == set(np.unique(expected).tolist()) | (
            {rest} if row["class_type"] == "ovr" else set())
        assert proba.shape == (len(X), len(model.classes_))
        assert type(predicted[0]) is type(y[0]) or (y.dtype.kind in "iu" and predicted.dtype.kind in "iu")
        assert np.mean(predicted == expected) == pytest.approx(row["accuracy"], abs=1e-6), row["key"]


@pytest.mark.parametrize("fixture", PROJECTS)
def test_shuffled_columns_give_the_same_answers_or_a_clear_error(fixture, request):
    project = request.getfixturevalue(fixture)
    X = pd.read_csv(project / "test.csv").drop(columns="target")
    shuffled = X[list(np.random.default_rng(0).permutation(X.columns))]
    key = model_rows(read_report(project / "report.csv"))[0]["key"]
    model = ModelStore(project).open_model(key)
    with pytest.raises(ValueError, match="same order"):
        model.predict(shuffled)  # scikit-learn refuses rather than misreads
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (model.predict(shuffled[model.feature_names_in_]) == model.predict(X)).all()
        opened = open_project_model(project, key)
        labels, proba = opened.predict(shuffled)  # milo puts the columns in order itself
    assert (labels == model.predict(X)).all()
    assert np.allclose(proba, model.predict_proba(X))


def test_missing_and_extra_columns_are_refused_by_name(binary_strings):
    X = pd.read_csv(binary_strings / "test.csv").drop(columns="target")
    key = model_rows(read_report(binary_strings / "report.csv"))[0]["key"]
    model = ModelStore(binary_strings).open_model(key)
    with pytest.raises(ValueError, match="mean_radius"):
        model.predict(X.drop(columns="mean_radius"))
    with pytest.raises(ValueError, match="blood_pressure"):
        model.predict(X.assign(blood_pressure=1.0))


def test_one_vs_rest_models_use_the_recorded_rest_marker_everywhere(multiclass_strings, multiclass_integers):
    for project, rest in ((multiclass_strings, "rest"), (multiclass_integers, -1)):
        meta = json.loads((project / "metadata.json").read_text())["data"]
        assert meta["rest_label"] == rest and meta["model_format"] == 2
        ovr = [r for r in model_rows(read_report(project / "report.csv")) if r["class_type"] == "ovr"]
        for row in ovr[:3]:
            label = meta["class_values"][row["class_index"]]
            assert str(label) == row["class_label"]
            model = ModelStore(project).open_model(row["key"])
            assert sorted(np.asarray(model.classes_).tolist()) == sorted([label, rest])
            doc = json.loads((project / "class_results" / f"{row['key']}.json").read_text())
            assert doc["class_labels"] == [str(rest), str(label)] and doc["rest_label"] == rest


def test_an_older_projects_encoded_model_is_decoded_through_the_label_mapping(binary_strings):
    """Models of an older milo predict codes and know no feature names; milo still reads them, and says so."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    data = ProjectData.read(binary_strings)
    train = pd.read_csv(binary_strings / "train.csv")
    codes = train["target"].map(data.label_mapping).to_numpy()
    old = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression(max_iter=2000))])
    old.fit(train[data.feature_names].to_numpy(), codes)  # the old way: arrays and codes
    opened = describe_model("std__none__lr__grid__accuracy__0", old, data)
    assert opened.encoded and any("older milo" in note and "label mapping" in note for note in opened.notes)
    test = pd.read_csv(binary_strings / "test.csv")
    features = test.drop(columns="target")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        labels, proba = opened.predict(features[features.columns[::-1]])
    assert set(labels) <= {"benign", "malignant"} and opened.classes == ["benign", "malignant"]
    assert (labels == data.labels.decode(old.predict(features[data.feature_names].to_numpy()))).all()
