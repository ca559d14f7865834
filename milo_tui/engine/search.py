"""A hyper-parameter search that scores every candidate exactly as GridSearchCV or
RandomizedSearchCV would (same folds, same parameter sets in the same order, same scores,
same ranking), while fitting far less.

Where the work goes:
- the candidates: one hook per searcher (`grid_candidates`, `random_candidates`), like
  scikit-learn's BaseSearchCV._run_search; everything after it is shared;
- preprocessing (scaler, then feature selector) is fitted once per CV fold, not once per
  candidate and fold: each candidate's Pipeline would fit the same steps on the same rows;
- a fold's candidates are scored by a per-algorithm strategy (`FOLD_STRATEGIES`):
  - random forest: one forest per group of candidates that can only differ in n_estimators
    and max_depth. scikit-learn seeds tree i of a forest with the i-th draw of
    RandomState(random_state), so a forest of k trees is the first k trees of a larger one
    (its probabilities are the same running sum divided by k, added in the same order);
    max_depth above the depth every one of those trees reached changes nothing; and
    min_samples_split <= 2 x min_samples_leaf cannot change a tree (a node smaller than
    2 x min_samples_leaf is a leaf anyway). Anything else is fitted as usual;
  - gradient boosting (HistGradientBoosting, no early stopping): stage k of one fit of
    max_iter = K is the model with max_iter = k (staged_decision_function);
  - k-NN: one neighbour query with the largest k serves every k and both weightings;
  - logistic regression (lbfgs): a fit that converged in n iterations is the fit of every
    max_iter above n;
  - everything else: one fit per candidate on the shared preprocessed fold.
Scores are the scorers' own metrics on the responses they would ask for (decision_function
first for binary ROC AUC, predict_proba otherwise), so they match plain CV to float
round-off; tests/unit/test_search.py checks every shortcut against GridSearchCV.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from milo_tui.engine.grids import SearchSpace, grid_sets, to_sklearn
from milo_tui.engine.space import PipelineSpec, make_classifier, make_scaler, make_selector, min_class_count

SCORERS_NEEDING_RESPONSE = {"roc_auc"}


# -- which candidates (the searcher hook) --------------------------------------------------

def grid_candidates(space: SearchSpace, spec: PipelineSpec, y: np.ndarray) -> list[dict]:
    return grid_sets(space.grid(spec.algorithm))


def random_candidates(space: SearchSpace, spec: PipelineSpec, y: np.ndarray) -> list[dict]:
    from sklearn.model_selection import ParameterSampler

    smallest = min_class_count(y)
    distributions = to_sklearn(space.random(spec.algorithm, smallest), prefix="")
    sampler = ParameterSampler(distributions, n_iter=space.random_draws(spec.algorithm, smallest),
                               random_state=space.search_seed(spec.searcher))
    return list(sampler)


CANDIDATES: dict[str, Callable[[SearchSpace, PipelineSpec, np.ndarray], list[dict]]] = {
    "grid": grid_candidates, "random": random_candidates, "random2": random_candidates,
}


# -- scoring one fitted model's responses ------------------------------------------------

@dataclass
class Responses:
    """What the scorers read from one model on one validation fold."""

    predicted: np.ndarray  # class labels, as predict() returns them
    ranking: np.ndarray  # binary: decision_function or P(class 1); multi-class: predict_proba


def responses_of(model, X: np.ndarray, n_classes: int) -> Responses:
    """As scikit-learn's scorers ask: ROC AUC prefers decision_function for two classes."""
    predicted = model.predict(X)
    if n_classes == 2:
        ranking = model.decision_function(X) if hasattr(model, "decision_function") else model.predict_proba(X)[:, 1]
    else:
        ranking = model.predict_proba(X) if hasattr(model, "predict_proba") else None
    return Responses(predicted, ranking)


