"""engine/perceptron.py's LeanMLP against scikit-learn's MLPClassifier.

What must survive: on MILO-ML's MLP settings (tanh and relu, one to three hidden layers, alphas
up to 4, tols, n_iter_no_change, adam and sgd), binary and multi-class, LeanMLP ends with the same
weights bit for bit after the same number of epochs, with the same loss curve; settings it does not
reproduce run MLPClassifier's own code; and the start-up self-check refuses a LeanMLP whose
arithmetic differs even in the last bit (then the search uses MLPClassifier itself).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from milo_tui.engine import perceptron
from milo_tui.engine.perceptron import _lean_class, _same_training, perceptron_class


def _data(name: str):
    X, y = (load_breast_cancer if name == "breast_cancer" else load_wine)(return_X_y=True)
    return StandardScaler().fit_transform(X[::2]), y[::2]  # 285 / 89 rows: two batches / one batch per epoch


def _same(a, b) -> bool:
    weights = zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_)
    return a.n_iter_ == b.n_iter_ and a.loss_curve_ == b.loss_curve_ and all(np.array_equal(x, y) for x, y in weights)


def _both(settings: dict, X, y, sample_weight=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (_lean_class()(**settings).fit(X, y, sample_weight=sample_weight),
                MLPClassifier(**settings).fit(X, y, sample_weight=sample_weight))


@pytest.mark.parametrize("data", ["breast_cancer", "wine"])
@pytest.mark.parametrize("settings", [
    dict(hidden_layer_sizes=(50,), activation="tanh", alpha=0.01, tol=0.005, max_iter=60),
    dict(hidden_layer_sizes=(5, 5, 5), activation="relu", alpha=3.7, tol=0.0001, n_iter_no_change=3, max_iter=300),
    dict(hidden_layer_sizes=(7, 7), activation="relu", alpha=0.0, tol=1e-3, n_iter_no_change=5, max_iter=40),
    dict(hidden_layer_sizes=(3,), activation="tanh", solver="sgd", learning_rate="adaptive", tol=0.01, max_iter=80),
    dict(hidden_layer_sizes=(4,), activation="logistic", solver="sgd", learning_rate="invscaling", max_iter=30),
])
def test_lean_training_ends_with_mlpclassifiers_weights_bit_for_bit(data, settings):
    X, y = _data(data)
    ours, theirs = _both({**settings, "random_state": 11}, X, y)
    assert _same(ours, theirs)
    np.testing.assert_array_equal(ours.predict_proba(X), theirs.predict_proba(X))


def test_settings_it_does_not_reproduce_run_mlpclassifiers_own_code():
    X, y = _data("wine")
    for settings, weights in [(dict(early_stopping=True, max_iter=20), None), (dict(batch_size=32, max_iter=20), None),
                              (dict(max_iter=20), np.linspace(0.5, 2, len(y)))]:
        ours, theirs = _both({**settings, "hidden_layer_sizes": (6,), "random_state": 2}, X, y, weights)
        assert _same(ours, theirs), settings


def test_self_check_refuses_a_lean_class_whose_training_differs():
    """Last-bit differences in a gradient are mostly absorbed when added to the weights, so the check
    compares the loss curve too (it decides when training stops), and the weights."""
    lean = _lean_class()

    class LossOff(lean):  # the loss off in its last bits: the loss curve differs
        def _backprop(self, *args):
            loss, coef_grads, intercept_grads = super()._backprop(*args)
            return loss * (1 + 1e-15), coef_grads, intercept_grads

    class Misaligned(lean):  # each batch's targets in another row order than its rows: the weights differ
        def _backprop(self, X, y, *args):
            return super()._backprop(X, y[::-1], *args)

    assert _same_training(lean)
    assert not _same_training(LossOff)
    assert not _same_training(Misaligned)


def test_search_uses_mlpclassifier_when_the_self_check_fails(monkeypatch):
    perceptron_class.cache_clear()
    monkeypatch.setattr(perceptron, "_same_training", lambda lean: False)
    try:
        assert perceptron_class() is MLPClassifier
    finally:
        perceptron_class.cache_clear()
        monkeypatch.undo()
    assert perceptron_class() is not MLPClassifier
