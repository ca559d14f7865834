"""A hyper-parameter search that scores every candidate exactly as GridSearchCV or
RandomizedSearchCV would (same folds, same parameter sets in the same order, same scores,
same ranking), while fitting far less.

Where the work goes:
- the candidates: one hook per searcher (`grid_candidates`, `random_candidates`), like
  scikit-learn's BaseSearchCV._run_search; everything after it is shared;
- preprocessing (scaler, then feature selector) is fitted once per CV fold, not once per
  candidate and fold: each candidate's Pipeline would fit the same steps on the same rows;
- which candidates share a fit is decided by one planner per algorithm (`PLANNERS`), used both
  by the search and by `milo estimate` (`planned_fits`); a shared fit that fails falls back to
  one fit per candidate (`_fit_shared`), as the plain search would score them;
- a fold's candidates are scored by a per-algorithm strategy (`FOLD_STRATEGIES`):
  - random forest: one forest per group of candidates that can only differ in n_estimators
    and max_depth. scikit-learn seeds tree i of a forest with the i-th draw of
    RandomState(random_state), so a forest of k trees is the first k trees of a larger one
    (its probabilities are the same running sum divided by k, added in the same order);
    max_depth above the depth every one of those trees reached changes nothing; and
    min_samples_split <= 2 x min_samples_leaf cannot change a tree (a node smaller than
    2 x min_samples_leaf is a leaf anyway). Anything else is fitted as usual. The trees are
    grown by engine/forest.py: the forest's own trees, without its per-tree Python overhead;
  - gradient boosting (HistGradientBoosting, no early stopping): stage k of one fit of
    max_iter = K is the model with max_iter = k (staged_decision_function);
  - k-NN: one neighbour query with the largest k serves every k and both weightings;
  - logistic regression (lbfgs): a fit that converged in n iterations is the fit of every
    max_iter above n;
  - MLP: candidates that differ only in SGD's settings (learning_rate...) while the solver is
    adam or lbfgs are one fit; and where tol, n_iter_no_change and max_iter only decide the epoch
    training stops at (adam, or sgd without the adaptive rate), candidates differing in them
    follow one training run, each member's weights copied at its own stopping epoch. adam runs that
    differ only in alpha (and when they stop) start from the same weights and see the same
    mini-batches, so they are trained together as one stacked network (engine/perceptron_stack.py,
    MILO-ML's random search: ~8 of its 100 draws per layer shape and activation), each network's
    arithmetic MLPClassifier's own; the rest by engine/perceptron.py (MLPClassifier's arithmetic,
    without its per-batch overhead);
  - everything else: one fit per candidate on the shared preprocessed fold.
Scores are the scorers' own metrics on the responses they would ask for (decision_function
first for binary ROC AUC, predict_proba otherwise), so they match plain CV to float
round-off; tests/unit/test_search.py checks every shortcut against GridSearchCV.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from milo_tui.engine.foldcache import FoldCache, content_key
from milo_tui.engine.forest import Trees, grow, supported
from milo_tui.engine.grids import SearchSpace, grid_sets, to_sklearn
from milo_tui.engine.scores import accuracy, f1_macro, roc_auc
from milo_tui.engine.perceptron import perceptron_class
from milo_tui.engine.perceptron_stack import VARYING as STACK_VARYING
from milo_tui.engine.perceptron_stack import stackable, stacking_is_exact, train_stacked
from milo_tui.engine.space import PipelineSpec, make_classifier, make_scaler, make_selector, min_class_count
from milo_tui.engine.treekeys import (boosting_binned, boosting_fit_parts, importance_forest_parts,
                                      select_by_importance, with_neighbour_rows)

SCORERS_NEEDING_RESPONSE = {"roc_auc"}


# -- which candidates (the searcher hook) --------------------------------------------------

def grid_candidates(space: SearchSpace, algorithm: str, searcher: str, smallest_class: int | None) -> list[dict]:
    return grid_sets(space.grid(algorithm))


def random_candidates(space: SearchSpace, algorithm: str, searcher: str, smallest_class: int | None) -> list[dict]:
    from sklearn.model_selection import ParameterSampler

    distributions = to_sklearn(space.random(algorithm, smallest_class), prefix="")
    sampler = ParameterSampler(distributions, n_iter=space.random_draws(algorithm, smallest_class),
                               random_state=space.search_seed(searcher))
    return list(sampler)


CANDIDATES: dict[str, Callable[[SearchSpace, str, str, int | None], list[dict]]] = {
    "grid": grid_candidates, "random": random_candidates, "random2": random_candidates,
}


def candidate_sets(space: SearchSpace, algorithm: str, searcher: str, smallest_class: int | None) -> list[dict]:
    """Every parameter set the search scores, in the plain search's order (`smallest_class`:
    rows of the smallest class, which bounds MILO-ML's k-NN random search)."""
    return CANDIDATES[searcher](space, algorithm, searcher, smallest_class)


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


