"""Train an MLPClassifier epoch for epoch as its fit() does, without its per-batch Python overhead.

Why: on MILO-ML's data sizes (a few hundred rows, two mini-batches per epoch) one epoch's
arithmetic takes a fraction of a millisecond, while MLPClassifier.fit spends about as much again
per batch on bookkeeping: shuffling the row order through sklearn.utils.shuffle (argument checks,
dataframe-library probes), indexing the batch through _safe_indexing, and dispatching every matrix
product through safe_sparse_dot (array-API namespace lookup, configuration reads). MILO-ML's random
search trains 100 MLPs per fold with distinct alphas, so that overhead was most of the search's
biggest non-tree cost (profiled in docs/PERFORMANCE.md, "Search"). Networks that differ only in
alpha and when they stop are now trained together by engine/perceptron_stack.py, which pays the
overhead once per stack; LeanMLP trains every other one (sgd, lone candidates, and all of them if
the stack's start-up check fails).

`LeanMLP` is MLPClassifier with the stochastic solvers' loop and the backpropagation written out
(scikit-learn 1.9, neural_network/_multilayer_perceptron.py), doing the same numpy operations in
the same order on the same arrays:
- the row order: each epoch `RandomState.shuffle` of arange(n) indexes the previous order, which is
  what sklearn.utils.shuffle -> resample does with the model's RandomState;
- a dense 2-D `a @ b` for safe_sparse_dot (its dense branch); the batch is `X[rows]`;
- the loss functions, activations, derivatives and the Adam/SGD optimizers are scikit-learn's own.
Only the common case takes this path (dense X, no sample weights, shuffle, no early stopping, not
partial_fit, batch_size "auto"); anything else runs MLPClassifier's own code.

Those are private scikit-learn internals, written against 1.9 while milo accepts 1.4 and up. So
before the first use in a process, `perceptron_class` trains small networks both ways and compares
their weights bit for bit (a few milliseconds): on a scikit-learn whose internals moved, the search
silently uses MLPClassifier itself and stays exact, only slower. tests/unit/test_perceptron.py
compares LeanMLP with MLPClassifier on MILO-ML's settings.
"""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np


