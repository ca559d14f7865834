"""What a tree model can see of a CV fold, as a content key: equal keys, equal results, by construction.

Pipelines that differ only in their scaler (none, std, minmax) hand a tree model data that
differ in value but, mostly, not in anything the model reads. These keys capture exactly what
it reads, so engine/foldcache.py can let one pipeline's fold result serve the others; when the
keys differ (rounding put two values in another order, a gap fell under scikit-learn's tie
tolerance...), nothing is shared and each computes its own. Nothing here claims an invariance
the key does not check.

Gradient boosting (HistGradientBoostingClassifier, scikit-learn 1.9, ensemble/_hist_gradient_boosting):
- fit() bins the training rows with a _BinMapper fitted on them (`_bin_data`: fit_transform) and
  from then on reads only the binned matrix, y, the mapper's `n_bins_non_missing_` and
  `missing_values_bin_idx_` (fixed by max_bins), and its seed (feature subsampling); raw values
  are used only to choose the bin thresholds (including the row subsample above 2e5 rows, which
  the binned matrix then reflects) and, with early stopping, a raw train/validation split:
  we never key a fit with early stopping, categorical features, or candidates that change the
  binning (max_bins, categorical_features, early_stopping);
- predict() compares raw values with the thresholds the trees keep (`x <= bin_thresholds_[f][b]`,
  _predictor.pyx), which is exactly "bin(x) <= b" for the binning of `_map_to_bins` (the count of
  thresholds strictly below x; a split on the last non-missing bin has threshold inf, which every
  finite value satisfies in both forms). So a validation row's answers are a function of its row
  binned with the training mapper: the models are keyed by the binned training rows, and their
  answers are stored per binned validation row (a value on a threshold may bin either way under
  another scaler's rounding, so the rows with such values are also answered with them flipped).
- the sum of gradients is reduced in parallel (sum_parallel), so the OpenMP thread count goes
  into the key too.
The binning is HistGradientBoosting's own: one fit with max_iter=1, then its `_bin_mapper`.

Random forest trees (tree/_splitter.pyx node_split_best, tree/_partitioner.pyx, 1.9): the trees
are grown on float32 values; the splitter reads them only through comparisons (sorting, a
comparison-only introsort) and through FEATURE_THRESHOLD (1e-7, float32): consecutive sorted
values v[p] <= v[p-1] + 1e-7 are a tie, and a node whose max <= min + 1e-7 is constant. Thresholds
(v[p-1]/2 + v[p]/2, float64) are only stored and used to partition the node's own rows, which fall
on the same sides as the positions say. So when no two distinct float32 values of a column are
within the tolerance (checked in float32 and in float64, whichever way C evaluates it), the
trees' structure, leaf values and impurity decreases, hence the forest's feature_importances_,
are a function of each column's ranks among its distinct values, y and the parameters.

What is *not* a function of those ranks: a tree's answer for a validation value between two
training values. A node splits at the midpoint of the two values *it* holds, not of the two
neighbours in the whole column, so a validation value's side depends on which training values
the node still has (train 0, 1, 10; a node with only 0 and 10 splits at 5, and 5.2 goes right,
though it lies below the column's 1|10 midpoint 5.5). A forest's fold *scores* would need every
pairwise midpoint in the key; only the importance forest (training rows only) is keyed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

FEATURE_THRESHOLD = np.float32(1e-7)  # sklearn/tree/_partitioner.pxd
BINNING_PARAMETERS = ("max_bins", "categorical_features", "early_stopping")
KEY_VERSION = 1  # bump when what a key covers changes: old entries then simply miss


def _params(estimator) -> list[tuple[str, str]]:
    return sorted((name, repr(value)) for name, value in estimator.get_params(deep=False).items())


def _candidates(candidates: list[dict]) -> list[list[tuple[str, str]]]:
    return [sorted((name, repr(value)) for name, value in params.items()) for params in candidates]


# -- gradient boosting --------------------------------------------------------------------------

@dataclass(frozen=True)
class Binned:
    """A fold as HistGradientBoosting sees it, binned by its own mapper fitted on the training rows."""

    train: np.ndarray  # uint8 (rows, features)
    bins: np.ndarray  # n_bins_non_missing_ per feature
    thresholds: list  # bin_thresholds_ per feature: x goes to bin "count of thresholds below x"
    threads: int  # OpenMP threads: sums of gradients are reduced in parallel
    mapper: object  # the _BinMapper, to bin validation rows

    def rows(self, X: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.mapper.transform(X))


def boosting_fit_parts(base, candidates: list[dict], binned: Binned, y_train, n_classes: int) -> tuple:
    """Everything the fitted boosting models of one fold depend on (their answers for a validation
    row are then a function of that row's bins)."""
    return ("gb-fold-models", KEY_VERSION, _params(base), _candidates(candidates), n_classes, binned.threads,
            binned.bins, binned.train, np.asarray(y_train))


def boosting_binned(base, candidates: list[dict], X_train, y_train, X_valid) -> Binned | None:
    """The fold binned with the model's own binning, or None when its fit reads more than that."""
    from sklearn.base import clone

    settings = base.get_params(deep=False)
    if settings.get("early_stopping") is not False or any(p in c for c in candidates for p in BINNING_PARAMETERS):
        return None
    if not (np.isfinite(X_train).all() and np.isfinite(X_valid).all()) or not binning_is_the_whole_story():
        return None
    try:
        from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

        probe = clone(base).set_params(max_iter=1).fit(X_train, y_train)
        if probe.is_categorical_ is not None or probe.do_early_stopping_:
            return None
        mapper = probe._bin_mapper
        return Binned(np.ascontiguousarray(mapper.transform(X_train)), np.asarray(mapper.n_bins_non_missing_),
                      [np.asarray(t, dtype=np.float64) for t in mapper.bin_thresholds_],
                      _openmp_effective_n_threads(), mapper)
    except Exception:  # a private name moved in another scikit-learn: no sharing, same results
        return None


NEAR_THRESHOLD = 1e-7  # relative to the column's scale: a value this close to a bin threshold may bin
#                        either side of it under another scaler's rounding
MOST_NEAR_CELLS = 4  # per row: 2**4 variants at most (3 missed 2 of 20 folds on wine and on breast cancer)


def with_neighbour_rows(X_valid: np.ndarray, binned: Binned) -> np.ndarray:
    """X_valid, then for each row with values on (or within rounding of) a bin threshold, the same
    row with those values on the threshold's other side: what another scaler's rounding may make
    of it. Answering those rows too lets a pipeline whose validation rows bin the other way use
    these answers. (Only an optimisation: rows are matched by their exact bins.)"""
    flips: list[list[tuple[int, float]]] = [[] for _ in range(len(X_valid))]  # per row: (feature, value)
    for f, thresholds in enumerate(binned.thresholds):
        if len(thresholds) == 0:
            continue
        values = X_valid[:, f]
        tolerance = NEAR_THRESHOLD * max(float(np.abs(values).max()), float(np.abs(thresholds).max()))
        below = np.searchsorted(thresholds, values)  # thresholds strictly below: the bin
        above = thresholds[np.minimum(below, len(thresholds) - 1)]
        under = thresholds[np.maximum(below - 1, 0)]
        up = (below < len(thresholds)) & (above - values <= tolerance)
        down = ~up & (below > 0) & (values - under <= tolerance)
        for i in np.flatnonzero(up):
            flips[i].append((f, float(np.nextafter(above[i], np.inf))))  # one bin up
        for i in np.flatnonzero(down):
            flips[i].append((f, float(under[i])))  # one bin down
    extra = []
    for row, near in zip(X_valid, flips):
        near = near[:MOST_NEAR_CELLS]
        for mask in range(1, 2 ** len(near)):
            variant = row.copy()
            for bit, (f, value) in enumerate(near):
                if mask >> bit & 1:
                    variant[f] = value
            extra.append(variant)
    return np.vstack([X_valid, *extra]) if extra else X_valid


@cache
def binning_is_the_whole_story() -> bool:
    """Self-check on this scikit-learn, once per process: two data sets whose binned matrices are
    equal (one a monotone transform of the other) give equal boosting models' answers."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    draws = np.random.RandomState(5)
    X = draws.normal(size=(80, 4))
    y = (X[:, 0] + draws.normal(scale=0.7, size=80) > 0).astype(int) + (X[:, 1] > 0.8)
    # validation values taken from the training values, so any monotone map keeps their bins
    X_valid = np.column_stack([draws.choice(X[:, j], 30) for j in range(X.shape[1])])
    stretched, stretched_valid = np.exp(X) * 3.0, np.exp(X_valid) * 3.0
    try:
        answers = []
        for train, valid in ((X, X_valid), (stretched, stretched_valid)):
            model = HistGradientBoostingClassifier(max_iter=8, max_depth=3, early_stopping=False, random_state=1)
            model.fit(train, y)
            binned = model._bin_mapper.transform(train), model._bin_mapper.transform(valid)
            answers.append((binned, model.predict_proba(valid)))
    except Exception:
        return False
    (bins_a, proba_a), (bins_b, proba_b) = answers
    same_bins = all(np.array_equal(a, b) for a, b in zip(bins_a, bins_b))
    return same_bins and np.array_equal(proba_a, proba_b)


# -- random forest trees ------------------------------------------------------------------------

def forest_codes(X: np.ndarray) -> np.ndarray | None:
    """Each value's rank among its column's distinct float32 values (what a scikit-learn tree can
    see of the training rows), or None when two distinct values of a column lie within the
    splitter's tie tolerance, or a value is not finite."""
    X32 = np.asarray(X, dtype=np.float32)
    if X32.ndim != 2 or not np.isfinite(X32).all():
        return None
    codes = np.empty(X32.shape, dtype=np.int32)
    for column in range(X32.shape[1]):
        values = X32[:, column]
        distinct = np.unique(values)
        if distinct.size > 1 and not _apart(distinct):
            return None
        codes[:, column] = np.searchsorted(distinct, values)
    return codes


def _apart(distinct: np.ndarray) -> bool:
    """Does the splitter tell every two consecutive distinct values apart (`next > prev + 1e-7`),
    in float32 arithmetic as the Cython code runs and in float64 should a compiler widen it?"""
    lower, upper = distinct[:-1], distinct[1:]
    in_float32 = bool((upper > lower + FEATURE_THRESHOLD).all())
    in_float64 = bool((upper.astype(np.float64) > lower.astype(np.float64) + float(FEATURE_THRESHOLD)).all())
    return in_float32 and in_float64


def importance_forest_parts(forest, X_train, y_train) -> tuple | None:
    """Everything the importances of `forest` (an unfitted RandomForestClassifier) fitted on these
    rows depend on, or None (then it is simply fitted)."""
    codes = forest_codes(X_train)
    if codes is None:
        return None
    return ("rf-importances", KEY_VERSION, _params(forest), codes, np.asarray(y_train))


def select_by_importance(importances: np.ndarray, max_features: int) -> np.ndarray:
    """SelectFromModel(max_features=k, threshold=-inf)'s support mask: the k largest |importance|,
    ties taken in column order (its stable argsort of the negated scores)."""
    scores = np.abs(importances)
    mask = np.zeros(scores.shape, dtype=bool)
    mask[np.argsort(-scores, kind="mergesort")[:max_features]] = True
    return mask
