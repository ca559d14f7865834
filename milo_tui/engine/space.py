"""The search space: which pipelines exist, how each is built, and what each search tries.

MILO-ML's space (DESIGN.md): algorithm x scaler x feature selector x searcher,
each search scored by several scorers at once. Preprocessing lives inside the
searched Pipeline so no CV fold sees statistics of its own validation rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

from milo_tui.config import Config
from milo_tui.engine.grids import SearchSpace
from milo_tui.keys import ModelKey


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
        return ModelKey(self.scaler, self.selector, self.algorithm, self.searcher, scorer, rank).format()


def model_keys(spec: PipelineSpec, scorers: list[str], top_k: int) -> list[str]:
    return [spec.model_key(s, r) for s in scorers for r in range(top_k)]


def ovr_key(main_key: str, class_index: int) -> str:
    return ModelKey.parse(main_key).for_class(class_index).format()


def enumerate_pipelines(config: Config) -> list[PipelineSpec]:
    """Every pipeline, the scaler outermost: pipelines that differ only in their scaler can share
    a tree model's fold scores through the run's fold cache (engine/foldcache.py), which only
    happens when one finishes before the other starts; a whole scaler's worth of pipelines apart,
    two workers never run them at the same time."""
    s = config.search
    searchers = SearchSpace.from_config(config).searchers
    return [PipelineSpec(sc, se, al, sr) for sc, al, se, sr in
            product(s["scalers"], s["algorithms"], s["selectors"], searchers)]


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


def min_class_count(y) -> int:
    """Size of the smallest class: MILO-ML's k-NN random search tries n_neighbors up to it."""
    import numpy as np

    return int(np.bincount(np.asarray(y)).min()) if len(y) else 0


def candidates(spec: PipelineSpec, space: SearchSpace, smallest_class: int | None = None) -> int:
    """How many parameter sets the search of `spec` scores."""
    return space.candidates(spec.algorithm, spec.searcher, smallest_class)


def models_per_pipeline(spec: PipelineSpec, scorers: list[str], top_k: int, space: SearchSpace,
                        smallest_class: int | None = None) -> int:
    return len(scorers) * min(top_k, candidates(spec, space, smallest_class))


def search_plan(pipelines: list[PipelineSpec], space: SearchSpace, scorers: list[str], top_k: int,
                cv_folds: int, smallest_class: int | None, fold_rows: int | None = None) -> dict:
    """What each pipeline's search scores and fits, for metadata.json and `milo estimate`.

    `cv_fits` is what a plain GridSearchCV/RandomizedSearchCV fits (candidates x folds);
    `shared_fits` what engine/search.py fits when every shortcut applies (its own planner decides:
    search.fold_work), and `work_share` that work as a share of the plain search's (forests and
    boosting weighted by trees and stages); `refits` the models saved (the top parameter sets of
    each scorer). A pipeline whose fold scores the run's fold cache serves from an earlier pipeline
    (the same search under another scaler: search.expects_shared_scores) names it in `scores_from`
    and counts no fits: that is what happens when the model sees the same fold data under both
    scalers (engine/treekeys.py), as it usually does; when it does not, the search fits as usual. `fold_rows`: rows one CV fold fits on, when known (k-NN's shortcut depends on it).
    """
    from milo_tui.engine.search import candidate_sets, expects_shared_scores, fold_work

    work = {}
    for key in dict.fromkeys((spec.algorithm, spec.searcher) for spec in pipelines):
        work[key] = fold_work(key[0], candidate_sets(space, key[0], key[1], smallest_class), fold_rows)
    per_pipeline = {}
    computed_by: dict[tuple[str, str, str], str] = {}  # (algorithm, selector, searcher) -> first pipeline
    for spec in pipelines:
        fold = work[(spec.algorithm, spec.searcher)]
        entry = {"candidates": fold.candidates, "cv_fits": fold.candidates * cv_folds,
                 "shared_fits": fold.fits * cv_folds, "work_share": round(fold.share, 4),
                 "refits": models_per_pipeline(spec, scorers, top_k, space, smallest_class)}
        if expects_shared_scores(spec):
            first = computed_by.setdefault((spec.algorithm, spec.selector, spec.searcher), spec.name)
            if first != spec.name:  # the same search under another scaler: its fold scores, when the data agree
                entry.update(shared_fits=0, work_share=0.0, scores_from=first)
        per_pipeline[spec.name] = entry
    return {"grids": space.preset, "searchers": list(space.searchers),
            "random_iterations": space.random_iterations, "cv_folds": cv_folds,
            "candidates": sum(p["candidates"] for p in per_pipeline.values()),
            "cv_fits": sum(p["cv_fits"] for p in per_pipeline.values()),
            "shared_fits": sum(p["shared_fits"] for p in per_pipeline.values()),
            "scores_reused": sum("scores_from" in p for p in per_pipeline.values()),
            "pipelines": per_pipeline}
