"""The shared-work search against plain scikit-learn GridSearchCV / RandomizedSearchCV.

What must survive: for every shortcut (preprocessing once per fold, nested forests, forest
depth caps that do not bind, irrelevant min_samples_split, boosting stages, one k-NN query for
every k and both weightings) each candidate's score on each fold equals the plain search's
(1e-9), the ranking and the chosen parameter sets are the same, on binary and multi-class data,
and the search really fits fewer models than the plain one.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine, make_classification

from milo_tui.engine.grids import SearchSpace
from milo_tui.engine.search import candidate_sets, fold_work, plain_search, run_search, same_chosen
from milo_tui.engine.space import PipelineSpec
from milo_tui.engine.worker import same_params_together

SCORERS = ["accuracy", "roc_auc", "f1_macro"]


def _data(name: str):
    if name == "breast_cancer":
        X, y = load_breast_cancer(return_X_y=True)
        return X[::4], y[::4]  # 143 rows, 30 features
    if name == "wine":
        return load_wine(return_X_y=True)  # 178 rows, 13 features, 3 classes
    # four classes, with exact duplicate rows: distance ties and zero distances for k-NN
    X, y = make_classification(n_samples=120, n_features=6, n_informative=4, n_classes=4, random_state=1)
    return np.vstack([X, X[:20]]), np.concatenate([y, y[:20]])


def _space(preset="compact", **overrides):
    return SearchSpace(preset, random_iterations=6, searchers=("grid", "random", "random2"), seed=7,
                       overrides=overrides)


def _compare(spec: PipelineSpec, space: SearchSpace, data: str, folds: int = 3):
    X, y = _data(data)
    fast = run_search(spec, space, X, y, scorers=SCORERS, cv_folds=folds, seed=7)
    plain = plain_search(spec, space, X, y, scorers=SCORERS, cv_folds=folds, seed=7)
    assert fast.candidates == plain.candidates
    for scorer in SCORERS:
        np.testing.assert_allclose(fast.scores[scorer], plain.scores[scorer], rtol=0, atol=1e-9, equal_nan=True)
        assert np.array_equal(fast.ranks[scorer], plain.ranks[scorer]), scorer
    assert same_chosen(fast, plain, SCORERS, top_k=2)
    return fast, plain


FOREST = {"rf": {"n_estimators": [3, 10, 25], "max_depth": [None, 2, 40], "min_samples_leaf": [1, 3],
                 "min_samples_split": [2, 7]}}


@pytest.mark.parametrize("data", ["breast_cancer", "wine", "duplicates"])
def test_forests_nested_depth_and_split_shortcuts_score_like_plain(data):
    fast, plain = _compare(PipelineSpec("std", "select-50", "rf", "grid"), _space(**FOREST), data)
    assert fast.fits <= plain.fits / 4


@pytest.mark.parametrize("data", ["breast_cancer", "wine", "duplicates"])
def test_boosting_stages_score_like_plain(data):
    space = _space(gb={"max_iter": [4, 12], "learning_rate": [0.1, 0.3], "max_depth": [2, None]})
    fast, plain = _compare(PipelineSpec("none", "none", "gb", "grid"), space, data)
    assert fast.fits == plain.fits / 2


@pytest.mark.parametrize("data", ["breast_cancer", "wine", "duplicates"])
def test_one_neighbour_query_scores_every_k_like_plain(data):
    space = _space(knn={"n_neighbors": [1, 2, 5, 9, 15], "weights": ["uniform", "distance"]})
    fast, plain = _compare(PipelineSpec("minmax", "none", "knn", "grid"), space, data)
    assert fast.fits == 3  # one per fold


@pytest.mark.parametrize("data", ["breast_cancer", "wine"])
def test_converged_lbfgs_fit_serves_every_larger_max_iter_like_plain(data):
    space = _space(lr={"C": [0.1, 10.0], "max_iter": [3, 40, 100, 500], "solver": ["lbfgs"]})
    fast, plain = _compare(PipelineSpec("std", "none", "lr", "grid"), space, data)
    assert fast.fits < plain.fits  # max_iter 3 cannot converge: those are real fits


@pytest.mark.parametrize("spec, data", [
    (PipelineSpec("std", "pca-80", "lr", "grid"), "wine"),
    (PipelineSpec("std", "rf-25", "lr", "random"), "breast_cancer"),
    (PipelineSpec("minmax", "select-25", "nb", "random2"), "wine"),
    (PipelineSpec("std", "none", "svm", "grid"), "breast_cancer"),
])
def test_shared_preprocessing_scores_like_plain(spec, data):
    _compare(spec, _space(), data)


def test_random_searches_draw_the_same_sets_as_sklearn():
    fast, _ = _compare(PipelineSpec("none", "none", "rf", "random"), _space(), "breast_cancer")
    assert len(fast.candidates) == 6
    _compare(PipelineSpec("std", "none", "knn", "random2"), _space("milo-ml"), "wine")


def test_milo_ml_forest_grid_scores_like_plain():
    """MILO-ML's own 45-candidate forest grid (trees cut to keep the test quick)."""
    space = SearchSpace("milo-ml", 100, ("grid",), seed=7, overrides={"rf": {"n_estimators": [2, 5, 10]}})
    fast, plain = _compare(PipelineSpec("none", "none", "rf", "grid"), space, "breast_cancer")
    assert len(fast.candidates) == 27 and fast.fits <= plain.fits / 9