def score(y: np.ndarray, r: Responses, scorers: list[str]) -> list[float]:
    """The scorers' values, by engine/scores.py: scikit-learn's arithmetic without its per-call
    checks (ROC AUC: roc_auc_score with multi_class="ovr", which only matters for more than two classes)."""
    out = []
    for name in scorers:
        if name == "accuracy":
            out.append(accuracy(y, r.predicted))
        elif name == "f1_macro":
            out.append(f1_macro(y, r.predicted))
        elif name == "roc_auc":
            if r.ranking is None:
                out.append(np.nan)  # the plain search's scorer fails here and records error_score
            else:
                out.append(roc_auc(y, r.ranking))
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
        return score(self.y_valid, r, self.scorers)

    def failed(self) -> list[float]:
        return [np.nan] * len(self.scorers)


def preprocess(spec: PipelineSpec, X_train, y_train, X_valid, seed: int, cache: FoldCache | None = None):
    """The Pipeline's steps before the classifier, fitted once: fit_transform on the training
    rows and transform on the validation rows, exactly as Pipeline.fit/predict run them.
    An rf-importance selector takes its forest's importances from `cache` when another pipeline
    (another scaler, algorithm or selector share) already fitted that forest on the same ranks."""
    for step in (make_scaler(spec.scaler), make_selector(spec.selector, X_train.shape[1], seed)):
        if step is None:
            continue
        mask = _shared_selection(step, X_train, y_train, cache) if cache is not None else None
        if mask is not None:
            X_train, X_valid = X_train[:, mask], X_valid[:, mask]
        else:
            X_train = step.fit_transform(X_train, y_train)
            X_valid = step.transform(X_valid)
    return X_train, X_valid


def _shared_selection(step, X_train, y_train, cache: FoldCache) -> np.ndarray | None:
    """SelectFromModel(random forest)'s support mask from importances one forest computed for every
    pipeline whose training rows have the same ranks (engine/treekeys.py); None for other steps."""
    from sklearn.base import clone
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.feature_selection import SelectFromModel

    if not (isinstance(step, SelectFromModel) and type(step.estimator) is RandomForestClassifier
            and isinstance(step.max_features, int) and step.threshold == -np.inf):
        return None
    parts = importance_forest_parts(step.estimator, X_train, y_train)
    if parts is None:
        return None
    key = content_key(*parts)
    importances = cache.get(key, shape=(X_train.shape[1],))
    if importances is None:
        importances = np.asarray(clone(step.estimator).fit(X_train, y_train).feature_importances_, dtype=np.float64)
        cache.put(key, importances)
    return select_by_importance(importances, step.max_features)


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


def _frozen(params: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


# -- which candidates share a fit (used by the search and by `milo estimate`) ----------------

@dataclass
class SharedFit:
    """One fit that may serve several candidates: `params` is what is fitted (a candidate's
    parameters with the shared ones at their largest), `members` the candidates it serves."""

    params: dict
    members: list[int]


def _share(candidates: list[dict], base, varying: tuple[str, ...],
           shape: Callable[[dict], dict] | None = None) -> list[SharedFit]:
    """Group candidates that differ only in `varying` parameters; each group is fitted once with
    every varying parameter at its largest (None, meaning no limit, counts as the largest)."""
    defaults = base.get_params(deep=False)
    groups: dict[tuple, list[int]] = {}
    for i, params in enumerate(candidates):
        fixed = {k: v for k, v in params.items() if k not in varying}
        groups.setdefault(_frozen(shape(params) if shape else fixed), []).append(i)
    out = []
    for members in groups.values():
        fitted = dict(candidates[members[0]])
        for name in varying:
            values = [{**defaults, **candidates[i]}[name] for i in members]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) or v is None for v in values):
                fitted[name] = None if any(v is None for v in values) else max(values)
        out.append(SharedFit(fitted, members))
    return out


