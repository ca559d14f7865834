"""The search presets: MILO-ML's grids counted as MILO-ML and scikit-learn count them, and overrides.

What must survive: the milo-ml preset scores exactly MILO-ML's number of parameter sets per
search (grid sizes from its hyperparameters.py, random searches capped at 100 or the finite
space), every preset value is a valid parameter of milo's estimator, random2 draws other sets
than random, and a bad [grids.ALG] key is refused naming it and the valid ones.
"""

import numpy as np
import pytest
from sklearn.model_selection import ParameterGrid, ParameterSampler

from milo_tui import config as cfg
from milo_tui.engine.grids import PRESETS, SearchSpace, grid_sets, to_sklearn
from milo_tui.engine.space import make_classifier
from milo_tui.errors import BadInputError
from milo_tui.project import ProjectPaths

BASE = {"data": {"train": "a.csv", "test": "b.csv", "target": "y"}}
# Shahraehash/AutoML ml/processors/hyperparameters.py: grid sizes, as DESIGN.md lists them.
MILO_ML_GRID_SIZES = {"gb": 30, "knn": 56, "lr": 27, "mlp": 72, "nb": 1, "rf": 45, "svm": 40}


def _config(search=None, grids=None):
    raw = {**BASE, "search": search or {}}
    if grids is not None:
        raw["grids"] = grids
    return cfg.validate(raw, ProjectPaths.of("/tmp"))


def _space(**search):
    return SearchSpace.from_config(_config({"grids": "milo-ml", **search}))


@pytest.mark.parametrize("algorithm, size", sorted(MILO_ML_GRID_SIZES.items()))
def test_milo_ml_grid_sizes_match_milo_ml_and_sklearn(algorithm, size):
    space = _space()
    assert space.candidates(algorithm, "grid") == size == len(ParameterGrid(space.grid(algorithm)))
    assert len(grid_sets(space.grid(algorithm))) == size


def test_milo_ml_random_searches_draw_up_to_100_or_the_finite_space():
    space = _space()
    assert space.searchers == ("grid", "random", "random2") and space.random_iterations == 100
    for algorithm in ("gb", "lr", "mlp", "rf", "svm"):
        assert space.candidates(algorithm, "random", 40) == 100
    assert space.candidates("nb", "random2", 40) == 1  # an empty space has one set
    # k-NN: n_neighbors 3..smallest class, both weights; all lists, so sampled without replacement
    assert space.candidates("knn", "random", 20) == 2 * 18
    assert space.candidates("knn", "random", 200) == 100
    for smallest in (20, 200):
        sk_space = to_sklearn(space.random("knn", smallest))
        draws = space.random_draws("knn", smallest)
        assert len(list(ParameterSampler(sk_space, n_iter=draws, random_state=0))) == draws


def test_random2_draws_other_sets_with_its_own_seed():
    space = _space()
    assert space.search_seed("random") != space.search_seed("random2")
    draws = [list(ParameterSampler(to_sklearn(space.random("rf", 50)), n_iter=5,
                                   random_state=space.search_seed(s))) for s in ("random", "random2")]
    assert draws[0] != draws[1]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_value_is_a_valid_estimator_parameter(preset):
    space = SearchSpace.from_config(_config({"grids": preset}))
    for algorithm in PRESETS[preset].grid:
        estimator = make_classifier(algorithm, seed=0)
        for params in grid_sets(space.grid(algorithm)):
            estimator.set_params(**params)
        sampled = ParameterSampler(to_sklearn(space.random(algorithm, 30), prefix=""), n_iter=3, random_state=0)
        for params in sampled:
            estimator.set_params(**params)


def test_compact_is_the_default_and_keeps_todays_sizes():
    space = SearchSpace.from_config(_config())
    assert space.preset == "compact" and space.searchers == ("grid", "random")
    assert space.random_iterations == 10
    assert {a: space.candidates(a, "grid") for a in PRESETS["compact"].grid} == {
        "lr": 5, "knn": 8, "rf": 4, "gb": 8, "mlp": 4, "nb": 3, "svm": 6}


def test_explicit_settings_beat_the_preset():
    space = _space(searchers=["grid"], random_iterations=7)
    assert space.searchers == ("grid",) and space.candidates("rf", "random", 50) == 7


def test_override_replaces_a_parameter_in_every_sub_grid():
    config = _config({"grids": "milo-ml"}, grids={"rf": {"n_estimators": [100, 300]},
                                                   "knn": {"n_neighbors": [5, 7]},
                                                   "mlp": {"hidden_layer_sizes": [[10], [10, 5]]}})
    space = SearchSpace.from_config(config)
    assert space.candidates("rf", "grid") == 3 * 3 * 2
    assert space.candidates("knn", "grid") == 4  # both of MILO-ML's sub-grids, two k each
    assert space.grid("mlp")[0]["hidden_layer_sizes"] == [(10,), (10, 5)]
    assert space.candidates("lr", "grid") == 27  # other algorithms untouched


@pytest.mark.parametrize("grids, phrases", [
    ({"rf": {"n_trees": [10]}}, ["grids.rf.n_trees is not a parameter", "n_estimators", "max_depth"]),
    ({"rf": {"n_estimators": 100}}, ["grids.rf.n_estimators must be a non-empty list"]),
    ({"rf": {"n_estimators": []}}, ["grids.rf.n_estimators must be a non-empty list"]),
    ({"xgb": {"n_estimators": [1]}}, ["unknown algorithm [grids.xgb]", "gb, knn"]),
    ({"rf": 3}, ["[grids.rf] must be a table"]),
])
def test_bad_override_is_refused_naming_key_and_valid_ones(grids, phrases):
    with pytest.raises(BadInputError) as err:
        _config(grids=grids)
    for phrase in phrases:
        assert phrase in str(err.value)


def test_unknown_searcher_and_preset_are_refused():
    with pytest.raises(BadInputError, match="search.grids = 'milo'"):
        _config({"grids": "milo"})
    with pytest.raises(BadInputError, match="'random3' not known"):
        _config({"searchers": ["random3"]})


def test_knn_random_space_needs_at_least_k3():
    space = _space()
    assert space.random("knn", 2)["n_neighbors"] == [3]
    assert np.array_equal(space.random("knn", 6)["n_neighbors"], [3, 4, 5, 6])


def test_memory_sizing_sees_the_largest_forest_a_preset_tries():
    assert _space().largest("rf", "n_estimators", 200) == 1000  # grid 1,000; random randint(100, 1000) <= 999
    compact = SearchSpace.from_config(_config())
    assert compact.largest("rf", "n_estimators", 200) == 149  # grid 50/100; random randint(20, 150)
    assert compact.largest("nb", "n_estimators", 200) == 200  # no such parameter: the default