def _lean_class() -> type:
    from scipy import sparse
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.neural_network._base import ACTIVATIONS, DERIVATIVES, LOSS_FUNCTIONS
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer
    from sklearn.utils import gen_batches

    class LeanMLP(MLPClassifier):
        """MLPClassifier whose stochastic training skips scikit-learn's per-batch dispatch (same arithmetic)."""

        def _lean(self, X, sample_weight, incremental: bool) -> bool:
            return (not incremental and not self.early_stopping and self.shuffle and sample_weight is None
                    and self.batch_size == "auto" and not sparse.issparse(X))

        def _forward_pass(self, activations):
            hidden_activation = ACTIVATIONS[self.activation]
            for i in range(self.n_layers_ - 1):
                activations[i + 1] = activations[i] @ self.coefs_[i]
                activations[i + 1] += self.intercepts_[i]
                if (i + 1) != (self.n_layers_ - 1):
                    hidden_activation(activations[i + 1])
            ACTIVATIONS[self.out_activation_](activations[i + 1])
            return activations

        def _compute_loss_grad(self, layer, sw_sum, activations, deltas, coef_grads, intercept_grads):
            coef_grads[layer] = activations[layer].T @ deltas[layer]
            coef_grads[layer] += self.alpha * self.coefs_[layer]
            coef_grads[layer] /= sw_sum
            intercept_grads[layer] = np.sum(deltas[layer], axis=0) / sw_sum

        def _backprop(self, X, y, sample_weight, activations, deltas, coef_grads, intercept_grads):
            if sample_weight is not None or sparse.issparse(X):
                return super()._backprop(X, y, sample_weight, activations, deltas, coef_grads, intercept_grads)
            n_samples = X.shape[0]
            activations = self._forward_pass(activations)
            loss_name = self.loss
            if loss_name == "log_loss" and self.out_activation_ == "logistic":
                loss_name = "binary_log_loss"
            loss = LOSS_FUNCTIONS[loss_name](y, activations[-1], None)
            values = 0
            for s in self.coefs_:
                s = s.ravel()
                values += np.dot(s, s)
            loss += (0.5 * self.alpha) * values / n_samples
            last = self.n_layers_ - 2
            deltas[last] = activations[-1] - y
            self._compute_loss_grad(last, n_samples, activations, deltas, coef_grads, intercept_grads)
            inplace_derivative = DERIVATIVES[self.activation]
            for i in range(last, 0, -1):
                deltas[i - 1] = deltas[i] @ self.coefs_[i].T
                inplace_derivative(activations[i], deltas[i - 1])
                self._compute_loss_grad(i - 1, n_samples, activations, deltas, coef_grads, intercept_grads)
            return loss, coef_grads, intercept_grads

        def _fit_stochastic(self, X, y, sample_weight, activations, deltas, coef_grads, intercept_grads,
                            layer_units, incremental):
            if not self._lean(X, sample_weight, incremental):
                return super()._fit_stochastic(X, y, sample_weight, activations, deltas, coef_grads,
                                               intercept_grads, layer_units, incremental)
            params = self.coefs_ + self.intercepts_
            if self.solver == "sgd":
                self._optimizer = SGDOptimizer(params, self.learning_rate_init, self.learning_rate, self.momentum,
                                               self.nesterovs_momentum, self.power_t)
            else:
                self._optimizer = AdamOptimizer(params, self.learning_rate_init, self.beta_1, self.beta_2,
                                                self.epsilon)
            n_samples = X.shape[0]
            batches = list(gen_batches(n_samples, min(200, n_samples)))
            order = np.arange(n_samples, dtype=int)
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                shuffled = np.arange(n_samples)  # sklearn.utils.shuffle: resample's permutation of the order
                self._random_state.shuffle(shuffled)
                order = order[shuffled]
                accumulated_loss = 0.0
                for batch in batches:
                    rows = order[batch]
                    X_batch = X[rows]
                    activations[0] = X_batch
                    batch_loss, coef_grads, intercept_grads = self._backprop(
                        X_batch, y[rows], None, activations, deltas, coef_grads, intercept_grads)
                    accumulated_loss += batch_loss * (batch.stop - batch.start)
                    self._optimizer.update_params(params, coef_grads + intercept_grads)
                self.n_iter_ += 1
                self.loss_ = accumulated_loss / n_samples
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                self._update_no_improvement_count(False, None, None, None)
                self._optimizer.iteration_ends(self.t_)
                if self._no_improvement_count > self.n_iter_no_change:
                    if self._optimizer.trigger_stopping("", False):
                        break
                    self._no_improvement_count = 0
                if self.n_iter_ == self.max_iter:
                    warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                                  "optimization hasn't converged yet.", ConvergenceWarning)

    return LeanMLP


SELF_CHECKS = (  # (hidden_layer_sizes, activation, solver, learning_rate, classes)
    ((5,), "tanh", "adam", "constant", 2),
    ((4, 3), "relu", "adam", "constant", 3),
    ((3,), "logistic", "sgd", "adaptive", 3),
)


def _same_training(lean: type) -> bool:
    """Do LeanMLP and MLPClassifier end with the same weights, bit for bit, on small problems?"""
    from sklearn.neural_network import MLPClassifier

    rng = np.random.RandomState(0)
    X = rng.normal(size=(230, 4))  # 230 rows: two batches per epoch, the second a partial one
    for hidden, activation, solver, rate, classes in SELF_CHECKS:
        y = rng.randint(classes, size=len(X))
        settings = dict(hidden_layer_sizes=hidden, activation=activation, solver=solver, learning_rate=rate,
                        max_iter=6, alpha=0.3, random_state=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours, theirs = lean(**settings).fit(X, y), MLPClassifier(**settings).fit(X, y)
        weights = zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_)
        if ours.loss_curve_ != theirs.loss_curve_ or not all(np.array_equal(a, b) for a, b in weights):
            return False
    return True


@cache
def perceptron_class() -> type:
    """LeanMLP when it trains exactly as this scikit-learn's MLPClassifier does, else MLPClassifier."""
    from sklearn.neural_network import MLPClassifier

    lean = _lean_class()
    return lean if _same_training(lean) else MLPClassifier
