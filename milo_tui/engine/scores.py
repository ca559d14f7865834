"""Accuracy and macro F1 from the labels, computed as scikit-learn's accuracy_score and f1_score
compute them, without their per-call checks.

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
Only integer labels take this path (the search's class codes); anything else goes to scikit-learn.
tests/unit/test_scores.py compares both with scikit-learn for equality on generated labels.
"""

from __future__ import annotations

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
