"""Classification metrics for report.csv and class_results/: point values, exact and DeLong CIs, curves.

Plain functions over numpy arrays. Every undefined quantity (a zero denominator, a class absent from the
test set, no scores) comes back as nan rather than an exception, because one degenerate model must never
abort a run of thousands. Values are full-precision Python floats/ints (the CSV writer formats them).

Conventions:
- Binary: the positive class is 1; ``y_score`` is the predicted probability of class 1 (any monotone
  score works for the AUC, but the Brier score and calibration curve are only defined for [0, 1]).
- Multi-class macro averages skip classes whose per-class value is undefined (sklearn's
  ``zero_division=np.nan`` convention) and are nan only when no class is defined.
- MCC with a zero denominator (e.g. every prediction the same class) is nan here; sklearn returns 0.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import beta, norm, rankdata

# report.csv metric columns, in order. Each *_95_ci is split into two numeric columns (no reprs in cells).
METRIC_KEYS: tuple[str, ...] = (
    "accuracy",
    "acc_95_ci_low",
    "acc_95_ci_high",
    "mcc",
    "avg_sn_sp",
    "roc_auc",
    "roc_auc_95_ci_low",
    "roc_auc_95_ci_high",
    "f1",
    "sensitivity",
    "sn_95_ci_low",
    "sn_95_ci_high",
    "specificity",
    "sp_95_ci_low",
    "sp_95_ci_high",
    "prevalence",
    "ppv",
    "npv",
    "tn",
    "tp",
    "fn",
    "fp",
    "brier_score",
)

NAN = float("nan")
MAX_CURVE_POINTS = 200
CALIBRATION_BINS = 10
CURVE_DIGITS = 6


# ---------------------------------------------------------------------------------------------------------
# Small numeric helpers
# ---------------------------------------------------------------------------------------------------------


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, nan when the denominator is zero."""
    return float(numerator) / float(denominator) if denominator else NAN


def _nanmean(values: list[float]) -> float:
    """Mean of the defined values; nan when none is defined (without numpy's empty-slice warning)."""
    defined = [value for value in values if not math.isnan(value)]
    return float(sum(defined) / len(defined)) if defined else NAN


