"""Tests for milo_tui.engine.metrics: against sklearn, known values and slow reference implementations."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from scipy.stats import norm
from sklearn import metrics as skm

from milo_tui.engine import metrics as m

# ---------------------------------------------------------------------------------------------------------
# Slow, independent references
# ---------------------------------------------------------------------------------------------------------


def _kernel(positive: float, negative: float) -> float:
    return 1.0 if positive > negative else 0.5 if positive == negative else 0.0


def slow_delong(y_true: np.ndarray, scores: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float]:
    """DeLong 1988 by explicit structural components, O(m*n) double loop."""
    positives = [s for s, y in zip(scores, y_true) if y == 1]
    negatives = [s for s, y in zip(scores, y_true) if y == 0]
    table = np.array([[_kernel(p, q) for q in negatives] for p in positives])
    v10, v01 = table.mean(axis=1), table.mean(axis=0)
    auc = table.mean()
    variance = np.var(v10, ddof=1) / len(positives) + np.var(v01, ddof=1) / len(negatives)
    half = norm.ppf(1 - alpha / 2) * math.sqrt(variance)
    return auc, max(0.0, auc - half), min(1.0, auc + half)


def slow_macro_delong(y_true: np.ndarray, proba: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float]:
    """Macro OvR AUC variance via per-sample first-order contributions, written with explicit loops."""
    n, k_classes = proba.shape
    psi = np.zeros(n)
    aucs = []
    for k in range(k_classes):
        pos = [i for i in range(n) if y_true[i] == k]
        neg = [j for j in range(n) if y_true[j] != k]
        for i in pos:
            psi[i] += sum(_kernel(proba[i, k], proba[j, k]) for j in neg) / len(neg) / len(pos)
        for j in neg:
            psi[j] += sum(_kernel(proba[i, k], proba[j, k]) for i in pos) / len(pos) / len(neg)
        aucs.append(np.mean([[_kernel(proba[i, k], proba[j, k]) for j in neg] for i in pos]))
    psi /= k_classes
    variance = sum(np.sum(y_true == c) * np.var(psi[y_true == c], ddof=1) for c in range(k_classes))
    auc = float(np.mean(aucs))
    half = norm.ppf(1 - alpha / 2) * math.sqrt(variance)
    return auc, max(0.0, auc - half), min(1.0, auc + half)


def random_binary(seed: int, n: int = 300, ties: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.2 * y - 0.6)))
    if ties:
        score = np.round(score, 1)  # many tied scores exercise the midranks
    return y, (score >= 0.5).astype(int), score


def random_multiclass(seed: int, n: int = 300, k: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba.argmax(axis=1), proba


def assert_no_warnings_call(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return function(*args, **kwargs)


# ---------------------------------------------------------------------------------------------------------
# Clopper-Pearson
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "trials", "expected"),
    [
        (0, 10, (0.0, 0.3085)),
        (5, 10, (0.1871, 0.8129)),
        (10, 10, (0.6915, 1.0)),
        (1, 20, (0.0013, 0.2487)),
        (45, 50, (0.7819, 0.9667)),
    ],
)
def test_clopper_pearson_known_values(successes, trials, expected):
    low, high = m.clopper_pearson(successes, trials)
    assert low == pytest.approx(expected[0], abs=1e-4)
    assert high == pytest.approx(expected[1], abs=1e-4)


def test_clopper_pearson_no_trials_is_nan_and_bad_counts_raise():
    assert all(math.isnan(value) for value in m.clopper_pearson(0, 0))
    with pytest.raises(ValueError):
        m.clopper_pearson(11, 10)
    with pytest.raises(ValueError):
        m.clopper_pearson(1, 10, alpha=0)


def test_clopper_pearson_widens_with_confidence():
    narrow = m.clopper_pearson(7, 20, alpha=0.2)
    wide = m.clopper_pearson(7, 20, alpha=0.01)
    assert wide[0] < narrow[0] < 7 / 20 < narrow[1] < wide[1]


# ---------------------------------------------------------------------------------------------------------
# DeLong
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
def test_delong_matches_sklearn_auc_and_slow_reference(seed, ties):
    y, _, score = random_binary(seed, n=150 + 40 * seed, ties=ties)
    auc, low, high = m.delong_roc_auc_ci(y, score)
    assert auc == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)
    reference = slow_delong(y, score)
    assert (auc, low, high) == pytest.approx(reference, abs=1e-9)
    assert low < auc < high


def test_delong_interval_is_clipped_and_perfect_separation_has_zero_width():
    y = np.array([0, 0, 0, 1, 1, 1])
    auc, low, high = m.delong_roc_auc_ci(y, np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]))
    assert (auc, low, high) == (1.0, 1.0, 1.0)
    auc, low, high = m.delong_roc_auc_ci(np.array([0, 0, 0, 1, 1, 1]), np.array([0.1, 0.2, 0.8, 0.3, 0.9, 0.95]))
    assert 0.0 <= low < auc < high <= 1.0


def _assert_honest_intervals(intervals: np.ndarray, true_auc: float) -> None:
    """Rows of (auc, low, high) from repeated samples: ~95 % coverage, and the implied standard error
    matches the AUC's actual spread across samples (a sharper check than coverage alone)."""
    auc, low, high = intervals.T
    coverage = np.mean((low <= true_auc) & (true_auc <= high))
    assert 0.91 <= coverage <= 0.985
    implied_se = (high - low) / (2 * norm.ppf(0.975))
    assert np.mean(implied_se) / np.std(auc) == pytest.approx(1.0, abs=0.12)