def test_refits_with_the_same_parameters_are_adjacent_so_one_fit_serves_them():
    chosen = {"a__accuracy__0": {"clf__C": 1}, "a__accuracy__1": {"clf__C": 2},
              "a__roc_auc__0": {"clf__C": 2}, "a__roc_auc__1": {"clf__C": 1}}
    assert [key for key, _ in same_params_together(chosen)] == [
        "a__accuracy__0", "a__roc_auc__1", "a__accuracy__1", "a__roc_auc__0"]


def test_mlp_candidates_differing_only_in_sgd_settings_share_a_fit_like_plain():
    """learning_rate only steers solver="sgd": adam's candidates pair up, sgd's stay apart."""
    space = _space(mlp={"learning_rate": ["constant", "adaptive"], "alpha": [0.01, 1.0], "solver": ["adam", "sgd"],
                        "hidden_layer_sizes": [(5,)], "max_iter": [15]})
    fast, plain = _compare(PipelineSpec("std", "none", "mlp", "grid"), space, "wine")
    assert fast.fits == plain.fits * 6 // 8  # 8 candidates: 2 adam fits + 4 sgd fits per fold


STOPPING_GRID = {"tol": [1e-4, 3e-3, 0.03], "n_iter_no_change": [2, 6], "max_iter": [8, 40],
                 "alpha": [0.01, 1.0], "hidden_layer_sizes": [(4,)], "learning_rate_init": [0.01]}


@pytest.mark.parametrize("solver, data", [("adam", "breast_cancer"), ("adam", "wine"), ("adam", "duplicates"),
                                          ("sgd", "wine")])
def test_mlp_candidates_differing_only_in_when_they_stop_share_one_run_like_plain(data, solver):
    """tol, n_iter_no_change and max_iter only pick the epoch an adam (or non-adaptive sgd) run stops
    at: one run, each member's weights copied at its own stopping epoch, scores as its own fit's."""
    space = _space(mlp={**STOPPING_GRID, "solver": [solver]})
    fast, plain = _compare(PipelineSpec("std", "none", "mlp", "grid"), space, data)
    assert fast.fits == plain.fits * 2 // 24  # 24 candidates: one run per alpha and fold


def test_mlp_stopping_shortcut_copies_each_members_own_weights():
    """The members stop at different epochs here (so a shortcut that kept the run's last weights, or
    followed one tol for all, would score differently), and each copy is that member's own fit, bit for bit."""
    from sklearn.base import clone

    from milo_tui.engine.search import _snapshotting_perceptron, _Stopping
    from milo_tui.engine.space import make_classifier

    X, y = _data("wine")
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    base = make_classifier("mlp", seed=7).set_params(hidden_layer_sizes=(4,), learning_rate_init=0.01)
    members = [dict(tol=t, n_iter_no_change=n, max_iter=m) for t in (1e-4, 3e-3, 0.03) for n in (2, 6) for m in (8, 40)]
    rules = [_Stopping(**m) for m in members]
    _snapshotting_perceptron(base, dict(tol=1e-4, n_iter_no_change=6, max_iter=40), rules).fit(X, y)
    epochs = set()
    for member, rule in zip(members, rules):
        own = clone(base).set_params(**member).fit(X, y)
        epochs.add(own.n_iter_)
        for copied, fitted in zip(rule.weights[0] + rule.weights[1], own.coefs_ + own.intercepts_):
            assert np.array_equal(copied, fitted), member
    assert len(epochs) >= 4  # the members really stop at different epochs


def test_adaptive_sgd_mlp_candidates_are_not_shared_by_tol():
    """sgd's adaptive rate reads tol's verdict to divide its learning rate: not a stopping-only setting."""
    space = _space(mlp={**STOPPING_GRID, "solver": ["sgd"], "learning_rate": ["adaptive"]})
    fold = fold_work("mlp", candidate_sets(space, "mlp", "grid", None))
    assert fold.fits == fold.candidates == 24
    _compare(PipelineSpec("std", "none", "mlp", "grid"), _space(mlp={**STOPPING_GRID, "max_iter": [8],
             "solver": ["sgd"], "learning_rate": ["adaptive"], "tol": [1e-4, 0.03]}), "wine")