def _as_labels(values: np.ndarray, name: str) -> np.ndarray:
    """A 1-D integer label array; bools are accepted as 0/1."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if array.dtype == bool:
        return array.astype(np.int64)
    if array.size and not np.all(np.equal(np.mod(array, 1), 0)):
        raise ValueError(f"{name} must hold integer class labels")
    return array.astype(np.int64)


def _as_binary(values: np.ndarray, name: str) -> np.ndarray:
    labels = _as_labels(values, name)
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0 and 1 (positive class = 1)")
    return labels


def _check_same_length(**arrays: np.ndarray | None) -> None:
    lengths = {name: len(array) for name, array in arrays.items() if array is not None}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"arrays differ in length: {lengths}")


def _mcc_from_confusion(confusion: np.ndarray) -> float:
    """Matthews correlation for any number of classes (Gorodkin's R_K); nan when undefined."""
    confusion = confusion.astype(np.float64)
    n = confusion.sum()
    correct = np.trace(confusion)
    true_totals = confusion.sum(axis=1)
    predicted_totals = confusion.sum(axis=0)
    covariance = correct * n - true_totals @ predicted_totals
    spread_true = n * n - true_totals @ true_totals
    spread_predicted = n * n - predicted_totals @ predicted_totals
    denominator = math.sqrt(spread_true * spread_predicted)
    return float(covariance / denominator) if denominator > 0 else NAN


def _confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows = true class, columns = predicted class."""
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


# ---------------------------------------------------------------------------------------------------------
# Confidence intervals
# ---------------------------------------------------------------------------------------------------------


def clopper_pearson(successes: int, trials: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided 1-alpha interval for a binomial proportion; (nan, nan) with no trials."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return NAN, NAN
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(beta.ppf(1 - alpha / 2, successes + 1, trials - successes))
    return low, high


def _structural_components(positive_scores: np.ndarray, negative_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's placement values via midranks (Sun & Xu 2014), O((m+n) log(m+n)).

    v10[i] = share of negatives ranked below positive i (ties count 1/2);
    v01[j] = share of positives ranked above negative j (ties count 1/2).
    The AUC is the mean of either array.
    """
    m, n = len(positive_scores), len(negative_scores)
    combined_ranks = rankdata(np.concatenate([positive_scores, negative_scores]))  # midranks
    positive_ranks = rankdata(positive_scores)
    negative_ranks = rankdata(negative_scores)
    v10 = (combined_ranks[:m] - positive_ranks) / n
    v01 = 1.0 - (combined_ranks[m:] - negative_ranks) / m
    return v10, v01


def _normal_interval(estimate: float, variance: float, alpha: float) -> tuple[float, float]:
    if math.isnan(variance):
        return NAN, NAN
    half_width = float(norm.ppf(1 - alpha / 2)) * math.sqrt(max(variance, 0.0))
    return max(0.0, estimate - half_width), min(1.0, estimate + half_width)


def delong_roc_auc_ci(y_true: np.ndarray, scores: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float]:
    """(auc, low, high): ROC AUC with DeLong's asymptotic normal 1-alpha interval, clipped to [0, 1].

    All nan when a class is absent or a score is nan; the interval alone is nan when a class has a
    single sample (its placement variance is undefined).
    """
    labels = _as_binary(y_true, "y_true")
    scores = np.asarray(scores, dtype=np.float64)
    _check_same_length(y_true=labels, scores=scores)
    positives, negatives = scores[labels == 1], scores[labels == 0]
    if len(positives) == 0 or len(negatives) == 0 or np.isnan(scores).any():
        return NAN, NAN, NAN
    v10, v01 = _structural_components(positives, negatives)
    auc = float(v10.mean())
    if len(positives) < 2 or len(negatives) < 2:
        return auc, NAN, NAN
    variance = v10.var(ddof=1) / len(positives) + v01.var(ddof=1) / len(negatives)
    low, high = _normal_interval(auc, float(variance), alpha)
    return auc, low, high


def macro_ovr_auc_ci(
    y_true: np.ndarray, y_proba: np.ndarray, alpha: float = 0.05
) -> tuple[float, float, float]:
    """(macro one-vs-rest AUC, low, high) for a K-class problem, DeLong's method extended to the macro mean.

    The macro AUC is the mean of K per-class AUCs computed on the same samples with different
    positive/negative splits. Conditioning on the class counts (as DeLong does for two classes), each
    sample's first-order contribution is psi_i = (1/K') * sum_k [v10_k(i)/m_k if i is in class k else
    v01_k(i)/n_k], samples are independent, and Var = sum_c n_c * s_c^2 with s_c^2 the sample variance of
    psi within true class c. For K = 2 this is exactly the binary DeLong variance. Classes absent from
    y_true are left out of the mean (K' = classes present); the interval is nan if any present class has
    a single sample, and everything is nan when fewer than two classes are present.
    """
    labels = _as_labels(y_true, "y_true")
    proba = np.asarray(y_proba, dtype=np.float64)
    if proba.ndim != 2:
        raise ValueError(f"y_proba must be n x K, got shape {proba.shape}")
    _check_same_length(y_true=labels, y_proba=proba)
    present = [k for k in range(proba.shape[1]) if 0 < np.count_nonzero(labels == k) < len(labels)]
    if not present or np.isnan(proba).any():
        return NAN, NAN, NAN
    auc, contributions = _macro_psi(labels, proba, present)
    class_sizes = np.bincount(labels, minlength=proba.shape[1])
    if np.any((class_sizes > 0) & (class_sizes < 2)):
        return auc, NAN, NAN
    variance = sum(
        size * contributions[labels == c].var(ddof=1) for c, size in enumerate(class_sizes) if size > 0
    )
    low, high = _normal_interval(auc, float(variance), alpha)
    return auc, low, high


# ---------------------------------------------------------------------------------------------------------
# Metric rows
# ---------------------------------------------------------------------------------------------------------


def _binary_brier(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean squared error of the class-1 probability; nan when the scores are not probabilities."""
    if scores.size == 0 or np.isnan(scores).any() or scores.min() < 0 or scores.max() > 1:
        return NAN
    return float(np.mean((scores - labels) ** 2))


def binary_metrics(y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray | None) -> dict:
    """The report.csv metrics (METRIC_KEYS) of a binary prediction; positive class = 1."""
    labels = _as_binary(y_true, "y_true")
    predicted = _as_binary(y_pred, "y_pred")
    scores = None if y_score is None else np.asarray(y_score, dtype=np.float64)
    if scores is not None and scores.ndim != 1:
        raise ValueError(f"y_score must be 1-D (probability of class 1), got shape {scores.shape}")
    _check_same_length(y_true=labels, y_pred=predicted, y_score=scores)

    (tn, fp), (fn, tp) = _confusion_matrix(labels, predicted, 2).tolist()
    n = tn + fp + fn + tp
    sensitivity = _ratio(tp, tp + fn)
    specificity = _ratio(tn, tn + fp)
    acc_low, acc_high = clopper_pearson(tp + tn, n)
    sn_low, sn_high = clopper_pearson(tp, tp + fn)
    sp_low, sp_high = clopper_pearson(tn, tn + fp)
    if scores is None:
        auc = auc_low = auc_high = brier = NAN
    else:
        auc, auc_low, auc_high = delong_roc_auc_ci(labels, scores)
        brier = _binary_brier(labels, scores)
    return {
        "accuracy": _ratio(tp + tn, n),
        "acc_95_ci_low": acc_low,
        "acc_95_ci_high": acc_high,
        "mcc": _mcc_from_confusion(np.array([[tn, fp], [fn, tp]])),
        "avg_sn_sp": (sensitivity + specificity) / 2,
        "roc_auc": auc,
        "roc_auc_95_ci_low": auc_low,
        "roc_auc_95_ci_high": auc_high,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "sensitivity": sensitivity,
        "sn_95_ci_low": sn_low,
        "sn_95_ci_high": sn_high,
        "specificity": specificity,
        "sp_95_ci_low": sp_low,
        "sp_95_ci_high": sp_high,
        "prevalence": _ratio(tp + fn, n),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "tn": tn,
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "brier_score": brier,
    }


def _n_classes(labels: np.ndarray, predicted: np.ndarray, proba: np.ndarray | None, n_classes: int | None) -> int:
    if n_classes is not None:
        count = n_classes
    elif proba is not None:
        count = proba.shape[1]
    else:
        count = int(max(labels.max(initial=-1), predicted.max(initial=-1))) + 1
    if (labels.size and (labels.min() < 0 or labels.max() >= count)) or (
        predicted.size and (predicted.min() < 0 or predicted.max() >= count)
    ):
        raise ValueError(f"class labels must lie in 0..{count - 1}")
    return count


def _multiclass_brier(labels: np.ndarray, proba: np.ndarray) -> float:
    """Mean over samples of the sum over classes of (p - one_hot)^2; nan when not probabilities."""
    if proba.size == 0 or np.isnan(proba).any() or proba.min() < 0 or proba.max() > 1:
        return NAN
    one_hot = np.eye(proba.shape[1])[labels]
    return float(np.mean(np.sum((proba - one_hot) ** 2, axis=1)))


def multiclass_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, y_proba: np.ndarray | None, n_classes: int | None = None
) -> dict:
    """The main report.csv row (METRIC_KEYS) of a K-class model, with macro averages.

    n_classes defaults to y_proba's width (else the largest label + 1); pass it when the test set may lack
    a class and there are no probabilities. Counts, prevalence and the sn/sp intervals have no single
    multi-class value and are nan (the per-class values are in the ovr rows).
    """
    labels = _as_labels(y_true, "y_true")
    predicted = _as_labels(y_pred, "y_pred")
    proba = None if y_proba is None else np.asarray(y_proba, dtype=np.float64)
    if proba is not None and proba.ndim != 2:
        raise ValueError(f"y_proba must be n x K, got shape {proba.shape}")
    _check_same_length(y_true=labels, y_pred=predicted, y_proba=proba)
    count = _n_classes(labels, predicted, proba, n_classes)

    confusion = _confusion_matrix(labels, predicted, count)
    n = int(confusion.sum())
    tp = np.diag(confusion)
    fn = confusion.sum(axis=1) - tp
    fp = confusion.sum(axis=0) - tp
    tn = n - tp - fn - fp
    per_class = {
        "recall": [_ratio(tp[k], tp[k] + fn[k]) for k in range(count)],
        "specificity": [_ratio(tn[k], tn[k] + fp[k]) for k in range(count)],
        "precision": [_ratio(tp[k], tp[k] + fp[k]) for k in range(count)],
        "npv": [_ratio(tn[k], tn[k] + fn[k]) for k in range(count)],
        "f1": [_ratio(2 * tp[k], 2 * tp[k] + fp[k] + fn[k]) for k in range(count)],
    }
    sensitivity = _nanmean(per_class["recall"])
    specificity = _nanmean(per_class["specificity"])
    correct = int(tp.sum())
    acc_low, acc_high = clopper_pearson(correct, n)
    if proba is None:
        auc = auc_low = auc_high = brier = NAN
    else:
        auc, auc_low, auc_high = macro_ovr_auc_ci(labels, proba)
        brier = _multiclass_brier(labels, proba)
    return {
        "accuracy": _ratio(correct, n),
        "acc_95_ci_low": acc_low,
        "acc_95_ci_high": acc_high,
        "mcc": _mcc_from_confusion(confusion),
        "avg_sn_sp": (sensitivity + specificity) / 2,
        "roc_auc": auc,
        "roc_auc_95_ci_low": auc_low,
        "roc_auc_95_ci_high": auc_high,
        "f1": _nanmean(per_class["f1"]),
        "sensitivity": sensitivity,
        "sn_95_ci_low": NAN,
        "sn_95_ci_high": NAN,
        "specificity": specificity,
        "sp_95_ci_low": NAN,
        "sp_95_ci_high": NAN,
        "prevalence": NAN,
        "ppv": _nanmean(per_class["precision"]),
        "npv": _nanmean(per_class["npv"]),
        "tn": NAN,
        "tp": NAN,
        "fn": NAN,
        "fp": NAN,
        "brier_score": brier,
    }


def ovr_class_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, y_proba: np.ndarray | None, class_index: int
) -> dict:
    """Binary metrics (METRIC_KEYS) of class `class_index` against the rest, from a multi-class model."""
    labels = _as_labels(y_true, "y_true")
    predicted = _as_labels(y_pred, "y_pred")
    scores = None
    if y_proba is not None:
        proba = np.asarray(y_proba, dtype=np.float64)
        if proba.ndim != 2 or not 0 <= class_index < proba.shape[1]:
            raise ValueError(f"class_index {class_index} is not a column of y_proba with shape {proba.shape}")
        scores = proba[:, class_index]
    return binary_metrics(labels == class_index, predicted == class_index, scores)


def training_auc(y_true: np.ndarray, y_score_or_proba: np.ndarray, n_classes: int) -> float:
    """ROC AUC on the training data: binary AUC (1-D class-1 scores or n x 2) or macro one-vs-rest AUC."""
    scores = np.asarray(y_score_or_proba, dtype=np.float64)
    if n_classes == 2:
        if scores.ndim == 2:
            scores = scores[:, 1]
        return delong_roc_auc_ci(y_true, scores)[0]
    return macro_ovr_auc_ci(y_true, scores)[0]


# ---------------------------------------------------------------------------------------------------------
# Curves for class_results/ (JSON)
# ---------------------------------------------------------------------------------------------------------


def _downsample_indices(length: int, max_points: int) -> np.ndarray:
    """Evenly spaced indices that always keep the first and last point."""
    if length <= max_points:
        return np.arange(length)
    return np.unique(np.linspace(0, length - 1, max_points).round().astype(np.int64))


def _curve_lists(max_points: int, **arrays: np.ndarray) -> dict[str, list[float]]:
    """Same-length arrays → downsampled, rounded plain float lists."""
    length = len(next(iter(arrays.values())))
    keep = _downsample_indices(length, max_points)
    return {name: [round(float(value), CURVE_DIGITS) for value in array[keep]] for name, array in arrays.items()}


def _empty_curves() -> dict:
    return {
        "roc": {"fpr": [], "tpr": [], "thresholds": []},
        "pr": {"precision": [], "recall": []},
        "calibration": {"prob_true": [], "prob_pred": []},
    }


def curves(y_true01: np.ndarray, y_score: np.ndarray, max_points: int = MAX_CURVE_POINTS) -> dict:
    """ROC, precision-recall and calibration curves as JSON-ready lists of finite floats.

    Each curve has at most `max_points` points (6 digits). The ROC's leading infinite threshold becomes
    max finite threshold + 1 (still above every score, as older sklearn did). Curves that are undefined
    (a class absent, nan scores; calibration for scores outside [0, 1]) are empty lists.
    """
    from sklearn.calibration import calibration_curve  # imported here: only curve-writing pays for it
    from sklearn.metrics import precision_recall_curve, roc_curve

    labels = _as_binary(y_true01, "y_true01")
    scores = np.asarray(y_score, dtype=np.float64)
    _check_same_length(y_true01=labels, y_score=scores)
    result = _empty_curves()
    if len(np.unique(labels)) < 2 or not np.isfinite(scores).all():
        return result

    fpr, tpr, thresholds = roc_curve(labels, scores)
    finite = np.isfinite(thresholds)
    thresholds = np.where(finite, thresholds, thresholds[finite].max(initial=0.0) + 1.0)
    result["roc"] = _curve_lists(max_points, fpr=fpr, tpr=tpr, thresholds=thresholds)

    precision, recall, _ = precision_recall_curve(labels, scores)
    result["pr"] = _curve_lists(max_points, precision=precision, recall=recall)

    if scores.min() >= 0 and scores.max() <= 1:
        prob_true, prob_pred = calibration_curve(labels, scores, n_bins=CALIBRATION_BINS)
        result["calibration"] = _curve_lists(max_points, prob_true=prob_true, prob_pred=prob_pred)
    return result


# ---------------------------------------------------------------------------------------------------------
# Paired tests: two models on the same generalization rows (`milo compare`)
# ---------------------------------------------------------------------------------------------------------


def mcnemar_test(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """McNemar's test of equal accuracy for two models scored on the same rows.

    Only the discordant rows count: b = rows A got right and B wrong, c = the reverse. The p-value is the
    exact two-sided binomial test of b against Binomial(b + c, 1/2) (valid for any counts); `chi2` is the
    classic statistic (b - c)^2 / (b + c) without continuity correction, for reference. With no discordant
    row the models cannot be told apart: p = 1.
    """
    from scipy.stats import binomtest

    a = np.asarray(correct_a, dtype=bool)
    b_arr = np.asarray(correct_b, dtype=bool)
    _check_same_length(correct_a=a, correct_b=b_arr)
    only_a = int(np.count_nonzero(a & ~b_arr))
    only_b = int(np.count_nonzero(~a & b_arr))
    discordant = only_a + only_b
    p_value = 1.0 if discordant == 0 else float(binomtest(only_a, discordant, 0.5).pvalue)
    chi2 = NAN if discordant == 0 else (only_a - only_b) ** 2 / discordant
    return {"only_a_correct": only_a, "only_b_correct": only_b, "chi2": chi2, "p_value": min(1.0, p_value),
            "accuracy_difference": (only_a - only_b) / len(a) if len(a) else NAN}


def _macro_psi(labels: np.ndarray, proba: np.ndarray, present: list[int]) -> tuple[float, np.ndarray]:
    """(macro one-vs-rest AUC, each row's first-order contribution psi_i); see macro_ovr_auc_ci."""
    contributions = np.zeros(len(labels))
    aucs = []
    for k in present:
        is_positive = labels == k
        v10, v01 = _structural_components(proba[is_positive, k], proba[~is_positive, k])
        aucs.append(v10.mean())
        contributions[is_positive] += v10 / len(v10)
        contributions[~is_positive] += v01 / len(v01)
    return float(np.mean(aucs)), contributions / len(present)


def delong_paired_test(y_true: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> dict:
    """DeLong's test (DeLong, DeLong & Clarke-Pearson 1988) of equal ROC AUC for two models on the same rows.

    Binary: y_true in {0, 1} and 1-D scores of class 1. Multi-class: y_true in 0..K-1 and n x K probability
    matrices; the macro one-vs-rest AUCs are compared with the same first-order (placement value) variance
    as macro_ovr_auc_ci, taken of the per-row difference, which for K = 2 is exactly DeLong's paired
    variance. Returns the two AUCs, their difference, z and the two-sided normal p-value (nan when a
    class has fewer than two rows or a score is nan).
    """
    labels = _as_labels(y_true, "y_true")
    a = np.asarray(scores_a, dtype=np.float64)
    b = np.asarray(scores_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"scores differ in shape: {a.shape} and {b.shape}")
    if a.ndim == 1:  # binary scores of class 1, as the two-column case
        a, b = np.column_stack([1 - a, a]), np.column_stack([1 - b, b])
        labels = _as_binary(labels, "y_true")
    _check_same_length(y_true=labels, scores_a=a)
    empty = {"auc_a": NAN, "auc_b": NAN, "difference": NAN, "z": NAN, "p_value": NAN}
    present = [k for k in range(a.shape[1]) if 0 < np.count_nonzero(labels == k) < len(labels)]
    if len(present) < 2 or np.isnan(a).any() or np.isnan(b).any():
        return empty
    if a.shape[1] == 2:
        present = [1]  # binary: the AUC of class 1 (class 0's is the same number)
    auc_a, psi_a = _macro_psi(labels, a, present)
    auc_b, psi_b = _macro_psi(labels, b, present)
    sizes = np.bincount(labels, minlength=a.shape[1])
    result = {**empty, "auc_a": auc_a, "auc_b": auc_b, "difference": auc_a - auc_b}
    if np.any((sizes > 0) & (sizes < 2)):
        return result
    # Rows are independent given the class sizes: sum over classes of n_c * within-class variance. For two
    # classes this is DeLong's var(v10_a - v10_b) / m + var(v01_a - v01_b) / n.
    difference = psi_a - psi_b
    variance = sum(size * difference[labels == c].var(ddof=1) for c, size in enumerate(sizes) if size > 0)
    if variance <= 0:
        same = abs(auc_a - auc_b) < 1e-12
        return {**result, "z": 0.0 if same else math.copysign(math.inf, auc_a - auc_b),
                "p_value": 1.0 if same else 0.0}
    z = (auc_a - auc_b) / math.sqrt(variance)
    return {**result, "z": z, "p_value": float(2 * norm.sf(abs(z)))}