def plan_each(base, candidates: list[dict], n_train: int) -> list[SharedFit]:
    return [SharedFit(dict(params), [i]) for i, params in enumerate(candidates)]


def plan_forests(base, candidates: list[dict], n_train: int) -> list[SharedFit]:
    """A forest of k trees is the first k trees of a larger one; a depth cap above every tree's
    depth changes nothing (checked after the fit: a cap that binds gets its own fit); and
    min_samples_split <= 2 x min_samples_leaf cannot change a tree."""
    return _share(candidates, base, ("n_estimators", "max_depth"), shape=lambda p: _forest_shape(p, base))


def plan_boosting(base, candidates: list[dict], n_train: int) -> list[SharedFit]:
    """Without early stopping, stage k of a fit of K stages is the model with max_iter = k."""
    if base.get_params(deep=False).get("early_stopping") is not False:
        return plan_each(base, candidates, n_train)
    return _share(candidates, base, ("max_iter",))


def plan_linear(base, candidates: list[dict], n_train: int) -> list[SharedFit]:
    """lbfgs: a fit that converged within n iterations is the fit of every max_iter >= n
    (checked after the fit: the candidates it did not converge for get their own fit)."""
    defaults = base.get_params(deep=False)
    lbfgs = [i for i, p in enumerate(candidates) if {**defaults, **p}["solver"] == "lbfgs"]
    shared = _share([candidates[i] for i in lbfgs], base, ("max_iter",))
    others = [SharedFit(dict(candidates[i]), [i]) for i in range(len(candidates)) if i not in set(lbfgs)]
    return [SharedFit(s.params, [lbfgs[j] for j in s.members]) for s in shared] + others


def plan_neighbours(base, candidates: list[dict], n_train: int) -> list[SharedFit]:
    """One neighbour query with the largest k serves every k and both weightings, unless
    scikit-learn would switch to brute force for the largest k (k >= n/2) or weights is a callable."""
    out = []
    for shared in _share(candidates, base, ("n_neighbors", "weights")):
        members = [{**base.get_params(deep=False), **candidates[i]} for i in shared.members]
        if shared.params["n_neighbors"] is None or shared.params["n_neighbors"] >= n_train // 2 \
                or any(callable(m["weights"]) for m in members):
            out += [SharedFit(dict(candidates[i]), [i]) for i in shared.members]
        else:
            out.append(shared)
    return out


SGD_ONLY = ("learning_rate", "momentum", "nesterovs_momentum", "power_t")
STOPPING = ("tol", "n_iter_no_change", "max_iter")  # when an MLP stops, never the path it takes


def _stops_without_steering(params: dict) -> bool:
    """Does the MLP's tol / n_iter_no_change / max_iter only decide at which epoch it stops?
    True for adam and for sgd without the adaptive rate (their optimizers' trigger_stopping always
    stops; sgd's adaptive rate instead divides the learning rate by 5 and goes on), without
    early_stopping (whose validation split and best-weights copy read tol)."""
    adaptive_sgd = params["solver"] == "sgd" and params["learning_rate"] == "adaptive"
    return params["solver"] in ("adam", "sgd") and not adaptive_sgd and not params["early_stopping"]


def plan_perceptron(base, candidates: list[dict], n_train: int) -> list[SharedFit]:
    """MLP: learning_rate, momentum, nesterovs_momentum and power_t only steer solver="sgd" (its
    SGDOptimizer; adam and lbfgs never read them), so candidates differing only in those are one fit.
    And where tol, n_iter_no_change and max_iter only pick the stopping epoch
    (`_stops_without_steering`), candidates differing in them follow one training path: one run with
    the smallest tol and the largest n_iter_no_change and max_iter passes every member's stopping
    epoch last (a larger tol counts at least as many epochs without improvement), and each member's
    weights are copied at its own (`score_perceptron`)."""
    defaults = base.get_params(deep=False)

    def shape(params: dict) -> dict:
        merged = {**defaults, **params}
        ignored = (SGD_ONLY if merged["solver"] != "sgd" else ()) + (STOPPING if _stops_without_steering(merged) else ())
        return {k: v for k, v in params.items() if k not in ignored}

    plan = _share(candidates, base, (), shape=shape)
    for shared in plan:
        if len(shared.members) > 1 and _stops_without_steering({**defaults, **shared.params}):
            members = [{**defaults, **candidates[i]} for i in shared.members]
            shared.params.update(tol=min(m["tol"] for m in members),
                                 n_iter_no_change=max(m["n_iter_no_change"] for m in members),
                                 max_iter=max(m["max_iter"] for m in members))
    return plan


