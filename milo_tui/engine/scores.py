"""Accuracy, macro F1 and ROC AUC, computed as scikit-learn's accuracy_score, f1_score and
roc_auc_score compute them, without their per-call checks.

Why: the search scores every candidate on every fold (MILO-ML's full space: ~400,000 times), and on
a fold of ~30 rows scikit-learn's metric functions spend nearly all their time checking and
classifying their inputs (type_of_target, unique_labels, a LabelEncoder, parameter validation):
milliseconds per call, more than a k-NN, SVM or logistic-regression fit's share (profiled in
docs/PERFORMANCE.md, "Search").

The arithmetic is theirs (scikit-learn 1.9, metrics/_classification.py), so the values are equal,
not merely close (a candidate's mean decides ties in the ranking):
- accuracy_score: numpy.average of `y_true == y_pred` (utils/_array_api.py _average);
- f1_score(average="macro"): per label of the sorted union of both label sets, the counts tp, true
  and predicted; f = (1 + 1) * tp / (1 * true + predicted) in float64 (precision_recall_fscore_support,
  _prf_divide; the denominator is never 0 for a label that occurs), then numpy.nanmean (_nanmean).
- roc_auc_score(multi_class="ovr"), as the search calls it: see `roc_auc` below.
Only integer labels take this path (the search's class codes); anything else goes to scikit-learn.
tests/unit/test_scores.py compares all three with scikit-learn for equality on generated data.
"""

from __future__ import annotations

from functools import cache

import numpy as np


def _integer_labels(*arrays: np.ndarray) -> bool:
    return all(a.ndim == 1 and a.dtype.kind in "iub" for a in arrays)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if not _integer_labels(y_true, y_pred) or len(y_true) != len(y_pred) or not len(y_true):
        from sklearn.metrics import accuracy_score

        return float(accuracy_score(y_true, y_pred))
    return float(np.average(y_true == y_pred))


def f1_macro(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if not _integer_labels(y_true, y_pred) or len(y_true) != len(y_pred) or not len(y_true):
        from sklearn.metrics import f1_score

        return float(f1_score(y_true, y_pred, average="macro"))
    labels, codes = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    true, pred = codes[:len(y_true)], codes[len(y_true):]
    tp = np.bincount(true[true == pred], minlength=len(labels)).astype(np.float64)
    true_sum = np.bincount(true, minlength=len(labels)).astype(np.float64)
    pred_sum = np.bincount(pred, minlength=len(labels)).astype(np.float64)
    return float(np.nanmean((1 + 1) * tp / (1 * true_sum + pred_sum)))


# -- ROC AUC ---------------------------------------------------------------------------------------
#
# scikit-learn 1.9's roc_auc_score (metrics/_ranking.py) on one validation fold, step by step:
# - binary: the labels are binarised (the larger label is positive) and roc_curve is integrated by
#   auc(); multi-class with multi_class="ovr" and average="macro": the same binary AUC of each class
#   against the rest (column c of the probabilities for the c-th smallest label), then numpy.average;
# - roc_curve: scores sorted descending, one threshold per distinct score (the last row of each run
#   of ties), true positives as a float64 cumulative sum, false positives = 1 + index - tps; points
#   collinear with both neighbours dropped (drop_intermediate), (0, 0) prepended, each divided by
#   its last value;
# - auc: the trapezoid sum(diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0) (scipy's trapezoid; fpr never
#   decreases, so auc's direction is always +1).
# The counts are exact integers in float64, so the only rounding is in the division and the
# trapezoid sum, done here with the same operations on the same arrays: equal values, not close ones
# (dropping a collinear point changes no area but does change the order of the float sum).
# Within a run of tied scores the sort order does not matter: only each run's last cumulative sum
# is read.
# Anything else (one class in the fold, NaN or infinite scores, probabilities that do not sum to 1,
# a class missing from the fold, labels that are not integers) goes to roc_auc_score itself, so it
# warns, returns NaN or raises exactly as before.
# These are scikit-learn's internals and milo accepts 1.4 and up, so the first call in a process
# compares this arithmetic with the installed roc_auc_score on fixed arrays (`_agrees_with_sklearn`)
# and, if any value differs, every call goes to scikit-learn.


def _binary_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """roc_auc_score of a binary fold where both classes occur and every score is finite."""
    order = np.argsort(scores, kind="stable")[::-1]
    sorted_scores, sorted_positive = scores[order], positive[order]
    last_of_each_score = np.concatenate([np.nonzero(np.diff(sorted_scores))[0], [len(scores) - 1]])
    tps = np.cumsum(sorted_positive, dtype=np.float64)[last_of_each_score]
    fps = 1 + last_of_each_score.astype(np.float64) - tps
    if len(fps) > 2:  # roc_curve's drop_intermediate: keep the ends and every corner
        corner = np.logical_or(np.diff(fps, 2), np.diff(tps, 2))
        keep = np.concatenate([[True], corner, [True]])
        fps, tps = fps[keep], tps[keep]
    fps, tps = np.concatenate([[0.0], fps]), np.concatenate([[0.0], tps])
    fpr, tpr = fps / fps[-1], tps / tps[-1]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0, dtype=np.float64))


