"""What each search tries: the grid and random-search presets, as data, and the user's overrides.

Two presets (`[search] grids = ...` in milo.toml):

- "milo-ml": MILO-ML's default grids and random distributions, value for value, from
  Shahraehash/AutoML ml/processors/hyperparameters.py (commit d69bda9) and its searchers
  (ml/processors/searchers.py: a random search draws at most 100 sets, or the whole grid when
  it is smaller; `random` and `random2` are the same search drawn twice). Differences that
  cannot be avoided are listed in DIFFERENCES (and in docs/CONFIG.md).
- "compact": milo's small grids, for quick runs.

A grid is a list of dicts of value lists (as scikit-learn's ParameterGrid takes it; k-NN's
MILO-ML grid is two dicts). A random search is one dict whose values are lists (sampled
uniformly) or distributions written as data: ("uniform", loc, scale), ("loguniform", low,
high), ("randint", low, high) or ("norm", loc, scale), each meaning the scipy.stats
distribution of that name. The special value KNN_CLASS_RANGE is MILO-ML's k-NN rule: every
n_neighbors from 3 to the size of the smallest class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from math import prod
from typing import Any

KNN_CLASS_RANGE = "n_neighbors: 3 .. smallest class size"
RANDOM2_SEED_OFFSET = 1  # random2 draws with seed + 1, so it tries other sets than random

MILO_ML_MAX_RANDOM = 100  # searchers.py MAX_RANDOM_ITERATIONS

MILO_ML_GRID: dict[str, list[dict[str, list]]] = {
    # XGBoost's n_estimators is HistGradientBoosting's max_iter (see DIFFERENCES).
    "gb": [{"learning_rate": [0.01, 0.05, 0.1], "max_depth": [2, 3, 4, 5, 6], "max_iter": [100, 1000]}],
    "knn": [{"n_neighbors": list(range(3, 31)), "weights": ["uniform"]},
            {"n_neighbors": list(range(3, 31)), "weights": ["distance"]}],
    "lr": [{"C": [0.01, 0.1, 1, 2, 3, 4, 5, 10, 100], "solver": ["lbfgs"], "max_iter": [100, 200, 500]}],
    "mlp": [{"activation": ["tanh", "relu"], "learning_rate": ["constant", "adaptive"],
             "alpha": [0.01, 0.1, 1], "tol": [0.001, 0.005, 0.01], "hidden_layer_sizes": [(50,), (100,)]}],
    "nb": [{}],
    "rf": [{"bootstrap": [True], "max_depth": [50, 80, 110], "max_features": ["sqrt"],
            "min_samples_leaf": [3, 4, 5], "n_estimators": [10, 100, 200, 300, 1000]}],
    "svm": [{"C": [0.1, 1, 10, 100, 1000], "kernel": ["rbf"],
             "gamma": [1, 0.1, 0.5, 0.01, 0.05, 0.001, 0.005, 0.0001]}],
}

MILO_ML_RANDOM: dict[str, dict[str, Any]] = {
    "gb": {"max_depth": list(range(2, 6)), "max_iter": list(range(100, 200)),
           "learning_rate": ("uniform", 0.01, 0.1)},
    "knn": {"n_neighbors": KNN_CLASS_RANGE, "weights": ["distance", "uniform"]},
    "lr": {"C": ("uniform", 0, 4), "solver": ["lbfgs"], "max_iter": list(range(100, 500)),
           "tol": ("uniform", 0, 4)},
    "mlp": {"max_iter": [300, 400], "activation": ["tanh", "relu"], "learning_rate": ["constant", "adaptive"],
            "alpha": ("uniform", 0, 4), "tol": ("uniform", 0.0001, 0.005),
            "hidden_layer_sizes": [(50,), (100,), (5, 5), (7, 7), (3, 3, 3), (5, 5, 5)],
            "n_iter_no_change": [3, 5, 10]},
    "nb": {},
    "rf": {"bootstrap": [True], "max_depth": ("randint", 50, 110), "max_features": ["sqrt"],
           "min_samples_leaf": ("randint", 3, 5), "min_samples_split": ("randint", 2, 4),
           "n_estimators": ("randint", 100, 1000)},
    "svm": {"C": ("norm", 1, 0.1), "gamma": ("uniform", 0.01, 0.1)},
}

# Where milo cannot be MILO-ML value for value, and why (rendered into docs/CONFIG.md).
DIFFERENCES = (
    "rf `max_features = \"auto\"` (MILO-ML's older grid) is `\"sqrt\"`, which is what \"auto\" meant for a "
    "classifier and what MILO-ML's newest grid uses; scikit-learn 1.3 removed \"auto\".",
    "gb is scikit-learn's HistGradientBoostingClassifier (no early stopping) instead of XGBoost, so a "
    "saved model needs nothing beyond scikit-learn; XGBoost's `n_estimators` is its `max_iter`. The grid "
    "values are MILO-ML's; the trees differ in detail (leaf caps, regularisation), so scores are close, "
    "not identical. On MILO-ML's gb grid (breast cancer, 10-fold) it found the best models of the three "
    "libraries measured (mean accuracy 0.978 against XGBoost's 0.959 and LightGBM's 0.968) but took 1.6x "
    "XGBoost's and 2.5x LightGBM's time (docs/PERFORMANCE.md, \"Gradient boosting libraries\").",
    "MILO-ML fits the scaler and feature selector once on the whole fitting set before the search; milo "
    "fits them inside each CV fold, so no fold is scored on rows its preprocessing has seen.",
    "MILO-ML's CV folds and random draws are unseeded; milo's use `search.seed` (random2: seed + 1), so a "
    "run can be repeated.",
)

# How the run shares fold results between pipelines (engine/foldcache.py), rendered into docs/CONFIG.md.
FOLD_CACHE_NOTE = [
    "Pipelines run scaler by scaler (every pipeline of the first scaler `scalers` lists, then every one",
    "of the next). A tree model often sees the same fold under two scalers (gradient",
    "boosting bins each column, and the rf-importance selectors' forest reads only each column's order),",
    "so a run keeps small per-fold results in `.milo/foldcache` and the later pipelines reuse them: the",
    "same scores, fewer fits (docs/PERFORMANCE.md, \"Sharing across pipelines\"). The folder is private,",
    "removed when the run completes, kept by a stopped run for `--resume` and cleared by `--force`;",
    "deleting it by hand only costs time. `milo estimate` and metadata.json count those pipelines' fits",
    "once (`scores_from` names the pipeline whose fold scores they expect to reuse).",
]

COMPACT_GRID: dict[str, list[dict[str, list]]] = {
    "lr": [{"C": [0.01, 0.1, 1.0, 10.0, 100.0]}],
    "knn": [{"n_neighbors": [3, 5, 7, 11], "weights": ["uniform", "distance"]}],
    "rf": [{"n_estimators": [50, 100], "max_depth": [None, 8], "max_features": ["sqrt"]}],
    "gb": [{"learning_rate": [0.05, 0.1], "max_iter": [50, 100], "max_depth": [None, 3]}],
    "mlp": [{"hidden_layer_sizes": [(32,), (64,)], "alpha": [1e-4, 1e-2]}],
    "nb": [{"var_smoothing": [1e-9, 1e-8, 1e-7]}],
    "svm": [{"C": [0.1, 1.0, 10.0], "gamma": ["scale", 0.01]}],
}

COMPACT_RANDOM: dict[str, dict[str, Any]] = {
    "lr": {"C": ("loguniform", 1e-3, 1e3)},
    "knn": {"n_neighbors": ("randint", 1, 30), "weights": ["uniform", "distance"]},
    "rf": {"n_estimators": ("randint", 20, 150), "max_depth": [None, 4, 8, 16], "max_features": ["sqrt", "log2"]},
    "gb": {"learning_rate": ("loguniform", 0.01, 0.3), "max_iter": ("randint", 30, 150),
           "max_depth": [None, 2, 3, 5]},
    "mlp": {"hidden_layer_sizes": [(16,), (32,), (64,), (32, 16)], "alpha": ("loguniform", 1e-5, 1e-1)},
    "nb": {"var_smoothing": ("loguniform", 1e-11, 1e-5)},
    "svm": {"C": ("loguniform", 1e-2, 1e2), "gamma": ("loguniform", 1e-4, 1e-1)},
}


@dataclass(frozen=True)
class Preset:
    name: str
    grid: dict[str, list[dict[str, list]]]
    random: dict[str, dict[str, Any]]
    random_iterations: int  # draws per random search unless milo.toml says otherwise
    searchers: tuple[str, ...]  # the searches run unless milo.toml says otherwise


PRESETS = {
    "milo-ml": Preset("milo-ml", MILO_ML_GRID, MILO_ML_RANDOM, MILO_ML_MAX_RANDOM, ("grid", "random", "random2")),
    "compact": Preset("compact", COMPACT_GRID, COMPACT_RANDOM, 10, ("grid", "random")),
}
DISTRIBUTIONS = ("uniform", "loguniform", "randint", "norm")


def is_distribution(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 3 and value[0] in DISTRIBUTIONS


def _finite_size(space: dict[str, Any]) -> int | None:
    """How many distinct sets a random search can draw, or None when a value is a distribution."""
    if any(is_distribution(v) for v in space.values()):
        return None
    return prod(len(v) for v in space.values())


@dataclass(frozen=True)
class SearchSpace:
    """The resolved grids of one run: a preset plus the user's [grids.ALG] overrides. Picklable."""

    preset: str
    random_iterations: int
    searchers: tuple[str, ...]
    seed: int
    overrides: dict[str, dict[str, list]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config) -> "SearchSpace":
        s = config.search
        preset = PRESETS[s["grids"]]
        return cls(preset=preset.name,
                   random_iterations=s["random_iterations"] or preset.random_iterations,
                   searchers=tuple(s["searchers"] or preset.searchers),
                   seed=s["seed"], overrides=dict(config.values.get("grids", {})))

    def grid(self, algorithm: str) -> list[dict[str, list]]:
        """The grid search's parameter grid (unprefixed), overrides applied to every sub-grid."""
        extra = self.overrides.get(algorithm, {})
        return [{**sub, **extra} for sub in PRESETS[self.preset].grid[algorithm]]

    def random(self, algorithm: str, min_class_count: int | None) -> dict[str, Any]:
        """The random searches' space (unprefixed, distributions still as data)."""
        space = dict(PRESETS[self.preset].random[algorithm])
        for key, value in space.items():
            if value == KNN_CLASS_RANGE:
                space[key] = list(range(3, max(3, min_class_count or 3) + 1))
        return space

    def random_draws(self, algorithm: str, min_class_count: int | None) -> int:
        size = _finite_size(self.random(algorithm, min_class_count))
        return self.random_iterations if size is None else min(self.random_iterations, size)

    def candidates(self, algorithm: str, searcher: str, min_class_count: int | None = None) -> int:
        """How many parameter sets the search scores, exactly as scikit-learn would."""
        if searcher == "grid":
            return sum(prod(len(v) for v in sub.values()) for sub in self.grid(algorithm))
        return self.random_draws(algorithm, min_class_count)

    def largest(self, algorithm: str, parameter: str, default: int) -> int:
        """The largest value a search of `algorithm` may try for a numeric parameter (memory sizing)."""
        values = [v for sub in self.grid(algorithm) for v in sub.get(parameter, [])]
        drawn = self.random(algorithm, None).get(parameter)
        if is_distribution(drawn) and drawn[0] == "randint":
            values.append(drawn[2] - 1)
        elif isinstance(drawn, list):
            values += drawn
        numeric = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return int(max(numeric)) if numeric else default

    def search_seed(self, searcher: str) -> int:
        return self.seed + (RANDOM2_SEED_OFFSET if searcher == "random2" else 0)