PLANNERS: dict[str, Callable[[Any, list[dict], int], list[SharedFit]]] = {
    "rf": plan_forests, "gb": plan_boosting, "knn": plan_neighbours, "lr": plan_linear, "mlp": plan_perceptron,
}


def planned_fits(algorithm: str, candidates: list[dict], n_train: int) -> list[SharedFit]:
    """The fits one CV fold of a search makes when every shortcut applies (`milo estimate`)."""
    return PLANNERS.get(algorithm, plan_each)(make_classifier(algorithm, seed=0), candidates, n_train)


WORK_SIZE = {"rf": "n_estimators", "gb": "max_iter"}  # what a fit's cost grows with (trees, stages)


@dataclass(frozen=True)
class FoldWork:
    """One CV fold of a search: what a plain search fits and what this one fits."""

    candidates: int  # = the plain search's fits per fold
    fits: int  # shared fits per fold when every shortcut applies
    share: float  # their work as a share of the plain search's (weighted by trees or stages)


def fold_work(algorithm: str, candidates: list[dict], n_train: int | None = None) -> FoldWork:
    """What `planned_fits` saves on one fold: `milo estimate`'s time and the metadata's fit counts.
    `n_train`: rows a fold fits on (k-NN's shortcut depends on it); None counts it as large."""
    if not candidates:
        return FoldWork(0, 0, 0.0)
    plan = planned_fits(algorithm, candidates, n_train if n_train is not None else 10**9)
    defaults = make_classifier(algorithm, seed=0).get_params(deep=False)
    size_of = WORK_SIZE.get(algorithm)

    def size(params: dict) -> float:
        value = {**defaults, **params}.get(size_of) if size_of else 1
        return float(value) if isinstance(value, (int, float)) else 1.0

    share = sum(size(f.params) for f in plan) / sum(size(c) for c in candidates)
    return FoldWork(len(candidates), len(plan), min(1.0, share))


def _fit_shared(fold: Fold, base, candidates: list[dict], shared: SharedFit, fit: Callable[[dict], Any],
                results: list) -> Any:
    """Run one shared fit; if it fails, score each of its candidates by its own fit, as the plain
    search would (a candidate that fails there too records NaN), and return None."""
    try:
        fold.fits += 1
        return fit(shared.params)
    except Exception:
        for i in shared.members:
            results[i] = _fit_and_score(fold, base, candidates[i])
        return None


def _shared_models(fold: Fold, base, candidates: list[dict], plan, results: list, *,
                   fit: Callable[[dict], Any] | None = None,
                   singles_alone: bool = True) -> Iterator[tuple[SharedFit, Any]]:
    """Each of `plan`'s shared fits that succeeded, with its model, for the caller to score its members.

    A group of one is fitted and scored the plain way when `singles_alone` (nothing to share);
    a failed shared fit has its candidates scored one by one (_fit_shared). `fit` defaults to the
    estimator's own fit on the fold."""
    if fit is None:
        def fit(params: dict):
            return _fit_estimator(base, params, fold.X_train, fold.y_train)
    for shared in plan(base, candidates, len(fold.y_train)):
        if singles_alone and len(shared.members) == 1:
            results[shared.members[0]] = _fit_and_score(fold, base, candidates[shared.members[0]])
            continue
        model = _fit_shared(fold, base, candidates, shared, fit, results)
        if model is not None:
            yield shared, model


# random forest ------------------------------------------------------------------------------

def _forest_shape(params: dict, base) -> tuple:
    """The parameters that change a forest's first k trees, other than n_estimators and max_depth."""
    merged = {**base.get_params(deep=False), **params}
    shape = {k: v for k, v in params.items() if k not in ("n_estimators", "max_depth")}
    split, leaf = merged["min_samples_split"], merged["min_samples_leaf"]
    if isinstance(split, int) and isinstance(leaf, int) and split <= 2 * leaf:
        shape.pop("min_samples_split", None)  # a node under 2 x min_samples_leaf rows is a leaf anyway
        shape["_split_irrelevant"] = True
    return shape


