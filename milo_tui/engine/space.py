"""The search space: which pipelines exist, how each is built, and what each search tries.

MILO-ML's space (DESIGN.md): algorithm x scaler x feature selector x searcher,
each search scored by several scorers at once. Preprocessing lives inside the
searched Pipeline so no CV fold sees statistics of its own validation rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

from milo_tui.config import Config


@dataclass(frozen=True)
class PipelineSpec:
    """One search: `scaler__selector__algorithm__searcher`."""

    scaler: str
    selector: str
    algorithm: str
    searcher: str

    @property
    def name(self) -> str:
        return f"{self.scaler}__{self.selector}__{self.algorithm}__{self.searcher}"

    def model_key(self, scorer: str, rank: int) -> str:
        return f"{self.name}__{scorer}__{rank}"


def model_keys(spec: PipelineSpec, scorers: list[str], top_k: int) -> list[str]:
    return [spec.model_key(s, r) for s in scorers for r in range(top_k)]


def ovr_key(main_key: str, class_index: int) -> str:
    return f"{main_key}_ovr_class_{class_index}"


def enumerate_pipelines(config: Config) -> list[PipelineSpec]:
    s = config.search
    return [PipelineSpec(sc, se, al, sr) for al, sc, se, sr in
            product(s["algorithms"], s["scalers"], s["selectors"], s["searchers"])]


# Parameter grids, prefixed for the Pipeline's final step "clf". Each has at
# least two candidates so every scorer can refit its top 2.
GRIDS: dict[str, dict[str, list]] = {
    "lr": {"C": [0.01, 0.1, 1.0, 10.0, 100.0]},
    "knn": {"n_neighbors": [3, 5, 7, 11], "weights": ["uniform", "distance"]},
    "rf": {"n_estimators": [50, 100], "max_depth": [None, 8], "max_features": ["sqrt"]},
    "gb": {"learning_rate": [0.05, 0.1], "max_iter": [50, 100], "max_depth": [None, 3]},
    "mlp": {"hidden_layer_sizes": [(32,), (64,)], "alpha": [1e-4, 1e-2]},
    "nb": {"var_smoothing": [1e-9, 1e-8, 1e-7]},
    "svm": {"C": [0.1, 1.0, 10.0], "gamma": ["scale", 0.01]},
}

def distributions(algorithm: str) -> dict:
    """What a random search samples for `algorithm` (scipy is imported here, in the worker)."""
    from scipy.stats import loguniform, randint

    table = {
        "lr": {"C": loguniform(1e-3, 1e3)},
        "knn": {"n_neighbors": randint(1, 30), "weights": ["uniform", "distance"]},
        "rf": {"n_estimators": randint(20, 150), "max_depth": [None, 4, 8, 16], "max_features": ["sqrt", "log2"]},
        "gb": {"learning_rate": loguniform(0.01, 0.3), "max_iter": randint(30, 150), "max_depth": [None, 2, 3, 5]},
        "mlp": {"hidden_layer_sizes": [(16,), (32,), (64,), (32, 16)], "alpha": loguniform(1e-5, 1e-1)},
        "nb": {"var_smoothing": loguniform(1e-11, 1e-5)},
        "svm": {"C": loguniform(1e-2, 1e2), "gamma": loguniform(1e-4, 1e-1)},
    }
    return table[algorithm]


def make_classifier(algorithm: str, seed: int, *, for_refit: bool = False):
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import SVC

    if algorithm == "lr":
        return LogisticRegression(max_iter=2000)
    if algorithm == "knn":
        return KNeighborsClassifier()
    if algorithm == "rf":
        return RandomForestClassifier(random_state=seed)
    if algorithm == "gb":
        return HistGradientBoostingClassifier(random_state=seed, early_stopping=False)
    if algorithm == "mlp":
        return MLPClassifier(max_iter=500, random_state=seed)
    if algorithm == "nb":
        return GaussianNB()
    if algorithm == "svm":
        # The search scores ROC AUC from decision_function; only the saved model
        # needs calibrated probabilities (Brier score, curves), which cost a 5-fold fit.
        return SVC(probability=for_refit, random_state=seed)
    raise ValueError(f"unknown algorithm {algorithm!r}")


def make_scaler(name: str):
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    return {"none": None, "minmax": MinMaxScaler(), "std": StandardScaler()}[name]


def make_selector(name: str, n_features: int, seed: int):
    if name == "none":
        return None
    kind, _, share = name.partition("-")
    share_f = int(share) / 100
    if kind == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=share_f, svd_solver="full", random_state=seed)
    keep = max(1, int(round(n_features * share_f)))
    if kind == "rf":
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.feature_selection import SelectFromModel

        return SelectFromModel(RandomForestClassifier(n_estimators=50, random_state=seed, n_jobs=1),
                               max_features=keep, threshold=-float("inf"))
    if kind == "select":
        from sklearn.feature_selection import SelectKBest, f_classif

        return SelectKBest(f_classif, k=keep)
    raise ValueError(f"unknown feature selector {name!r}")


def make_pipeline(spec: PipelineSpec, n_features: int, seed: int, *, for_refit: bool = False):
    from sklearn.pipeline import Pipeline

    steps = []
    scaler = make_scaler(spec.scaler)
    if scaler is not None:
        steps.append(("scaler", scaler))
    selector = make_selector(spec.selector, n_features, seed)
    if selector is not None:
        steps.append(("selector", selector))
    steps.append(("clf", make_classifier(spec.algorithm, seed, for_refit=for_refit)))
    return Pipeline(steps)


def search_grid(algorithm: str, searcher: str) -> dict:
    table = GRIDS[algorithm] if searcher == "grid" else distributions(algorithm)
    return {f"clf__{k}": v for k, v in table.items()}


def grid_size(algorithm: str) -> int:
    size = 1
    for values in GRIDS[algorithm].values():
        size *= len(values)
    return size


def candidates(spec: PipelineSpec, random_iterations: int) -> int:
    """How many parameter sets the search of `spec` scores."""
    return grid_size(spec.algorithm) if spec.searcher == "grid" else random_iterations


def models_per_pipeline(spec: PipelineSpec, scorers: list[str], top_k: int, random_iterations: int) -> int:
    return len(scorers) * min(top_k, candidates(spec, random_iterations))
