"""Grow a RandomForestClassifier's trees, tree for tree the ones its fit() grows, without its
per-tree Python overhead.

Why: on MILO-ML's data sizes (a few hundred rows) building one tree takes a fraction of a
millisecond, while RandomForestClassifier.fit spends several times that per tree on Python
bookkeeping (cloning the template tree through get_params, re-checking the targets and the
sample weights, re-encoding the classes). The search grows thousands of trees per fold, so that
overhead was most of the forest search's time (profiled in docs/PERFORMANCE.md, "Search").

What fit() does per tree, and what this module does the same way (scikit-learn 1.9,
ensemble/_forest.py and tree/_classes.py):
- tree i's seed is the i-th `randint(MAX_INT)` draw of RandomState(random_state);
- with bootstrap, its rows are `RandomState(seed).randint(0, n, n)`, passed as counts in the
  sample weights; the splitter draws its features from a fresh RandomState(seed) (here: one
  RandomState re-seeded, which draws the same numbers far cheaper);
- the tree is built by DepthFirstTreeBuilder with a BestSplitter and the criterion, on the
  float32 X and the class codes as float64.
Only that common case is grown here (`supported`); anything else (class weights, leaf caps,
missing values, pruning, fractional minimums...) goes to the forest's own fit. The tests in
tests/unit/test_forest.py compare every node of every tree with RandomForestClassifier's.

Those are private scikit-learn internals, written against 1.9 while milo accepts 1.4 and up.
So before the first use in a process, `supported` grows a small forest both ways and compares
them node for node (a few milliseconds): on a scikit-learn whose internals moved, the search
silently takes the forest's own fit and stays exact, only slower.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from functools import cache

import numpy as np

MAX_INT = np.iinfo(np.int32).max  # ensemble/_forest.py MAX_INT: the range of the trees' seeds


def supported(params: dict, X: np.ndarray) -> bool:
    """Can `grow` reproduce RandomForestClassifier(**params).fit(X, y) tree for tree?"""
    from sklearn.tree._classes import CRITERIA_CLF

    integers = all(isinstance(params[k], numbers.Integral) for k in ("min_samples_leaf", "min_samples_split"))
    return (isinstance(params["random_state"], numbers.Integral) and integers
            and isinstance(params["criterion"], str) and params["criterion"] in CRITERIA_CLF
            and params["class_weight"] is None and params["max_leaf_nodes"] is None
            and params["max_samples"] is None and params["monotonic_cst"] is None
            and params["ccp_alpha"] == 0.0 and not params["oob_score"] and not params["warm_start"]
            and isinstance(params["max_features"], (str, numbers.Integral, type(None)))
            and isinstance(X, np.ndarray) and X.ndim == 2 and bool(np.isfinite(X).all())
            and grows_what_sklearn_grows())


@cache
def grows_what_sklearn_grows() -> bool:
    """Does `grow` reproduce this scikit-learn's RandomForestClassifier, node for node?"""
    from sklearn.ensemble import RandomForestClassifier

    draws = np.random.RandomState(7)
    X = draws.normal(size=(60, 6))
    y = (X[:, 0] + draws.normal(scale=0.5, size=60) > 0).astype(int) + (X[:, 1] > 1)
    forest = RandomForestClassifier(n_estimators=4, random_state=3, min_samples_leaf=2).fit(X, y)
    try:
        grown = grow(forest.get_params(deep=False), X, y)
    except Exception:  # a private signature changed: any failure means "do not use it"
        return False
    return len(grown.trees) == len(forest.estimators_) and all(
        np.array_equal(getattr(ours, field), getattr(theirs.tree_, field))
        for ours, theirs in zip(grown.trees, forest.estimators_)
        for field in ("children_left", "children_right", "feature", "threshold", "value"))


@dataclass
class Trees:
    """The trees of one forest (sklearn.tree._tree.Tree objects, in fit order) and its classes."""

    trees: list
    classes: np.ndarray

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        """(trees, rows, classes): what each tree's predict_proba returns for X."""
        X32 = np.asarray(X, dtype=np.float32)
        return np.stack([tree.predict(X32) for tree in self.trees])

    def depths(self) -> np.ndarray:
        return np.array([tree.max_depth for tree in self.trees])


def _max_features(setting, n_features: int) -> int:
    """DecisionTreeClassifier._fit's max_features_ for the settings `supported` allows."""
    if setting == "sqrt":
        return max(1, int(np.sqrt(n_features)))
    if setting == "log2":
        return max(1, int(np.log2(n_features)))
    if setting is None:
        return n_features
    return int(setting)


def grow(params: dict, X: np.ndarray, y: np.ndarray) -> Trees:
    """The trees RandomForestClassifier(**params).fit(X, y) grows (`supported(params, X)` must hold)."""
    from sklearn.tree._classes import CRITERIA_CLF, DENSE_SPLITTERS
    from sklearn.tree._tree import DepthFirstTreeBuilder, Tree

    X32 = np.asarray(X, dtype=np.float32)
    classes, codes = np.unique(y, return_inverse=True)
    targets = np.ascontiguousarray(codes.reshape(-1, 1), dtype=np.float64)
    n_rows, n_features = X32.shape
    n_classes = np.array([len(classes)], dtype=np.intp)
    leaf = params["min_samples_leaf"]
    split = max(params["min_samples_split"], 2 * leaf)
    depth = MAX_INT if params["max_depth"] is None else params["max_depth"]
    features = _max_features(params["max_features"], n_features)
    draws = np.random.RandomState(params["random_state"])
    seeds = [draws.randint(MAX_INT) for _ in range(params["n_estimators"])]
    trees = []
    # fit() makes two fresh RandomState(seed) per tree (bootstrap rows, splitter); re-seeding one
    # gives the same draws without the ~0.2 ms each construction costs
    tree_draws = np.random.RandomState(0)
    for seed in seeds:
        if params["bootstrap"]:
            tree_draws.seed(seed)
            rows = tree_draws.randint(0, n_rows, n_rows).astype(np.int32)
            weights = np.bincount(rows, minlength=n_rows).astype(np.float64)
            min_weight_leaf = params["min_weight_fraction_leaf"] * np.sum(weights)
        else:
            weights, min_weight_leaf = None, params["min_weight_fraction_leaf"] * n_rows
        criterion = CRITERIA_CLF[params["criterion"]](1, n_classes)
        splitter = DENSE_SPLITTERS["best"](criterion, features, leaf, min_weight_leaf, tree_draws, None)
        tree = Tree(n_features, n_classes, 1)
        tree_draws.seed(seed)  # the splitter draws its own seed from it when the build starts
        DepthFirstTreeBuilder(splitter, split, leaf, min_weight_leaf, depth,
                              params["min_impurity_decrease"]).build(tree, X32, targets, weights, None)
        trees.append(tree)
    return Trees(trees, classes)