def _grow_forest(fold: Fold, base, params: dict) -> Trees:
    """The forest's trees: grown by engine/forest.py (same trees, less overhead) when it can."""
    from sklearn.base import clone

    merged = {**base.get_params(deep=False), **params}
    if supported(merged, fold.X_train):
        return grow(merged, fold.X_train, fold.y_train)
    forest = clone(base).set_params(**params).fit(fold.X_train, fold.y_train)
    return Trees([tree.tree_ for tree in forest.estimators_], forest.classes_)


def score_forests(fold: Fold, base, candidates: list[dict]) -> list[list[float]]:
    defaults = base.get_params(deep=False)
    results: list[list[float] | None] = [None] * len(candidates)
    for shared, forest in _shared_models(fold, base, candidates, plan_forests, results,
                                         fit=lambda p: _grow_forest(fold, base, p), singles_alone=False):
        # the forest's predict_proba: the trees' probabilities added one by one, divided by k
        running = np.cumsum(forest.probabilities(fold.X_valid), axis=0)
        reached = np.maximum.accumulate(forest.depths())
        capped: dict[int, list[int]] = {}  # depth -> candidates whose cap binds: one nested fit per depth
        for i in shared.members:
            member = {**defaults, **candidates[i]}
            k, depth = member["n_estimators"], member["max_depth"]
            if depth is not None and reached[k - 1] > depth:
                capped.setdefault(depth, []).append(i)
                continue
            proba = running[k - 1] / k
            predicted = forest.classes.take(np.argmax(proba, axis=1))
            ranking = proba[:, 1] if fold.n_classes == 2 else proba
            results[i] = fold.score(Responses(predicted, ranking))
        for same_depth in capped.values():  # all one depth now, so that cap is the deepest: nested again
            for i, scores in zip(same_depth, score_forests(fold, base, [candidates[i] for i in same_depth])):
                results[i] = scores
    return results


# gradient boosting --------------------------------------------------------------------------

def _fit_estimator(base, params: dict, X, y):
    from sklearn.base import clone

    return clone(base).set_params(**params).fit(X, y)


def score_boosting(fold: Fold, base, candidates: list[dict]) -> list[list[float]]:
    defaults = base.get_params(deep=False)
    results: list[list[float] | None] = [None] * len(candidates)
    for shared, model in _shared_models(fold, base, candidates, plan_boosting, results):
        wanted = {{**defaults, **candidates[i]}["max_iter"] for i in shared.members}
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
        for i in shared.members:
            stage = {**defaults, **candidates[i]}["max_iter"]
            if stage not in by_stage:  # fewer stages than asked (early stopping): its own fit
                results[i] = _fit_and_score(fold, base, candidates[i])
            else:
                results[i] = fold.score(by_stage[stage])
    return results


# logistic regression -----------------------------------------------------------------------

def score_linear(fold: Fold, base, candidates: list[dict]) -> list[list[float]]:
    defaults = base.get_params(deep=False)
    results: list[list[float] | None] = [None] * len(candidates)
    for shared, model in _shared_models(fold, base, candidates, plan_linear, results):
        used, largest = int(np.max(model.n_iter_)), shared.params["max_iter"]
        scores = fold.score(responses_of(model, fold.X_valid, fold.n_classes))
        for i in shared.members:
            asked = {**defaults, **candidates[i]}["max_iter"]
            converged_within = used < asked or asked == largest
            results[i] = scores if converged_within else _fit_and_score(fold, base, candidates[i])
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
    defaults = base.get_params(deep=False)
    results: list[list[float] | None] = [None] * len(candidates)
    for shared, model in _shared_models(fold, base, candidates, plan_neighbours, results):
        distances, neighbours = model.kneighbors(fold.X_valid)
        labels = model._y[neighbours]
        rows = np.arange(len(fold.y_valid))
        for i in shared.members:
            member = {**defaults, **candidates[i]}
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


# multi-layer perceptron ----------------------------------------------------------------------

@dataclass
class _Stopping:
    """One member's stopping rule, followed along the shared run, and its weights where it stopped."""

    tol: float
    n_iter_no_change: int
    max_iter: int
    count: int = 0  # MLPClassifier's _no_improvement_count, for this member's tol
    weights: tuple[list, list] | None = None  # (coefs_, intercepts_) at its stopping epoch