@pytest.mark.parametrize("algorithm, candidates, fits", [
    ("rf", 45, 3), ("gb", 30, 15), ("knn", 56, 1), ("lr", 27, 9), ("mlp", 72, 12), ("svm", 40, 40), ("nb", 1, 1)])
def test_planned_fits_of_milo_ml_grids(algorithm, candidates, fits):
    """What `milo estimate` and the metadata report per fold, from the search's own planner."""
    space = SearchSpace("milo-ml", 100, ("grid",), seed=7)
    work = fold_work(algorithm, candidate_sets(space, algorithm, "grid", 50), n_train=300)
    assert (work.candidates, work.fits) == (candidates, fits)
    assert 0 < work.share <= 1


def test_search_fits_what_the_planner_plans_when_every_shortcut_applies():
    space = SearchSpace("milo-ml", 100, ("grid",), seed=7, overrides={"rf": {"n_estimators": [2, 5, 10]}})
    X, y = _data("breast_cancer")
    result = run_search(PipelineSpec("none", "none", "rf", "grid"), space, X, y, scorers=SCORERS, cv_folds=3, seed=7)
    planned = fold_work("rf", candidate_sets(space, "rf", "grid", None), n_train=len(y) * 2 // 3)
    assert result.fits == 3 * planned.fits == 9


def test_mean_scores_add_the_folds_in_scikit_learns_order():
    """Tied candidates are ranked by their mean; a mean summed in another order differs in the last
    bit and breaks the tie the other way (seen on 10 folds: same scores, different refits)."""
    from milo_tui.engine.search import SearchResult

    table = np.random.default_rng(0).random((10, 60, 2))  # (folds, candidates, scorers), as run_search collects them
    result = SearchResult([{}] * 60, {"accuracy": table[:, :, 0].T}, fits=0)
    flat = table[:, :, 0].T.ravel().tolist()  # GridSearchCV's scores: a list, candidate by candidate
    sklearn = np.average(np.array(flat, dtype=np.float64).reshape(60, 10), axis=1)
    assert np.array_equal(result.mean("accuracy"), sklearn)


@pytest.mark.parametrize("data", ["breast_cancer", "wine"])
def test_milo_ml_mlp_random_search_trained_in_stacks_scores_like_plain(data, monkeypatch):
    """MILO-ML's own MLP distributions (alpha uniform(0, 4), tols, max_iter 300/400, six layer
    shapes, tanh/relu): candidates sharing layers and activation are trained together
    (engine/perceptron_stack.py), and every fold score, rank and choice is the plain search's."""
    from milo_tui.engine import search

    stacked = []
    train = search.train_stacked
    monkeypatch.setattr(search, "train_stacked", lambda p, X, y, members: stacked.append(len(members)) or
                        train(p, X, y, members))
    space = SearchSpace("milo-ml", 12, ("random",), seed=7)
    fast, plain = _compare(PipelineSpec("std", "none", "mlp", "random"), space, data, folds=2)
    assert len(fast.candidates) == 12 and stacked == [2, 2, 3, 2, 1, 1, 1] * 2  # 9 of the 12 draws share layers and activation
    assert fast.fits == plain.fits  # every candidate has its own alpha: as many trajectories as fits


def test_mlp_search_trains_one_network_at_a_time_when_stacking_is_not_exact(monkeypatch):
    from milo_tui.engine import search

    monkeypatch.setattr(search, "stacking_is_exact", lambda: False)
    monkeypatch.setattr(search, "train_stacked", lambda *args: pytest.fail("stacked training was used"))
    space = _space(mlp={**STOPPING_GRID, "solver": ["adam"]})
    _compare(PipelineSpec("std", "none", "mlp", "grid"), space, "wine")


def test_a_stacked_network_with_non_finite_weights_scores_nan_as_the_plain_search_records(monkeypatch):
    """MLPClassifier.fit raises on non-finite weights and the plain search records NaN for that fit."""
    from milo_tui.engine import perceptron_stack
    from milo_tui.engine.search import Fold, score_perceptron
    from milo_tui.engine.space import make_classifier

    X, y = _data("wine")
    monkeypatch.setattr(perceptron_stack.Member, "finite", lambda member: member.alpha != 1.0)
    fold = Fold(X[::2], y[::2], X[1::2], y[1::2], 3, ["accuracy", "roc_auc"])
    candidates = [dict(alpha=a, hidden_layer_sizes=(5,), max_iter=10) for a in (0.1, 1.0, 2.0)]
    scores = score_perceptron(fold, make_classifier("mlp", seed=7), candidates)
    assert np.isnan(scores[1]).all() and not np.isnan(scores[0]).any() and not np.isnan(scores[2]).any()
