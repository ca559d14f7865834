"""The run's fold cache (engine/foldcache.py) and the keys that make sharing exact (engine/treekeys.py).

What must survive:
- sharing across pipelines changes nothing: gradient boosting and random forest pipelines under
  none/std/minmax x none/select-50/rf-50 give the plain search's fold scores (1e-9) and chosen
  parameters, with the cache hit where the model sees the same data and not where it does not;
- a key that covered too little would share between different data: different data never hit;
- the splitter's tie tolerance (1e-7): ranks alone would share importances between data the
  forest treats differently, so such data get no key;
- a hostile cache directory (corrupt, truncated, pickled, linked entries; a linked or shared
  directory) is a miss, never an error, and no link is followed.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_selection import SelectFromModel

from milo_tui.engine.foldcache import FoldCache, content_key
from milo_tui.engine.grids import SearchSpace
from milo_tui.engine.search import plain_search, run_search, same_chosen
from milo_tui.engine.space import PipelineSpec
from milo_tui.engine.treekeys import forest_codes, select_by_importance

SCORERS = ["accuracy", "roc_auc"]
FOLDS = 3
GRIDS = {"gb": {"learning_rate": [0.1], "max_iter": [4, 8], "max_depth": [2, 3]},
         "rf": {"n_estimators": [4, 8], "max_depth": [None], "min_samples_leaf": [1, 3]}}


def _tiny():
    """Features of order 1e-6 whose neighbouring values lie closer than the splitter's 1e-7
    tolerance, unscaled (a scaler stretches them apart)."""
    draws = np.random.RandomState(3)
    X = draws.normal(size=(90, 5))
    y = (X[:, 0] + X[:, 1] + draws.normal(scale=0.8, size=90) > 0).astype(int)
    X[:, :3] *= 1e-6
    return X, y


def _data(name: str):
    if name == "breast_cancer":
        X, y = load_breast_cancer(return_X_y=True)
        return X[::6], y[::6]
    if name == "wine":
        return load_wine(return_X_y=True)
    return _tiny()


def _space():
    return SearchSpace("compact", random_iterations=4, searchers=("grid",), seed=7, overrides=GRIDS)


def _search(spec, X, y, cache):
    return run_search(spec, _space(), X, y, scorers=SCORERS, cv_folds=FOLDS, seed=7, cache=cache)


def _same_as_plain(result, spec, X, y):
    plain = plain_search(spec, _space(), X, y, scorers=SCORERS, cv_folds=FOLDS, seed=7)
    assert result.candidates == plain.candidates
    for scorer in SCORERS:
        np.testing.assert_allclose(result.scores[scorer], plain.scores[scorer], rtol=0, atol=1e-9, equal_nan=True)
    assert same_chosen(result, plain, SCORERS, top_k=2)


@pytest.mark.parametrize("data", ["breast_cancer", "wine", "tiny"])
def test_sharing_across_scalers_scores_like_the_plain_search_and_hits_where_the_data_agree(data, tmp_path):
    X, y = _data(data)
    cache = FoldCache(str(tmp_path / "cache"))
    hits = {}
    for scaler in ("none", "std", "minmax"):  # the engine's order: scaler outermost
        for algorithm in ("rf", "gb"):
            for selector in ("none", "select-50", "rf-50") if algorithm == "gb" else ("rf-50",):
                spec = PipelineSpec(scaler, selector, algorithm, "grid")
                result = _search(spec, X, y, cache)
                _same_as_plain(result, spec, X, y)
                hits[spec.name] = result.cache_hits
    # gradient boosting: the models of a fold are shared when its binned training rows agree (here
    # always), their answers when every validation row's bins were answered (neighbour rows included)
    # (a fold whose validation rows are not all among the stored ones, e.g. a row with more values on
    # bin thresholds than MOST_NEAR_CELLS flips, is computed again: one minmax fold of three on wine)
    for selector in ("none", "select-50"):
        assert hits[f"none__{selector}__gb__grid"] == 0
        for scaler in ("std", "minmax"):
            assert hits[f"{scaler}__{selector}__gb__grid"] == FOLDS or \
                (data != "tiny" and hits[f"{scaler}__{selector}__gb__grid"] == FOLDS - 1)
    importance_hits = {name: hits[name] for name in hits if "rf-50__rf" in name}
    if data == "tiny":
        # unscaled, the tiny columns have neighbours within 1e-7: no importance key, no sharing
        assert importance_hits == {"none__rf-50__rf__grid": 0, "std__rf-50__rf__grid": 0,
                                   "minmax__rf-50__rf__grid": FOLDS}  # std's forest: same ranks, far apart
    else:
        assert importance_hits == {"none__rf-50__rf__grid": 0, "std__rf-50__rf__grid": FOLDS,
                                   "minmax__rf-50__rf__grid": FOLDS}
    # rf's importance forests served gb's selector (and a fold where rf-50 kept select-50's columns
    # is the same data for gb: its scores are shared too)
    assert hits["none__rf-50__gb__grid"] >= FOLDS


def test_a_validation_value_on_a_bin_threshold_is_answered_both_ways(tmp_path):
    """Unscaled, a validation value sits exactly on the midpoint of two training values (a bin
    threshold: it bins low); scaled, rounding may put it either side. The first pipeline answers
    the row both ways, so the second finds its bins whichever way they fell, and scores the same."""
    draws = np.random.RandomState(0)
    X = np.round(draws.normal(size=(60, 3)) * 10) / 10  # one decimal: many midpoints are values
    y = (X[:, 0] + draws.normal(scale=0.5, size=60) > 0).astype(int)
    cache = FoldCache(str(tmp_path / "cache"))
    for scaler, hits in (("none", 0), ("std", FOLDS), ("minmax", FOLDS)):
        spec = PipelineSpec(scaler, "none", "gb", "grid")
        result = _search(spec, X, y, cache)
        _same_as_plain(result, spec, X, y)
        assert result.cache_hits == hits


def test_different_data_never_share(tmp_path):
    """Same shapes, same pipeline, other rows or other labels: a key missing the data would hit."""
    cache = FoldCache(str(tmp_path / "cache"))
    X, y = load_breast_cancer(return_X_y=True)
    first, second = (X[::5], y[::5]), (X[1::5], y[1::5])
    relabelled = (X[::5], np.roll(y[::5], 7))
    for name in ("none__rf-50__gb__grid", "std__none__gb__grid"):
        spec = PipelineSpec(*name.split("__"))
        assert _search(spec, *first, cache).cache_hits in (0, FOLDS)  # within one data set it may share
        for other in (second, relabelled):
            result = _search(spec, *other, cache)
            assert result.cache_hits == 0
            _same_as_plain(result, spec, *other)


def test_ties_under_the_splitter_tolerance_refuse_a_key_because_the_forest_sees_them():
    """Ranks equal, but one column's neighbours lie within 1e-7: the forest merges them as a tie
    unscaled and splits between them scaled, so its importances differ and no key may say 'same'."""
    X, y = _tiny()
    scaled = (X - X.mean(axis=0)) / X.std(axis=0)
    assert np.array_equal(np.argsort(X, axis=0, kind="stable"), np.argsort(scaled, axis=0, kind="stable"))
    assert forest_codes(X) is None and forest_codes(scaled) is not None
    forest = RandomForestClassifier(n_estimators=30, random_state=0)
    raw = forest.fit(X, y).feature_importances_
    assert not np.allclose(raw, forest.fit(scaled, y).feature_importances_)


def test_equal_codes_give_equal_importances_and_selector_masks():
    X, y = load_breast_cancer(return_X_y=True)
    X, y = X[::3], y[::3]
    stretched = np.exp(X / X.max(axis=0)) * 5 - 2  # monotone per column: same ranks
    assert np.array_equal(forest_codes(X), forest_codes(stretched))
    forest = RandomForestClassifier(n_estimators=20, random_state=4)
    a, b = forest.fit(X, y).feature_importances_, forest.fit(stretched, y).feature_importances_
    assert np.array_equal(a, b)
    for keep in (1, 5, 15):
        selector = SelectFromModel(RandomForestClassifier(n_estimators=20, random_state=4), max_features=keep,
                                   threshold=-np.inf).fit(X, y)
        assert np.array_equal(select_by_importance(a, keep), selector.get_support())


def test_selection_breaks_ties_like_select_from_model():
    tied = np.array([0.1, 0.3, 0.1, 0.3, 0.2])
    assert select_by_importance(tied, 1).tolist() == [False, True, False, False, False]
    assert select_by_importance(tied, 3).tolist() == [False, True, False, True, True]
    assert select_by_importance(tied, 4).tolist() == [True, True, False, True, True]


# -- a hostile cache directory -----------------------------------------------------------------------

def _stored(tmp_path):
    cache = FoldCache(str(tmp_path / "cache"))
    key = content_key("test", np.arange(3))
    cache.put(key, np.array([1.5, 2.5]))
    return cache, key, tmp_path / "cache" / f"{key}.npy"


def test_a_stored_array_comes_back_and_the_directory_is_private(tmp_path):
    cache, key, entry = _stored(tmp_path)
    assert cache.get(key, shape=(2,)).tolist() == [1.5, 2.5]
    assert cache.get(key, shape=(3,)) is None  # not what the caller asked for: a miss
    assert os.stat(tmp_path / "cache").st_mode & 0o777 == 0o700
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [entry.name]  # no temporary left behind


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "pickled", "empty"])
def test_damaged_entries_are_misses(tmp_path, damage):
    cache, key, entry = _stored(tmp_path)
    data = entry.read_bytes()
    if damage == "corrupt":
        entry.write_bytes(b"\x93NUMPY garbage" + os.urandom(64))
    elif damage == "truncated":
        entry.write_bytes(data[: len(data) - 5])
    elif damage == "pickled":
        np.save(entry, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    else:
        entry.write_bytes(b"")
    assert cache.get(key) is None
    cache.put(key, np.array([1.5, 2.5]))  # recomputed and stored again
    assert cache.get(key).tolist() == [1.5, 2.5]


def test_a_planted_link_is_neither_followed_nor_written_through(tmp_path):
    cache, key, entry = _stored(tmp_path)
    outside = tmp_path / "outside.npy"
    np.save(outside, np.array([9.0, 9.0]))
    before = outside.read_bytes()
    entry.unlink()
    entry.symlink_to(outside)
    assert cache.get(key) is None
    cache.put(key, np.array([1.5, 2.5]))
    assert outside.read_bytes() == before and not entry.is_symlink()
    assert cache.get(key).tolist() == [1.5, 2.5]


def test_a_linked_or_shared_directory_is_not_used(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / "linked").symlink_to(elsewhere)
    linked = FoldCache(str(tmp_path / "linked"))
    linked.put("k", np.array([1.0]))
    assert linked.get("k") is None and not list(elsewhere.iterdir())
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    open_cache = FoldCache(str(shared))
    open_cache.put("k", np.array([1.0]))
    assert open_cache.get("k") is None and not list(shared.iterdir())


def test_a_search_over_a_damaged_cache_recomputes_the_same_scores(tmp_path):
    X, y = _data("wine")
    cache = FoldCache(str(tmp_path / "cache"))
    spec = PipelineSpec("std", "none", "gb", "grid")
    first = _search(spec, X, y, cache)
    entries = sorted((tmp_path / "cache").iterdir())
    assert len(entries) == FOLDS
    entries[0].write_bytes(b"not an array")
    entries[1].unlink()
    entries[1].symlink_to(entries[2])
    again = _search(spec, X, y, cache)
    assert again.cache_hits == 1
    for scorer in SCORERS:
        assert np.array_equal(first.scores[scorer], again.scores[scorer])


def test_a_forests_validation_answers_are_not_a_function_of_per_column_codes():
    """Why rf fold scores are not shared: a node splits at the midpoint of the values it holds.
    Here the root splits off the rows with A = 1 on feature B, so the other node holds A = 0 and 10
    (midpoint 5) in one data set and 0 and 10.6 (midpoint 5.3) in the other. Training ranks and each
    validation value's count of column-wide midpoints below it are equal in both, yet A = 5.2 goes
    right in the first and left in the second."""
    from sklearn.tree import DecisionTreeClassifier

    A = np.array([0.0, 0.0, 0.0, 10.0, 10.0, 10.0, 1.0, 1.0, 1.0, 0.0])
    B = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])  # B = 1: exactly class 2
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    moved = np.where(A == 10.0, 10.6, A)
    valid = np.array([[5.2, 0.0]])
    answers, codes = [], []
    for column in (A, moved):
        X = np.column_stack([column, B])
        tree = DecisionTreeClassifier(random_state=0).fit(X, y)
        answers.append(tree.predict(valid)[0])
        distinct = np.unique(column)
        midpoints = distinct[:-1] / 2 + distinct[1:] / 2
        codes.append((forest_codes(X).tolist(), int(np.sum(midpoints < valid[0, 0]))))
    assert codes[0] == codes[1]
    assert answers[0] != answers[1]