def test_delong_interval_roughly_covers_true_auc():
    # Binormal scores: true AUC = Phi(delta / sqrt(2)).
    delta = 1.0
    true_auc = norm.cdf(delta / math.sqrt(2))
    rng = np.random.default_rng(12345)
    y = np.r_[np.zeros(60, int), np.ones(40, int)]
    intervals = [m.delong_roc_auc_ci(y, rng.normal(size=100) + delta * y) for _ in range(600)]
    _assert_honest_intervals(np.array(intervals), true_auc)


def test_delong_degenerate_inputs_give_nan():
    assert all(math.isnan(v) for v in m.delong_roc_auc_ci(np.ones(5, int), np.linspace(0, 1, 5)))
    assert all(math.isnan(v) for v in m.delong_roc_auc_ci(np.array([], int), np.array([])))
    assert all(math.isnan(v) for v in m.delong_roc_auc_ci(np.array([0, 1, 1]), np.array([0.1, np.nan, 0.3])))
    auc, low, high = m.delong_roc_auc_ci(np.array([0, 1, 1, 1]), np.array([0.1, 0.5, 0.6, 0.05]))
    assert auc == pytest.approx(2 / 3) and math.isnan(low) and math.isnan(high)


# ---------------------------------------------------------------------------------------------------------
# Macro one-vs-rest DeLong
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_macro_ovr_auc_matches_sklearn_and_slow_reference(seed):
    y, _, proba = random_multiclass(seed, n=120, k=3 + seed)
    auc, low, high = m.macro_ovr_auc_ci(y, proba)
    assert auc == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"), abs=1e-12)
    assert (auc, low, high) == pytest.approx(slow_macro_delong(y, proba), abs=1e-9)
    assert low < auc < high


def test_macro_ovr_auc_with_two_classes_is_binary_delong():
    y, _, score = random_binary(7, n=200, ties=True)
    proba = np.column_stack([1 - score, score])
    assert m.macro_ovr_auc_ci(y, proba) == pytest.approx(m.delong_roc_auc_ci(y, score), abs=1e-12)


def test_macro_ovr_interval_roughly_covers_true_auc():
    # Three classes, class c's column = N(shift if y == c else 0, 1): each OvR AUC is Phi(shift / sqrt(2)).
    shift = 1.0
    true_auc = norm.cdf(shift / math.sqrt(2))
    rng = np.random.default_rng(2024)
    y = np.repeat(np.arange(3), [40, 30, 50])
    intervals = [m.macro_ovr_auc_ci(y, rng.normal(size=(len(y), 3)) + shift * np.eye(3)[y]) for _ in range(600)]
    _assert_honest_intervals(np.array(intervals), true_auc)