def _snapshotting_perceptron(base, params: dict, rules: list[_Stopping]):
    """The MLP of `params`, which also follows each rule's epoch counter (MLPClassifier's own
    no-improvement test, with the rule's tol) and copies the weights at the epoch that rule stops at
    (count > n_iter_no_change, or max_iter reached). It changes nothing in the run's own arithmetic
    and ends it once every rule has stopped."""
    class SnapshottingMLP(perceptron_class()):
        def _update_no_improvement_count(self, early_stopping, X, y, sample_weight):
            best_before = self.best_loss_  # the test compares with the best loss before this epoch
            super()._update_no_improvement_count(early_stopping, X, y, sample_weight)
            loss = self.loss_curve_[-1]
            for rule in rules:
                if rule.weights is not None:
                    continue
                rule.count = rule.count + 1 if loss > best_before - rule.tol else 0
                if rule.count > rule.n_iter_no_change or self.n_iter_ == rule.max_iter:
                    rule.weights = ([c.copy() for c in self.coefs_], [b.copy() for b in self.intercepts_])
            if all(rule.weights is not None for rule in rules):
                self._no_improvement_count = self.n_iter_no_change + 1  # nothing left to learn: stop here

    return SnapshottingMLP(**{**base.get_params(deep=False), **params})


def _stacks(defaults: dict, candidates: list[dict]) -> list[list[int]]:
    """Candidates that start from the same weights and see the same mini-batches (engine/perceptron_stack.py):
    adam runs equal in everything but alpha and when they stop (sgd's settings adam never reads).
    A stack of one network is trained that way too: it skips more overhead than LeanMLP does."""
    groups: dict[tuple, list[int]] = {}
    for i, params in enumerate(candidates):
        merged = {**defaults, **params}
        if stackable(merged):
            shape = {k: v for k, v in merged.items() if k not in STACK_VARYING + SGD_ONLY}
            groups.setdefault(_frozen(shape), []).append(i)
    return list(groups.values())


def _score_stack(fold: Fold, defaults: dict, candidates: list[dict], members: list[int], results: list) -> None:
    """Train one stack's candidates together and score each; if the training raises (bad data), leave
    them unscored, for one run each (which fails or scores as the plain search's fits would)."""
    try:
        settings = [{**defaults, **candidates[i]} for i in members]
        run = train_stacked(settings[0], fold.X_train, fold.y_train, settings)
    except Exception:
        return
    fold.fits += run.trajectories
    for n, i in enumerate(members):
        try:  # non-finite weights: MLPClassifier.fit raises, the plain search records NaN
            results[i] = fold.score(responses_of(run.fitted(n), fold.X_valid, fold.n_classes)) \
                if run.members[n].finite() else fold.failed()
        except Exception:
            results[i] = fold.failed()


def score_perceptron(fold: Fold, base, candidates: list[dict]) -> list[list[float]]:
    """Stacks of adam runs trained together where that trains exactly as MLPClassifier (checked once per
    process: stacking_is_exact); every other candidate by _score_runs."""
    defaults = base.get_params(deep=False)
    results: list[list[float] | None] = [None] * len(candidates)
    if stacking_is_exact():
        for members in _stacks(defaults, candidates):
            _score_stack(fold, defaults, candidates, members, results)
    rest = [i for i, r in enumerate(results) if r is None]
    for i, scores in zip(rest, _score_runs(fold, base, [candidates[i] for i in rest])):
        results[i] = scores
    return results


def _score_runs(fold: Fold, base, candidates: list[dict]) -> list[list[float]]:
    """One training run per plan_perceptron fit, each member's weights copied at its own stopping epoch."""
    defaults = base.get_params(deep=False)
    base = perceptron_class()(**defaults)  # trains as MLPClassifier does, without its per-batch overhead
    results: list[list[float] | None] = [None] * len(candidates)
    if not candidates:
        return results
    plan = plan_perceptron(base, candidates, len(fold.y_train))
    rules: dict[int, list[_Stopping]] = {}  # id of a shared fit's params -> its members' stopping rules
    for shared in plan:
        if _stops_without_steering({**defaults, **shared.params}):
            members = [{**defaults, **candidates[i]} for i in shared.members]
            rules[id(shared.params)] = [_Stopping(m["tol"], m["n_iter_no_change"], m["max_iter"]) for m in members]

    def fit(params: dict):
        if id(params) not in rules:  # its members are the same fit (plan_perceptron's sgd-only sharing)
            return _fit_estimator(base, params, fold.X_train, fold.y_train)
        return _snapshotting_perceptron(base, params, rules[id(params)]).fit(fold.X_train, fold.y_train)

    for shared, model in _shared_models(fold, base, candidates, lambda *_: plan, results, fit=fit):
        for n, i in enumerate(shared.members):
            if id(shared.params) in rules:
                weights = rules[id(shared.params)][n].weights
                if weights is None:  # cannot happen (the run stops after its last member); refit if it does
                    results[i] = _fit_and_score(fold, base, candidates[i])
                    continue
                model.coefs_, model.intercepts_ = weights
            results[i] = fold.score(responses_of(model, fold.X_valid, fold.n_classes))
    return results