def _probabilities(y_score: np.ndarray) -> bool:
    """roc_auc_score's multi-class check, np.allclose(1, row sums), with a cheap sufficient test first:
    a row sum within allclose's absolute tolerance of 1 passes it whatever the relative one adds."""
    sums = y_score.sum(axis=1)
    return bool(np.all(np.abs(sums - 1) <= 1e-8)) or np.allclose(1, sums)


def _fast_roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float | None:
    """The AUC by `_binary_auc` in the common case, None where scikit-learn must decide."""
    if not (_integer_labels(y_true) and y_score.dtype in (np.float32, np.float64) and y_score.ndim in (1, 2)
            and len(y_true) and y_score.shape[0] == len(y_true) and np.isfinite(y_score).all()):
        return None
    classes = np.unique(y_true)
    if y_score.ndim == 1 and len(classes) == 2:
        return _binary_auc(y_true == classes[1], y_score)
    if y_score.ndim == 2 and len(classes) == y_score.shape[1] > 2 and _probabilities(y_score):
        per_class = np.zeros(len(classes))
        for c, label in enumerate(classes):
            per_class[c] = _binary_auc(y_true == label, np.ascontiguousarray(y_score[:, c]))
        return float(np.average(per_class))
    return None


def _sklearn_roc_auc(y_true, y_score) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y_true, y_score, multi_class="ovr"))


def _self_check_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    """Small folds with ties, collinear runs, float32 and probabilities, binary and multi-class."""
    rng = np.random.RandomState(0)
    cases = []
    for rows in (2, 7, 31, 60):
        y = rng.randint(2, size=rows)
        y[:2] = [0, 1]
        cases.append((y, rng.normal(size=rows)))
        cases.append((y, rng.randint(4, size=rows).astype(np.float64)))  # few distinct values: ties
        cases.append((y, rng.uniform(size=rows).astype(np.float32)))
    for classes in (3, 5):
        y = rng.randint(classes, size=40)
        y[:classes] = np.arange(classes)
        proba = rng.dirichlet(np.ones(classes), size=40)
        cases.append((y, proba))
        cases.append((y, np.round(proba, 1) / np.round(proba, 1).sum(axis=1, keepdims=True)))
    return cases


@cache
def _agrees_with_sklearn() -> bool:
    """Does `_fast_roc_auc` give the installed scikit-learn's values, bit for bit?"""
    for y_true, y_score in _self_check_cases():
        fast = _fast_roc_auc(y_true, y_score)
        if fast is None or fast != _sklearn_roc_auc(y_true, y_score):
            return False
    return True


def roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """scikit-learn's roc_auc_score(y_true, y_score, multi_class="ovr"): binary scores (1-D) or
    multi-class probabilities (2-D, one column per label in sorted order), macro-averaged OvR."""
    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    fast = _fast_roc_auc(y_true, y_score) if _agrees_with_sklearn() else None
    if fast is not None:
        return fast
    return _sklearn_roc_auc(y_true, y_score)
