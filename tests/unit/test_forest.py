"""engine/forest.py grows the trees RandomForestClassifier.fit grows, node for node.

What must survive: for the forest settings the search uses (bootstrap or not, depth caps,
min_samples_leaf/split, max_features sqrt/log2/None/int, gini and entropy), on binary and
multi-class data with duplicate rows and string labels, every tree has the same features,
thresholds, children and values as the forest's own, and predicts the same probabilities; a
setting it cannot reproduce is refused (so the search falls back to the forest's fit).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine, make_classification
from sklearn.ensemble import RandomForestClassifier

from milo_tui.engine.forest import grow, supported


def _data(name: str):
    if name == "breast_cancer":
        X, y = load_breast_cancer(return_X_y=True)
        return X[::3], y[::3]
    if name == "wine":
        X, y = load_wine(return_X_y=True)
        return X, np.array(["barolo", "grignolino", "barbera"])[y]
    X, y = make_classification(n_samples=90, n_features=7, n_informative=4, n_classes=4, random_state=3)
    return np.vstack([X, X[:15]]), np.concatenate([y, y[:15]])


SETTINGS = [
    dict(n_estimators=12, random_state=5),
    dict(n_estimators=9, random_state=11, max_depth=3, min_samples_leaf=4, min_samples_split=9),
    dict(n_estimators=7, random_state=0, bootstrap=False, max_features="log2", criterion="entropy"),
    dict(n_estimators=6, random_state=2, max_features=None, min_samples_leaf=2),
    dict(n_estimators=6, random_state=2, max_features=3, criterion="log_loss", min_weight_fraction_leaf=0.05),
]


@pytest.mark.parametrize("data", ["breast_cancer", "wine", "duplicates"])
@pytest.mark.parametrize("settings", SETTINGS)
def test_grown_trees_equal_the_forests_trees_node_for_node(data, settings):
    X, y = _data(data)
    forest = RandomForestClassifier(**settings).fit(X, y)
    params = forest.get_params(deep=False)
    assert supported(params, X)
    grown = grow(params, X, y)
    assert list(grown.classes) == list(forest.classes_)
    assert len(grown.trees) == len(forest.estimators_)
    for ours, theirs in zip(grown.trees, (e.tree_ for e in forest.estimators_)):
        for attribute in ("children_left", "children_right", "feature", "threshold", "value", "n_node_samples"):
            np.testing.assert_array_equal(getattr(ours, attribute), getattr(theirs, attribute), err_msg=attribute)
    expected = np.stack([e.predict_proba(X.astype(np.float32)) for e in forest.estimators_])
    np.testing.assert_array_equal(grown.probabilities(X), expected)


@pytest.mark.parametrize("change", [dict(class_weight="balanced"), dict(max_leaf_nodes=8), dict(max_samples=0.5),
                                    dict(ccp_alpha=0.01), dict(min_samples_leaf=0.1), dict(max_features=0.5),
                                    dict(random_state=None)])
def test_settings_it_cannot_reproduce_are_refused(change):
    X, y = _data("wine")
    assert not supported(RandomForestClassifier(**{"random_state": 1, **change}).get_params(deep=False), X)


def test_missing_values_are_refused():
    X, _ = _data("wine")
    X = X.copy()
    X[3, 2] = np.nan
    assert not supported(RandomForestClassifier(random_state=1).get_params(deep=False), X)


def test_a_scikit_learn_whose_internals_moved_gets_the_forests_own_fit(monkeypatch):
    """grow() uses private scikit-learn internals; where they differ, supported() says no."""
    from milo_tui.engine import forest

    X, _ = _data("wine")
    params = RandomForestClassifier(random_state=1).get_params(deep=False)
    assert forest.grows_what_sklearn_grows() and supported(params, X)

    def moved(*args, **kwargs):
        raise TypeError("__init__() takes exactly 5 positional arguments (6 given)")

    for where, replacement in (("sklearn.tree._tree.DepthFirstTreeBuilder", moved),  # a signature moved
                               ("milo_tui.engine.forest.MAX_INT", 2 ** 20)):  # the seeds are drawn otherwise
        with monkeypatch.context() as patch:
            patch.setattr(where, replacement)
            forest.grows_what_sklearn_grows.cache_clear()
            try:
                assert not supported(params, X), where
            finally:
                forest.grows_what_sklearn_grows.cache_clear()