def score(y: np.ndarray, r: Responses, scorers: list[str], n_classes: int) -> list[float]:
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    out = []
    for name in scorers:
        if name == "accuracy":
            out.append(accuracy_score(y, r.predicted))
        elif name == "f1_macro":
            out.append(f1_score(y, r.predicted, average="macro"))
        elif name == "roc_auc":
            if r.ranking is None:
                out.append(np.nan)  # the plain search's scorer fails here and records error_score
            elif n_classes == 2:
                out.append(roc_auc_score(y, r.ranking))
            else:
                out.append(roc_auc_score(y, r.ranking, multi_class="ovr"))
        else:
            raise ValueError(f"unknown scorer {name!r}")
    return [float(v) for v in out]


# -- one fold ------------------------------------------------------------------------------

@dataclass
class Fold:
    X_train: np.ndarray
    y_train: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    n_classes: int
    scorers: list[str]
    fits: int = 0  # estimator fits made on this fold (preprocessing not counted)

    def score(self, r: Responses) -> list[float]:
        return score(self.y_valid, r, self.scorers, self.n_classes)

    def failed(self) -> list[float]:
        return [np.nan] * len(self.scorers)


def preprocess(spec: PipelineSpec, X_train, y_train, X_valid, seed: int):
    """The Pipeline's steps before the classifier, fitted once: fit_transform on the training
    rows and transform on the validation rows, exactly as Pipeline.fit/predict run them."""
    for step in (make_scaler(spec.scaler), make_selector(spec.selector, X_train.shape[1], seed)):
        if step is not None:
            X_train = step.fit_transform(X_train, y_train)
            X_valid = step.transform(X_valid)
    return X_train, X_valid


def _fit_and_score(fold: Fold, base, params: dict) -> list[float]:
    from sklearn.base import clone

    try:
        model = clone(base).set_params(**params)
        fold.fits += 1
        model.fit(fold.X_train, fold.y_train)
        return fold.score(responses_of(model, fold.X_valid, fold.n_classes))
    except Exception:  # the plain search records error_score=nan for this candidate and fold
        return fold.failed()


def score_each(fold: Fold, base, candidates: list[dict]) -> list[list[float]]:
    """The plain way: one fit per candidate."""
    return [_fit_and_score(fold, base, params) for params in candidates]


def _groups(candidates: list[dict], key: Callable[[dict], Any]) -> dict[Any, list[int]]:
    groups: dict[Any, list[int]] = {}
    for i, params in enumerate(candidates):
        groups.setdefault(key(params), []).append(i)
    return groups