def to_sklearn(space: dict[str, Any], prefix: str = "clf__") -> dict[str, Any]:
    """A random space as scikit-learn takes it: distributions become scipy.stats objects."""
    from scipy import stats

    out = {}
    for key, value in space.items():
        if is_distribution(value):
            kind, a, b = value
            value = getattr(stats, kind)(a, b)
        out[prefix + key] = value
    return out


def prefixed(grid: list[dict[str, list]], prefix: str = "clf__") -> list[dict[str, list]]:
    return [{prefix + k: v for k, v in sub.items()} for sub in grid]


def grid_sets(grid: list[dict[str, list]]) -> list[dict[str, Any]]:
    """Every parameter set of a grid, in scikit-learn's ParameterGrid order (keys sorted)."""
    out = []
    for sub in grid:
        keys = sorted(sub)
        out += [dict(zip(keys, values)) for values in product(*(sub[k] for k in keys))]
    return out


# -- [grids.ALG] overrides in milo.toml ---------------------------------------------------------

TUPLE_PARAMETERS = {"hidden_layer_sizes"}  # TOML has no tuples; scikit-learn wants these as tuples


def check_overrides(table: Any, algorithms: tuple[str, ...]) -> tuple[dict[str, dict[str, list]], list[str]]:
    """Validate `[grids.ALG] param = [values]`; returns (normalised overrides, problems)."""
    problems: list[str] = []
    out: dict[str, dict[str, list]] = {}
    if not isinstance(table, dict):
        return out, ["[grids] must hold tables like [grids.rf]"]
    for algorithm, params in table.items():
        if algorithm not in algorithms:
            problems.append(f"unknown algorithm [grids.{algorithm}] (allowed: {', '.join(algorithms)})")
            continue
        if not isinstance(params, dict):
            problems.append(f"[grids.{algorithm}] must be a table of parameter = [values]")
            continue
        valid = estimator_parameters(algorithm)
        for key, values in params.items():
            if key not in valid:
                problems.append(f"grids.{algorithm}.{key} is not a parameter of {algorithm}'s estimator "
                                f"(valid: {', '.join(valid)})")
                continue
            if not isinstance(values, list) or not values:
                problems.append(f"grids.{algorithm}.{key} must be a non-empty list of values, "
                                f"like {key} = [1, 2]")
                continue
            if key in TUPLE_PARAMETERS:
                values = [tuple(v) if isinstance(v, list) else (v,) for v in values]
            out.setdefault(algorithm, {})[key] = values
    return out, problems


