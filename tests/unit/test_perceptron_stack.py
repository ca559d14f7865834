"""engine/perceptron_stack.py's stacked training against scikit-learn's MLPClassifier, one fit per member.

What must survive: candidates that share everything but alpha, tol, n_iter_no_change and max_iter,
trained together, each end with MLPClassifier's own weights bit for bit, after the same epochs and
with the same loss curve: binary and 3-class, tanh and relu, one to three hidden layers, alphas
shared by several members and not, members stopping at different epochs and at max_iter; settings
it does not reproduce are refused; and the start-up self-check refuses a stack whose arithmetic is
off even in the last bit (then the search trains each network on its own: tests/unit/test_search.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from milo_tui.engine import perceptron_stack
from milo_tui.engine.perceptron_stack import _check, same_as_mlpclassifier, train_stacked


def _data(name: str):
    X, y = (load_breast_cancer if name == "breast_cancer" else load_wine)(return_X_y=True)
    if name == "breast_cancer":
        X, y = X[::2], y[::2]  # 285 rows: two mini-batches per epoch, the second a partial one
    return StandardScaler().fit_transform(X), y


MEMBERS = [  # alpha 0.5 shared by three members; one stops early on a loose tol; two end at max_iter
    dict(alpha=0.5, tol=1e-4, n_iter_no_change=10, max_iter=25),
    dict(alpha=0.5, tol=0.01, n_iter_no_change=2, max_iter=25),
    dict(alpha=0.5, tol=1e-4, n_iter_no_change=10, max_iter=12),
    dict(alpha=3.7, tol=0.003, n_iter_no_change=3, max_iter=25),
    dict(alpha=0.0, tol=1e-4, n_iter_no_change=5, max_iter=25),
    dict(alpha=1.9, tol=0.05, n_iter_no_change=1, max_iter=25),
]


@pytest.mark.parametrize("data", ["breast_cancer", "wine"])
@pytest.mark.parametrize("hidden, activation", [((20,), "tanh"), ((5, 5), "relu"), ((3, 3, 3), "relu"),
                                                ((7, 7), "tanh")])
def test_stacked_members_end_with_mlpclassifiers_weights_bit_for_bit(data, hidden, activation):
    X, y = _data(data)
    params = {**MLPClassifier().get_params(), "hidden_layer_sizes": hidden, "activation": activation,
              "learning_rate_init": 0.01, "random_state": 5}
    run = train_stacked(params, X, y, MEMBERS)
    assert run.trajectories == 4
    assert same_as_mlpclassifier(run, params, X, y)
    epochs = [m.n_iter for m in run.members]
    assert len(set(epochs)) >= 3 and 12 in epochs  # different stopping epochs, and max_iter reached
    fitted = run.fitted(3)
    assert fitted.alpha == 3.7 and fitted.n_iter_ == epochs[3]
    np.testing.assert_array_equal(fitted.predict_proba(X),
                                  MLPClassifier(**{**params, **MEMBERS[3]}).fit(X, y).predict_proba(X))


def test_settings_it_does_not_reproduce_are_refused():
    X, y = _data("wine")
    for other in (dict(solver="sgd"), dict(early_stopping=True), dict(batch_size=32), dict(shuffle=False)):
        with pytest.raises(ValueError):
            train_stacked({**MLPClassifier().get_params(), **other}, X, y, MEMBERS)
    with pytest.raises(ValueError):  # MLPClassifier would train float32 data in float32
        train_stacked(MLPClassifier().get_params(), X.astype(np.float32), y, MEMBERS)


def test_self_check_refuses_a_stack_whose_arithmetic_differs(monkeypatch):
    """A loss off in its last bits changes the loss curve (it decides when training stops); Adam's
    epsilon off changes the weights."""
    assert _check()
    losses = perceptron_stack._losses
    monkeypatch.setattr(perceptron_stack, "_losses", lambda *args: losses(*args) * (1 + 1e-15))
    assert not _check()
    monkeypatch.undo()
    update = perceptron_stack._Adam.update

    def off(self, params, grad):
        self.epsilon *= 1.0000001
        update(self, params, grad)

    monkeypatch.setattr(perceptron_stack._Adam, "update", off)
    assert not _check()


@pytest.mark.parametrize("budget", [1, 250_000])
def test_stacks_split_to_stay_within_their_memory_budget_train_the_same(monkeypatch, budget):
    """A budget of one network per stack, and of about two: each stack starts from the same RandomState."""
    X, y = _data("wine")
    params = {**MLPClassifier().get_params(), "hidden_layer_sizes": (5, 5), "learning_rate_init": 0.01,
              "random_state": 5}
    stacks = []
    train_stack = perceptron_stack._train_stack
    monkeypatch.setattr(perceptron_stack, "STACK_BYTES", budget)
    monkeypatch.setattr(perceptron_stack, "_train_stack", lambda m, X, y, tracks: stacks.append(len(tracks)) or
                        train_stack(m, X, y, tracks))
    run = train_stacked(params, X, y, MEMBERS)
    assert stacks == ([1, 1, 1, 1] if budget == 1 else [2, 2])
    assert same_as_mlpclassifier(run, params, X, y)


def test_memory_estimate_counts_the_stacks_budget():
    from milo_tui.memory import estimate

    assert estimate.MLP_STACK_BYTES == perceptron_stack.STACK_BYTES