def _frozen(params: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


# random forest ------------------------------------------------------------------------------

def _forest_shape(params: dict, base) -> tuple:
    """The parameters that change a forest's first k trees, other than n_estimators and max_depth."""
    merged = {**base.get_params(deep=False), **params}
    shape = {k: v for k, v in params.items() if k not in ("n_estimators", "max_depth")}
    split, leaf = merged["min_samples_split"], merged["min_samples_leaf"]
    if isinstance(split, int) and isinstance(leaf, int) and split <= 2 * leaf:
        shape.pop("min_samples_split", None)  # a node under 2 x min_samples_leaf rows is a leaf anyway
        shape["_split_irrelevant"] = True
    return _frozen(shape)


def score_forests(fold: Fold, base, candidates: list[dict]) -> list[list[float]]:
    from sklearn.base import clone

    defaults = base.get_params(deep=False)
    results: list[list[float] | None] = [None] * len(candidates)
    for indices in _groups(candidates, lambda p: _forest_shape(p, base)).values():
        members = [{**defaults, **candidates[i]} for i in indices]
        depths = [m["max_depth"] for m in members]
        deepest = None if any(d is None for d in depths) else max(depths)
        largest = max(m["n_estimators"] for m in members)
        try:
            forest = clone(base).set_params(**candidates[indices[0]])
            forest.set_params(n_estimators=largest, max_depth=deepest)
            fold.fits += 1
            forest.fit(fold.X_train, fold.y_train)
        except Exception:
            for i in indices:
                results[i] = _fit_and_score(fold, base, candidates[i])
            continue
        X_valid = forest._validate_X_predict(fold.X_valid)
        running = np.cumsum([tree.predict_proba(X_valid, check_input=False) for tree in forest.estimators_], axis=0)
        reached = np.maximum.accumulate([tree.tree_.max_depth for tree in forest.estimators_])
        capped: dict[int, list[int]] = {}  # depth -> candidates whose cap binds: one nested fit per depth
        for i, member in zip(indices, members):
            k, depth = member["n_estimators"], member["max_depth"]
            if depth is not None and reached[k - 1] > depth:
                capped.setdefault(depth, []).append(i)
                continue
            proba = running[k - 1] / k
            predicted = forest.classes_.take(np.argmax(proba, axis=1))
            ranking = proba[:, 1] if fold.n_classes == 2 else proba
            results[i] = fold.score(Responses(predicted, ranking))
        for same_depth in capped.values():  # all one depth now, so that cap is the deepest: nested again
            for i, scores in zip(same_depth, score_forests(fold, base, [candidates[i] for i in same_depth])):
                results[i] = scores
    return results


# gradient boosting --------------------------------------------------------------------------

def score_boosting(fold: Fold, base, candidates: list[dict]) -> list[list[float]]:
    from sklearn.base import clone

    defaults = base.get_params(deep=False)
    if defaults.get("early_stopping") not in (False,):
        return score_each(fold, base, candidates)  # stages are only nested without early stopping
    results: list[list[float] | None] = [None] * len(candidates)
    shape = lambda p: _frozen({k: v for k, v in p.items() if k != "max_iter"})  # noqa: E731
    for indices in _groups(candidates, shape).values():
        stages = sorted({{**defaults, **candidates[i]}["max_iter"] for i in indices})
        try:
            model = clone(base).set_params(**candidates[indices[0]]).set_params(max_iter=stages[-1])
            fold.fits += 1
            model.fit(fold.X_train, fold.y_train)
        except Exception:
            for i in indices:
                results[i] = _fit_and_score(fold, base, candidates[i])
            continue
        wanted = set(stages)
        by_stage: dict[int, Responses] = {}
        # predict() decides on the raw score (raw > 0, or argmax); ROC AUC reads the raw score
        # (binary) or the probabilities (multi-class), as the scorers do.
        raw_stages = model.staged_decision_function(fold.X_valid)
        if fold.n_classes > 2:
            staged = zip(raw_stages, model.staged_predict_proba(fold.X_valid))
        else:
            staged = ((raw, raw) for raw in raw_stages)
        for stage, (raw, ranking) in enumerate(staged, start=1):
            if stage in wanted:
                encoded = (raw > 0).astype(np.int64) if raw.ndim == 1 else np.argmax(raw, axis=1)
                by_stage[stage] = Responses(model.classes_[encoded], ranking)
        for i in indices:
            stage = {**defaults, **candidates[i]}["max_iter"]
            if stage not in by_stage:  # fewer iterations than asked (cannot happen without early stopping)
                results[i] = _fit_and_score(fold, base, candidates[i])
            else:
                results[i] = fold.score(by_stage[stage])
    return results


# logistic regression -----------------------------------------------------------------------

def score_linear(fold: Fold, base, candidates: list[dict]) -> list[list[float]]:
    """lbfgs stops when it converges or at max_iter; its iterates do not depend on max_iter, so a
    fit that converged after n iterations is the fit of every max_iter >= n."""
    from sklearn.base import clone

    defaults = base.get_params(deep=False)
    results: list[list[float] | None] = [None] * len(candidates)
    shape = lambda p: _frozen({k: v for k, v in p.items() if k != "max_iter"})  # noqa: E731
    for indices in _groups(candidates, shape).values():
        members = [{**defaults, **candidates[i]} for i in indices]
        if members[0]["solver"] != "lbfgs" or len(indices) == 1:
            for i in indices:
                results[i] = _fit_and_score(fold, base, candidates[i])
            continue
        largest = max(m["max_iter"] for m in members)
        try:
            model = clone(base).set_params(**candidates[indices[0]]).set_params(max_iter=largest)
            fold.fits += 1
            model.fit(fold.X_train, fold.y_train)
            used = int(np.max(model.n_iter_))
            shared = fold.score(responses_of(model, fold.X_valid, fold.n_classes))
        except Exception:
            used, shared = largest + 1, None
        for i, member in zip(indices, members):
            converged_within = shared is not None and (used < member["max_iter"] or member["max_iter"] == largest)
            results[i] = shared if converged_within else _fit_and_score(fold, base, candidates[i])
    return results


# k nearest neighbours --------------------------------------------------------------------

def _neighbour_weights(distances: np.ndarray, weights: str) -> np.ndarray:
    """scikit-learn's _get_weights: 1/d, and a query that hits a training row exactly counts only those rows."""
    if weights == "uniform":
        return np.ones_like(distances)
    with np.errstate(divide="ignore"):
        inverse = 1.0 / distances
    exact = np.isinf(inverse)
    rows = np.any(exact, axis=1)
    inverse[rows] = exact[rows]
    return inverse


def score_neighbours(fold: Fold, base, candidates: list[dict]) -> list[list[float]]:
    from sklearn.base import clone

    defaults = base.get_params(deep=False)
    n_train = len(fold.y_train)
    results: list[list[float] | None] = [None] * len(candidates)
    shape = lambda p: _frozen({k: v for k, v in p.items() if k not in ("n_neighbors", "weights")})  # noqa: E731
    for indices in _groups(candidates, shape).values():
        members = [{**defaults, **candidates[i]} for i in indices]
        largest = max(m["n_neighbors"] for m in members)
        # scikit-learn picks brute force when k >= n/2, so one query only serves ks on one side of that
        if largest >= n_train // 2 or any(callable(m["weights"]) for m in members):
            for i in indices:
                results[i] = _fit_and_score(fold, base, candidates[i])
            continue
        model = clone(base).set_params(**candidates[indices[0]]).set_params(n_neighbors=largest)
        fold.fits += 1
        model.fit(fold.X_train, fold.y_train)
        distances, neighbours = model.kneighbors(fold.X_valid)
        labels = model._y[neighbours]
        rows = np.arange(len(fold.y_valid))
        for i, member in zip(indices, members):
            k = member["n_neighbors"]
            weights = _neighbour_weights(distances[:, :k], member["weights"])
            proba = np.zeros((len(rows), len(model.classes_)))
            for j in range(k):  # the order scikit-learn adds the votes in
                proba[rows, labels[:, j]] += weights[:, j]
            proba /= proba.sum(axis=1)[:, np.newaxis]
            predicted = model.classes_[np.argmax(proba, axis=1)]
            ranking = proba[:, 1] if fold.n_classes == 2 else proba
            results[i] = fold.score(Responses(predicted, ranking))
    return results


FOLD_STRATEGIES: dict[str, Callable[[Fold, Any, list[dict]], list[list[float]]]] = {
    "rf": score_forests, "gb": score_boosting, "knn": score_neighbours, "lr": score_linear,
}


# -- the search ------------------------------------------------------------------------------

@dataclass
class SearchResult:
    candidates: list[dict]  # unprefixed parameter sets, in the plain search's order
    scores: dict[str, np.ndarray]  # scorer -> (candidates, folds)
    fits: int  # estimator fits made in CV (a plain search makes candidates x folds)
    ranks: dict[str, np.ndarray] = field(default_factory=dict)

    def mean(self, scorer: str) -> np.ndarray:
        return np.average(self.scores[scorer], axis=1)

    def chosen(self, scorer: str, top_k: int) -> list[dict]:
        order = np.argsort(self.ranks[scorer], kind="stable")
        return [self.candidates[i] for i in order[:top_k]]


def _rank(means: np.ndarray) -> np.ndarray:
    """scikit-learn's ranking: 1 is best, ties share the lowest rank, NaN ranks last."""
    from scipy.stats import rankdata

    if np.isnan(means).all():
        return np.ones(len(means), dtype=np.int32)
    if np.isnan(means).any():
        means = np.nan_to_num(means, nan=np.nanmin(means) - 1)
    return rankdata(-means, method="min").astype(np.int32)


def _score_fold(spec: PipelineSpec, candidates: list[dict], X, y, train, valid, scorers, n_classes, seed):
    X_train, X_valid = preprocess(spec, X[train], y[train], X[valid], seed)
    fold = Fold(X_train, y[train], X_valid, y[valid], n_classes, scorers)
    base = make_classifier(spec.algorithm, seed)
    strategy = FOLD_STRATEGIES.get(spec.algorithm, score_each)
    return strategy(fold, base, candidates), fold.fits


def run_search(spec: PipelineSpec, space: SearchSpace, X: np.ndarray, y: np.ndarray, *, scorers: list[str],
               cv_folds: int, seed: int, n_jobs: int = 1) -> SearchResult:
    """Score every candidate of `spec`'s search with stratified CV, sharing work across candidates."""
    import warnings

    from joblib import Parallel, delayed
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    X, y = np.asarray(X), np.asarray(y)
    n_classes = len(np.unique(y))
    candidates = CANDIDATES[spec.searcher](space, spec, y)
    folds = list(StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=seed).split(X, y))
    per_fold = Parallel(n_jobs=n_jobs)(
        delayed(_score_fold)(spec, candidates, X, y, train, valid, scorers, n_classes, seed)
        for train, valid in folds)
    table = np.array([scores for scores, _ in per_fold], dtype=float)  # (folds, candidates, scorers)
    result = SearchResult(candidates, {s: table[:, :, j].T for j, s in enumerate(scorers)},
                          fits=sum(f for _, f in per_fold))
    result.ranks = {s: _rank(result.mean(s)) for s in scorers}
    return result


