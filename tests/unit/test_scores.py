"""engine/scores.py against scikit-learn's accuracy_score, f1_score(average="macro") and
roc_auc_score(multi_class="ovr").

What must survive: for any integer labels (binary and multi-class, classes missing from either side,
a single class, one row) both give exactly scikit-learn's value, not merely a close one: the search
ranks candidates by their mean scores and a last-bit difference would break a tie the other way.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from milo_tui.engine.scores import accuracy, f1_macro, roc_auc

labels = st.integers(min_value=1, max_value=60).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 4), min_size=n, max_size=n), st.lists(st.integers(0, 4), min_size=n, max_size=n)))


@settings(max_examples=300, deadline=None)
@given(labels)
def test_accuracy_and_macro_f1_equal_scikit_learns(pair):
    y_true, y_pred = (np.asarray(v, dtype=np.int64) for v in pair)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert accuracy(y_true, y_pred) == accuracy_score(y_true, y_pred)
        assert f1_macro(y_true, y_pred) == f1_score(y_true, y_pred, average="macro")


def test_other_labels_go_to_scikit_learn():
    assert accuracy(np.array(["a", "b"]), np.array(["a", "a"])) == 0.5
    assert f1_macro(np.array(["a", "b"]), np.array(["a", "b"])) == 1.0


# -- ROC AUC ----------------------------------------------------------------------------------------
#
# What must survive: roc_auc gives roc_auc_score(multi_class="ovr")'s value bit for bit on every fold
# the search can produce (binary scores, probabilities or decision values in float32 or float64, many
# ties, tiny folds, multi-class probabilities), and keeps its behaviour where scikit-learn returns
# NaN (one class in the fold) or raises (NaN scores, a class missing from a multi-class fold).

def _quietly(auc, y_true, y_score, **kwargs):
    with warnings.catch_warnings():  # one-class folds: scikit-learn warns and returns NaN
        warnings.simplefilter("ignore")
        return auc(y_true, y_score, **kwargs)


def _sklearn_auc(y_true, y_score):
    return _quietly(roc_auc_score, y_true, y_score, multi_class="ovr")


def _same(ours: float, theirs: float) -> bool:
    return ours == theirs or (np.isnan(ours) and np.isnan(theirs))


score_kinds = st.sampled_from(["few distinct", "probabilities", "decision values"])


@st.composite
def binary_folds(draw):
    rows = draw(st.integers(min_value=1, max_value=60))
    labels = draw(st.sampled_from([(0, 1), (1, 0), (3, 7)]))  # which label is positive must not matter
    y = np.asarray(draw(st.lists(st.sampled_from(labels), min_size=rows, max_size=rows)), dtype=np.int64)
    kind, width = draw(score_kinds), draw(st.sampled_from([32, 64]))
    if kind == "few distinct":
        values = st.sampled_from([-1.5, 0.0, 0.25, 0.5, 2.0])
    elif kind == "probabilities":
        values = st.floats(0, 1, width=width)
    else:
        values = st.floats(-1e6, 1e6, allow_nan=False, width=width)
    scores = draw(st.lists(values, min_size=rows, max_size=rows))
    return y, np.asarray(scores, dtype=np.float32 if width == 32 else np.float64)


@settings(max_examples=400, deadline=None)
@given(binary_folds())
def test_binary_roc_auc_equals_scikit_learns(fold):
    y, scores = fold
    assert _same(_quietly(roc_auc, y, scores), _sklearn_auc(y, scores))


@st.composite
def multiclass_folds(draw):
    classes = draw(st.integers(min_value=3, max_value=5))
    rows = draw(st.integers(min_value=classes, max_value=50))
    y = np.asarray(draw(st.lists(st.integers(0, classes - 1), min_size=rows, max_size=rows)), dtype=np.int64)
    y[:classes] = np.arange(classes)  # every class in the fold, as a stratified fold has them
    # positive weights normalised per row; few distinct weights make tied probabilities
    weights = st.sampled_from([1.0, 2.0, 5.0]) if draw(st.booleans()) else st.floats(0.01, 100)
    proba = np.asarray(draw(st.lists(st.lists(weights, min_size=classes, max_size=classes),
                                     min_size=rows, max_size=rows)))
    proba = proba / proba.sum(axis=1, keepdims=True)
    return y, proba.astype(draw(st.sampled_from([np.float32, np.float64])))


@settings(max_examples=200, deadline=None)
@given(multiclass_folds())
def test_one_vs_rest_macro_roc_auc_equals_scikit_learns(fold):
    y, proba = fold
    assert roc_auc(y, proba) == _sklearn_auc(y, proba)


def test_the_first_use_self_check_passes_on_this_scikit_learn():
    """Without it every call would quietly go to roc_auc_score: exact, but as slow as before."""
    from milo_tui.engine.scores import _agrees_with_sklearn

    assert _agrees_with_sklearn()


def test_roc_auc_keeps_scikit_learns_nan_and_errors():
    one_class = np.zeros(5, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(roc_auc(one_class, np.arange(5.0)))  # the fold scores NaN, as the plain search's
    with pytest.raises(ValueError):
        roc_auc(np.array([0, 1, 0]), np.array([0.1, np.nan, 0.3]))
    with pytest.raises(ValueError):  # a class missing from a three-class fold
        roc_auc(np.array([0, 1, 0, 1]), np.full((4, 3), 1 / 3))
    with pytest.raises(ValueError):  # multi-class scores that are not probabilities
        roc_auc(np.array([0, 1, 2]), np.eye(3) * 2)


def test_roc_auc_of_other_labels_goes_to_scikit_learn():
    assert roc_auc(np.array(["no", "yes", "yes"]), np.array([0.2, 0.9, 0.4])) == 1.0


@pytest.mark.parametrize("algorithm,data", [("lr", "breast_cancer"), ("knn", "breast_cancer"), ("knn", "wine")])
def test_the_search_scores_real_models_exactly_as_with_roc_auc_score(monkeypatch, algorithm, data):
    """On real decision values and probabilities (k-NN: few distinct values, many ties), every fold
    score of a search is the one scikit-learn's roc_auc_score gives, bit for bit."""
    from sklearn.datasets import load_breast_cancer, load_wine

    from milo_tui.engine import search
    from milo_tui.engine.grids import SearchSpace
    from milo_tui.engine.space import PipelineSpec

    X, y = (load_breast_cancer if data == "breast_cancer" else load_wine)(return_X_y=True)
    X, y = X[::2], y[::2]
    spec = PipelineSpec("std", "none", algorithm, "grid")
    space = SearchSpace("milo-ml", random_iterations=6, searchers=("grid",), seed=7, overrides={})

    def run():
        return search.run_search(spec, space, X, y, scorers=["roc_auc"], cv_folds=3, seed=7).scores["roc_auc"]

    ours = run()
    assert np.isfinite(ours).all()
    monkeypatch.setattr(search, "roc_auc", lambda y_true, y_score: roc_auc_score(y_true, y_score, multi_class="ovr"))
    assert np.array_equal(ours, run())