def test_macro_ovr_auc_skips_absent_class_and_nan_for_one_class():
    y, _, proba = random_multiclass(3, n=90, k=3)
    keep = y != 2
    auc, low, high = m.macro_ovr_auc_ci(y[keep], proba[keep])
    expected = np.mean([skm.roc_auc_score(y[keep] == k, proba[keep, k]) for k in (0, 1)])
    assert auc == pytest.approx(expected) and low < auc < high
    assert all(math.isnan(v) for v in m.macro_ovr_auc_ci(np.zeros(10, int), proba[:10]))


# ---------------------------------------------------------------------------------------------------------
# Binary metric rows
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_binary_metrics_match_sklearn(seed):
    y, pred, score = random_binary(seed)
    result = m.binary_metrics(y, pred, score)
    assert tuple(result) == m.METRIC_KEYS
    tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
    assert (result["tn"], result["fp"], result["fn"], result["tp"]) == (tn, fp, fn, tp)
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert result["mcc"] == pytest.approx(skm.matthews_corrcoef(y, pred))
    assert result["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert result["sensitivity"] == pytest.approx(skm.recall_score(y, pred))
    assert result["specificity"] == pytest.approx(skm.recall_score(y, pred, pos_label=0))
    assert result["ppv"] == pytest.approx(skm.precision_score(y, pred))
    assert result["npv"] == pytest.approx(skm.precision_score(y, pred, pos_label=0))
    assert result["avg_sn_sp"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert result["prevalence"] == pytest.approx(y.mean())
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score))
    assert result["brier_score"] == pytest.approx(skm.brier_score_loss(y, score))
    assert (result["acc_95_ci_low"], result["acc_95_ci_high"]) == m.clopper_pearson(tp + tn, len(y))
    assert (result["sn_95_ci_low"], result["sn_95_ci_high"]) == m.clopper_pearson(tp, tp + fn)
    assert (result["sp_95_ci_low"], result["sp_95_ci_high"]) == m.clopper_pearson(tn, tn + fp)
    assert result["roc_auc_95_ci_low"] < result["roc_auc"] < result["roc_auc_95_ci_high"]


def test_binary_metrics_values_are_plain_python_numbers():
    y, pred, score = random_binary(0)
    result = m.binary_metrics(y, pred, score)
    assert all(type(value) in (int, float) for value in result.values())
    assert all(type(result[key]) is int for key in ("tn", "tp", "fn", "fp"))


def test_binary_metrics_all_predictions_one_class_gives_nan_not_errors():
    y = np.array([0, 1, 0, 1, 1, 0, 0, 1])
    result = assert_no_warnings_call(m.binary_metrics, y, np.zeros(8, int), np.full(8, 0.2))
    assert result["tp"] == 0 and result["fp"] == 0 and result["sensitivity"] == 0.0
    assert result["specificity"] == 1.0
    assert math.isnan(result["ppv"]) and math.isnan(result["mcc"])
    assert result["f1"] == 0.0
    assert result["roc_auc"] == 0.5  # every score tied


def test_binary_metrics_one_class_in_truth_and_no_scores():
    result = assert_no_warnings_call(m.binary_metrics, np.zeros(6, int), np.array([0, 0, 1, 0, 0, 0]), None)
    assert math.isnan(result["sensitivity"]) and math.isnan(result["sn_95_ci_low"])
    assert result["specificity"] == pytest.approx(5 / 6)
    for key in ("roc_auc", "roc_auc_95_ci_low", "roc_auc_95_ci_high", "brier_score", "avg_sn_sp", "mcc"):
        assert math.isnan(result[key]), key
    assert result["prevalence"] == 0.0