# -- the reference: what MILO-ML ran -------------------------------------------------------------

def plain_search(spec: PipelineSpec, space: SearchSpace, X: np.ndarray, y: np.ndarray, *, scorers: list[str],
                 cv_folds: int, seed: int, n_jobs: int = 1) -> SearchResult:
    """The same search as one scikit-learn GridSearchCV/RandomizedSearchCV over the whole Pipeline
    (every candidate x fold fitted from scratch). The benchmark's baseline and the tests' oracle."""
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, StratifiedKFold

    from milo_tui.engine.grids import prefixed
    from milo_tui.engine.space import make_pipeline

    n_classes = len(np.unique(y))
    scoring = {s: ("roc_auc_ovr" if s == "roc_auc" and n_classes > 2 else s) for s in scorers}
    cv = StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=seed)
    common = dict(scoring=scoring, refit=False, cv=cv, n_jobs=n_jobs, error_score=np.nan)
    pipeline = make_pipeline(spec, X.shape[1], seed)
    if spec.searcher == "grid":
        search = GridSearchCV(pipeline, prefixed(space.grid(spec.algorithm)), **common)
    else:
        smallest = min_class_count(y)
        search = RandomizedSearchCV(pipeline, to_sklearn(space.random(spec.algorithm, smallest)),
                                    n_iter=space.random_draws(spec.algorithm, smallest),
                                    random_state=space.search_seed(spec.searcher), **common)
    search.fit(X, y)
    res = search.cv_results_
    candidates = [{k.removeprefix("clf__"): v for k, v in p.items()} for p in res["params"]]
    scores = {s: np.array([res[f"split{i}_test_{s}"] for i in range(cv_folds)]).T for s in scorers}
    return SearchResult(candidates, scores, fits=len(candidates) * cv_folds,
                        ranks={s: np.asarray(res[f"rank_test_{s}"]) for s in scorers})


def same_chosen(a: SearchResult, b: SearchResult, scorers: list[str], top_k: int) -> bool:
    """Do two searches refit the same parameter sets for every scorer?"""
    return all(a.chosen(s, top_k) == b.chosen(s, top_k) for s in scorers)