def estimator_parameters(algorithm: str) -> list[str]:
    from milo_tui.engine.space import make_classifier

    return sorted(make_classifier(algorithm, seed=0).get_params(deep=False))


def grids_markdown() -> list[str]:
    """The [grids.ALG] section of docs/CONFIG.md: presets, candidate counts, differences."""
    lines = [
        "## [grids.ALGORITHM]",
        "",
        "Replace values of one algorithm's grid search, e.g. `[grids.rf]` then `n_estimators = [100, 300]`.",
        "Each key must be a parameter of that algorithm's scikit-learn estimator (a wrong one is refused,",
        "listing the valid ones) and each value a non-empty list; it replaces that parameter in every",
        "sub-grid of the preset (or adds it). Random searches keep the preset's distributions.",
        "",
        "Parameter sets each search scores per preset (random: at most `random_iterations`; k-NN's MILO-ML",
        "random search tries n_neighbors from 3 to the smallest class size, so it may draw fewer):",
        "",
        "| algorithm | " + " | ".join(f"{name} grid | {name} random" for name in PRESETS) + " |",
        "| --- | " + " | ".join("---: | ---:" for _ in PRESETS) + " |",
    ]
    for algorithm in sorted(MILO_ML_GRID):
        cells = []
        for name, preset in PRESETS.items():
            space = SearchSpace(name, preset.random_iterations, preset.searchers, seed=0)
            cells += [str(space.candidates(algorithm, "grid")), str(space.candidates(algorithm, "random", 10**6))]
        lines.append(f"| {algorithm} | " + " | ".join(cells) + " |")
    lines += ["", *FOLD_CACHE_NOTE]
    lines += ["", "The `milo-ml` preset is MILO-ML's search (Shahraehash/AutoML, ml/processors/hyperparameters.py",
              "and searchers.py): 7 algorithms x 3 scalers x 9 selectors x 3 searchers = 567 pipelines. Where milo",
              "differs on purpose:", ""]
    lines += [f"- {text}" for text in DIFFERENCES]
    lines.append("")
    return lines