FOLD_STRATEGIES: dict[str, Callable[[Fold, Any, list[dict]], list[list[float]]]] = {
    "rf": score_forests, "gb": score_boosting, "knn": score_neighbours, "lr": score_linear,
    "mlp": score_perceptron,
}


# -- the search ------------------------------------------------------------------------------

@dataclass
class SearchResult:
    candidates: list[dict]  # unprefixed parameter sets, in the plain search's order
    scores: dict[str, np.ndarray]  # scorer -> (candidates, folds)
    fits: int  # estimator fits made in CV (a plain search makes candidates x folds)
    cache_hits: int = 0  # fold scores and selector importances another pipeline had computed (foldcache)
    ranks: dict[str, np.ndarray] = field(default_factory=dict)

    def mean(self, scorer: str) -> np.ndarray:
        # GridSearchCV averages a C-ordered (candidates, folds) array; numpy adds a strided row in
        # another order, so a mean could differ in the last bit and break a tie the other way.
        return np.average(np.ascontiguousarray(self.scores[scorer]), axis=1)

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


# Algorithms whose fold scores another pipeline (another scaler) can serve, through the fold cache.
SCORES_SHARED_ACROSS_PIPELINES = frozenset({"gb"})
# Selectors that keep some of the scaled columns as they are: a per-column scaler then changes
# nothing gradient boosting's binning sees (PCA mixes the columns, so its output depends on the scaler).
COLUMN_KEEPING_SELECTORS = frozenset({"none", "select", "rf"})


def expects_shared_scores(spec: PipelineSpec) -> bool:
    """Does `spec` usually find its fold scores computed by the same search under another scaler?
    (Whether it does is decided fold by fold by the cache's exact keys; this is for the estimate.)"""
    return spec.algorithm in SCORES_SHARED_ACROSS_PIPELINES and \
        spec.selector.partition("-")[0] in COLUMN_KEEPING_SELECTORS


def _score_fold(spec: PipelineSpec, candidates: list[dict], X, y, train, valid, scorers, n_classes, seed,
                cache: FoldCache | None = None):
    """One fold's (candidates x scorers) scores, the estimator fits made, and the cache hits."""
    hits_before = cache.hits if cache is not None else 0  # in-process (n_jobs=1) the cache object is shared
    X_train, X_valid = preprocess(spec, X[train], y[train], X[valid], seed, cache)
    fold = Fold(X_train, y[train], X_valid, y[valid], n_classes, scorers)
    base = make_classifier(spec.algorithm, seed)
    scores = None
    if cache is not None and spec.algorithm in SCORES_SHARED_ACROSS_PIPELINES:
        scores = score_boosting_shared(fold, base, candidates, cache)
    if scores is None:
        scores = FOLD_STRATEGIES.get(spec.algorithm, score_each)(fold, base, candidates)
    return scores, fold.fits, (cache.hits - hits_before) if cache is not None else 0


# -- gradient boosting across pipelines (engine/foldcache.py, engine/treekeys.py) -----------------

@dataclass
class _Answer:
    index: int  # into _RecordingFold.answers


@dataclass
class _RecordingFold(Fold):
    """A fold whose `score` keeps each model's responses (to store them per validation row)."""

    answers: list[Responses] = field(default_factory=list)

    def score(self, r: Responses):
        self.answers.append(r)
        return _Answer(len(self.answers) - 1)