def test_binary_metrics_empty_input_is_all_nan_or_zero_counts():
    result = assert_no_warnings_call(m.binary_metrics, np.array([], int), np.array([], int), np.array([]))
    assert all(math.isnan(result[key]) for key in m.METRIC_KEYS if key not in ("tn", "tp", "fn", "fp"))
    assert (result["tn"], result["tp"], result["fn"], result["fp"]) == (0, 0, 0, 0)


def test_binary_metrics_brier_is_nan_for_non_probability_scores():
    y, pred, score = random_binary(1)
    result = m.binary_metrics(y, pred, np.log(score / (1 - score)))  # decision-function-like scores
    assert math.isnan(result["brier_score"])
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score))


def test_binary_metrics_rejects_bad_inputs():
    with pytest.raises(ValueError):
        m.binary_metrics(np.array([0, 1, 2]), np.array([0, 1, 1]), None)
    with pytest.raises(ValueError):
        m.binary_metrics(np.array([0, 1, 1]), np.array([0, 1]), None)


# ---------------------------------------------------------------------------------------------------------
# Multi-class and one-vs-rest rows
# ---------------------------------------------------------------------------------------------------------


def _macro_specificity(y, pred, k):
    values = []
    for c in range(k):
        values.append(skm.recall_score(y != c, pred != c))
    return np.mean(values)


@pytest.mark.parametrize("seed", range(4))
def test_multiclass_metrics_match_sklearn(seed):
    k = 3 + seed % 2
    y, pred, proba = random_multiclass(seed, k=k)
    result = m.multiclass_metrics(y, pred, proba)
    assert tuple(result) == m.METRIC_KEYS
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert result["mcc"] == pytest.approx(skm.matthews_corrcoef(y, pred))
    assert result["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert result["sensitivity"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert result["ppv"] == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert result["specificity"] == pytest.approx(_macro_specificity(y, pred, k))
    assert result["npv"] == pytest.approx(np.mean([skm.precision_score(y != c, pred != c) for c in range(k)]))
    assert result["avg_sn_sp"] == pytest.approx((result["sensitivity"] + result["specificity"]) / 2)
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    one_hot = np.eye(k)[y]
    assert result["brier_score"] == pytest.approx(np.mean(np.sum((proba - one_hot) ** 2, axis=1)))
    assert result["roc_auc_95_ci_low"] < result["roc_auc"] < result["roc_auc_95_ci_high"]
    for key in ("tn", "tp", "fn", "fp", "prevalence", "sn_95_ci_low", "sn_95_ci_high", "sp_95_ci_low", "sp_95_ci_high"):
        assert math.isnan(result[key]), key


def test_multiclass_macro_skips_undefined_classes_like_sklearn_zero_division_nan():
    y = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    pred = np.array([0, 1, 1, 1, 1, 1, 0, 1])  # class 2 never predicted: its precision is undefined
    result = assert_no_warnings_call(m.multiclass_metrics, y, pred, None, n_classes=4)  # class 3 absent everywhere
    labels = [0, 1, 2, 3]
    assert result["ppv"] == pytest.approx(
        skm.precision_score(y, pred, labels=labels, average="macro", zero_division=np.nan)
    )
    assert result["sensitivity"] == pytest.approx(
        skm.recall_score(y, pred, labels=labels, average="macro", zero_division=np.nan)
    )
    assert result["f1"] == pytest.approx(skm.f1_score(y, pred, labels=labels, average="macro", zero_division=np.nan))
    assert math.isnan(result["roc_auc"]) and math.isnan(result["brier_score"])


def test_multiclass_all_predictions_one_class_gives_nan_mcc_not_error():
    y, _, proba = random_multiclass(5, n=60, k=3)
    result = assert_no_warnings_call(m.multiclass_metrics, y, np.zeros(60, int), proba)
    assert math.isnan(result["mcc"])
    assert result["accuracy"] == pytest.approx(np.mean(y == 0))


def test_multiclass_rejects_labels_outside_classes():
    with pytest.raises(ValueError):
        m.multiclass_metrics(np.array([0, 1, 3]), np.array([0, 1, 1]), np.full((3, 3), 1 / 3))


@pytest.mark.parametrize("class_index", range(3))
def test_ovr_class_metrics_is_binary_metrics_of_one_class(class_index):
    y, pred, proba = random_multiclass(11, k=3)
    result = m.ovr_class_metrics(y, pred, proba, class_index)
    is_class = (y == class_index).astype(int)
    assert result == m.binary_metrics(is_class, (pred == class_index).astype(int), proba[:, class_index])
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(is_class, proba[:, class_index]))
    assert result["tp"] == int(np.sum((y == class_index) & (pred == class_index)))
    with pytest.raises(ValueError):
        m.ovr_class_metrics(y, pred, proba, 3)


def test_training_auc_binary_and_multiclass():
    y, _, score = random_binary(3)
    assert m.training_auc(y, score, 2) == pytest.approx(skm.roc_auc_score(y, score))
    assert m.training_auc(y, np.column_stack([1 - score, score]), 2) == pytest.approx(skm.roc_auc_score(y, score))
    y, _, proba = random_multiclass(3, k=4)
    assert m.training_auc(y, proba, 4) == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert math.isnan(m.training_auc(np.zeros(5, int), np.linspace(0, 1, 5), 2))


# ---------------------------------------------------------------------------------------------------------
# Curves
# ---------------------------------------------------------------------------------------------------------


def _all_floats(curve_dict: dict) -> list[float]:
    return [value for curve in curve_dict.values() for values in curve.values() for value in values]


def test_curves_are_json_serialisable_bounded_and_match_sklearn():
    y, _, score = random_binary(4, n=5000)
    result = m.curves(y, score)
    text = json.dumps(result, allow_nan=False)  # raises on nan/inf
    assert len(text) < 30_000
    assert set(result) == {"roc", "pr", "calibration"}
    for curve in result.values():
        lengths = {len(values) for values in curve.values()}
        assert len(lengths) == 1 and 0 < lengths.pop() <= m.MAX_CURVE_POINTS
    assert all(type(value) is float for value in _all_floats(result))
    fpr, tpr, thresholds = skm.roc_curve(y, score)
    roc = result["roc"]
    assert (roc["fpr"][0], roc["tpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (0.0, 0.0, 1.0, 1.0)
    assert roc["thresholds"][0] > max(score)  # the "predict nothing" point stays above every score
    assert np.all(np.diff(roc["fpr"]) >= 0) and np.all(np.diff(roc["tpr"]) >= 0)
    # Downsampled points are points of the full curve.
    full = {(round(a, 6), round(b, 6)) for a, b in zip(fpr, tpr)}
    assert all((a, b) in full for a, b in zip(roc["fpr"], roc["tpr"]))
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(skm.roc_auc_score(y, score), abs=0.01)
    assert len(result["calibration"]["prob_true"]) == m.CALIBRATION_BINS


def test_curves_small_input_keeps_every_point():
    y = np.array([0, 0, 1, 1])
    score = np.array([0.1, 0.4, 0.35, 0.8])
    result = m.curves(y, score)
    fpr, tpr, _ = skm.roc_curve(y, score)
    assert result["roc"]["fpr"] == [round(float(v), 6) for v in fpr]
    assert result["roc"]["tpr"] == [round(float(v), 6) for v in tpr]
    assert result["roc"]["thresholds"][0] == pytest.approx(1.8)


def test_curves_degenerate_inputs_are_empty_not_errors():
    empty = assert_no_warnings_call(m.curves, np.ones(10, int), np.linspace(0, 1, 10))
    assert _all_floats(empty) == [] and set(empty) == {"roc", "pr", "calibration"}
    assert _all_floats(m.curves(np.array([], int), np.array([]))) == []
    assert _all_floats(m.curves(np.array([0, 1]), np.array([np.nan, 0.5]))) == []
    decision = m.curves(np.array([0, 1, 0, 1]), np.array([-2.0, 1.5, 0.3, 3.0]))
    assert decision["calibration"] == {"prob_true": [], "prob_pred": []}
    assert len(decision["roc"]["fpr"]) > 0
    json.dumps(decision, allow_nan=False)


# -- paired tests for `milo compare`, checked against independent computations -----------------------------


def _paired_bootstrap_se(y, a, b, auc, resamples=1500, seed=3):
    """Standard error of AUC(a) - AUC(b) by a class-stratified paired bootstrap (no DeLong involved)."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)]
    differences = []
    for _ in range(resamples):
        rows = np.concatenate([rng.choice(g, len(g)) for g in groups])
        differences.append(auc(y[rows], a[rows]) - auc(y[rows], b[rows]))
    return float(np.std(differences, ddof=1))


def test_delong_paired_test_matches_a_paired_bootstrap_binary():
    from sklearn.metrics import roc_auc_score

    from milo_tui.engine.metrics import delong_paired_test

    rng = np.random.default_rng(11)
    y = (rng.random(300) < 0.4).astype(int)
    shared = rng.normal(size=300)
    a = y * 1.2 + shared + rng.normal(scale=0.8, size=300)
    b = y * 0.8 + shared + rng.normal(scale=0.8, size=300)
    test = delong_paired_test(y, a, b)
    assert test["auc_a"] == pytest.approx(roc_auc_score(y, a)) and test["auc_b"] == pytest.approx(roc_auc_score(y, b))
    se_delong = test["difference"] / test["z"]
    se_boot = _paired_bootstrap_se(y, a, b, roc_auc_score, 600)
    assert se_delong == pytest.approx(se_boot, rel=0.12)
    assert test["p_value"] == pytest.approx(2 * norm.sf(abs(test["z"])))


def test_delong_paired_test_matches_a_paired_bootstrap_multiclass():
    from sklearn.metrics import roc_auc_score

    from milo_tui.engine.metrics import delong_paired_test

    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 360)
    def softmax(strength):
        logits = np.eye(3)[y] * strength + rng.normal(size=(360, 3))
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)
    a, b = softmax(1.6), softmax(1.1)
    test = delong_paired_test(y, a, b)
    macro = lambda yy, p: roc_auc_score(yy, p, multi_class="ovr", average="macro")  # noqa: E731
    assert test["auc_a"] == pytest.approx(macro(y, a)) and test["auc_b"] == pytest.approx(macro(y, b))
    assert test["difference"] / test["z"] == pytest.approx(_paired_bootstrap_se(y, a, b, macro, 400), rel=0.15)


def test_delong_paired_test_of_a_model_with_itself_is_p_1():
    from milo_tui.engine.metrics import delong_paired_test

    y = np.array([0, 0, 1, 1, 0, 1, 0, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.6, 0.7])
    test = delong_paired_test(y, scores, scores)
    assert test["difference"] == 0 and test["p_value"] == 1.0


def test_mcnemar_reproduces_agrestis_worked_example_and_an_exact_binomial_sum():
    """Agresti, Categorical Data Analysis (2002), Table 10.1: approval of the President's performance in two
    surveys, 150 approve-then-disapprove and 86 disapprove-then-approve; McNemar z^2 = 17.36."""
    from math import comb

    from milo_tui.engine.metrics import mcnemar_test

    concordant = 794 + 570
    a = np.array([True] * 150 + [False] * 86 + [True] * concordant)
    b = np.array([False] * 150 + [True] * 86 + [True] * concordant)
    test = mcnemar_test(a, b)
    assert (test["only_a_correct"], test["only_b_correct"]) == (150, 86)
    assert test["chi2"] == pytest.approx(17.36, abs=0.005)
    n, k = 236, 86
    exact = min(1.0, 2 * sum(comb(n, i) for i in range(0, k + 1)) / 2 ** n)
    assert test["p_value"] == pytest.approx(exact, rel=1e-9)
    assert mcnemar_test(a, a)["p_value"] == 1.0