def score_boosting_shared(fold: Fold, base, candidates: list[dict], cache: FoldCache) -> list[list[float]] | None:
    """score_boosting, with the models' answers shared between pipelines whose fold, binned as
    HistGradientBoosting bins it, is the same (engine/treekeys.py): keyed by the binned training
    rows, stored per binned validation row. None when the fold cannot be keyed (then it is scored
    as usual)."""
    binned = boosting_binned(base, candidates, fold.X_train, fold.y_train, fold.X_valid)
    if binned is None:
        return None
    key = content_key(*boosting_fit_parts(base, candidates, binned, fold.y_train, fold.n_classes))
    classes = np.unique(fold.y_train)
    width = 1 if fold.n_classes == 2 else len(classes)  # ranking columns: raw score, or probabilities
    n_features, per_candidate = binned.train.shape[1], 1 + width
    stored = cache.get(key, count=False)  # a hit only if it answers every validation row
    if stored is not None and (stored.ndim != 2 or stored.shape[1] != n_features + per_candidate * len(candidates)):
        stored = None
    where = None if stored is None else _rows_in(stored[:, :n_features], binned.rows(fold.X_valid))
    cache.used(where is not None)
    if where is not None:  # every validation row was answered by these very models
        return [fold.score(_decoded(stored[where, n_features + c * per_candidate:][:, :per_candidate], classes))
                for c in range(len(candidates))]
    X_rows = with_neighbour_rows(fold.X_valid, binned)
    recording = _RecordingFold(fold.X_train, fold.y_train, X_rows, fold.y_valid, fold.n_classes, fold.scorers)
    results = score_boosting(recording, base, candidates)
    fold.fits += recording.fits
    n = len(fold.y_valid)
    scores, encoded = [], []
    for result in results:
        if not isinstance(result, _Answer):  # the candidate failed: NaN, as the plain search records
            scores.append(result)
            encoded = None
            continue
        answer = recording.answers[result.index]
        scores.append(fold.score(Responses(answer.predicted[:n], answer.ranking[:n])))
        if encoded is not None and answer.ranking is not None:
            encoded.append(_encoded(answer, classes, width))
        else:
            encoded = None
    if encoded is not None:
        block = np.hstack([binned.rows(X_rows).astype(np.float64), *encoded])
        cache.put(key, block if stored is None else np.vstack([stored, block]))
    return scores


def _rows_in(known: np.ndarray, rows: np.ndarray) -> np.ndarray | None:
    """Index into `known` of each of `rows` (exact bins), or None if one is not there."""
    first = {}
    for i, row in enumerate(known.astype(np.uint8)):
        first.setdefault(row.tobytes(), i)
    where = [first.get(row.tobytes()) for row in rows.astype(np.uint8)]
    return None if any(i is None for i in where) else np.array(where, dtype=np.intp)


def _encoded(answer: Responses, classes: np.ndarray, width: int) -> np.ndarray:
    """(rows, 1 + width): the predicted class's index, then the ranking (raw score or probabilities)."""
    predicted = np.searchsorted(classes, answer.predicted).astype(np.float64)
    ranking = np.asarray(answer.ranking, dtype=np.float64).reshape(len(predicted), width)
    return np.column_stack([predicted, ranking])


def _decoded(block: np.ndarray, classes: np.ndarray) -> Responses:
    ranking = block[:, 1:]
    return Responses(classes[block[:, 0].astype(np.intp)], ranking[:, 0] if ranking.shape[1] == 1 else ranking)


def run_search(spec: PipelineSpec, space: SearchSpace, X: np.ndarray, y: np.ndarray, *, scorers: list[str],
               cv_folds: int, seed: int, n_jobs: int = 1, cache: FoldCache | None = None) -> SearchResult:
    """Score every candidate of `spec`'s search with stratified CV, sharing work across candidates
    (and, with `cache`, across the pipelines of a run: engine/foldcache.py, engine/treekeys.py)."""
    import warnings

    from joblib import Parallel, delayed
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    X, y = np.asarray(X), np.asarray(y)
    n_classes = len(np.unique(y))
    candidates = candidate_sets(space, spec.algorithm, spec.searcher, min_class_count(y))
    folds = list(StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=seed).split(X, y))
    per_fold = Parallel(n_jobs=n_jobs)(
        delayed(_score_fold)(spec, candidates, X, y, train, valid, scorers, n_classes, seed, cache)
        for train, valid in folds)
    table = np.array([scores for scores, _, _ in per_fold], dtype=float)  # (folds, candidates, scorers)
    result = SearchResult(candidates, {s: table[:, :, j].T for j, s in enumerate(scorers)},
                          fits=sum(f for _, f, _ in per_fold), cache_hits=sum(h for _, _, h in per_fold))
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
