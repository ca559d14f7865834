"""Train the MLPs of one CV fold that draw the same random numbers together, as one stacked network.

Why: MILO-ML's MLP random search trains 100 networks per fold, each on a few hundred rows (two
mini-batches per epoch), so even engine/perceptron.py's LeanMLP spends most of an epoch on numpy's
per-call overhead, not on arithmetic. Paying that overhead once for several networks is the lever.

Which networks can share it: MLPClassifier (adam) draws its initial weights from
RandomState(random_state) layer by layer (the layer shapes and the activation decide the draws),
then one row permutation per epoch; alpha, tol, n_iter_no_change and max_iter enter neither. So the
candidates of a fold that agree in everything else (layers, activation, adam's settings, seed,
batch size) start from the same weights and see the same mini-batches in the same order: they
differ only in the L2 penalty (alpha) and the epoch they stop at. Those with the same alpha follow
one weight trajectory (a `_Track`), each member copying its weights at its own stopping epoch.

How it stays exact: the K tracks' weights are (K, fan_in, fan_out) arrays. np.matmul on stacked
arrays calls, per network slice, the same BLAS routine with the same shapes as the 2-D product;
elementwise operations (activations, derivatives, and Adam: scikit-learn's AdamOptimizer formulas,
operation for operation, run once over all K networks' parameters) give the same value per element
wherever it sits; the reductions (the loss's mean over rows, the L2 term's dot products, the
intercept gradients' sums over rows) keep each network's numbers along the same axis layout, so
numpy adds them in the same order as for one network. Each member's scalar state (loss curve, best
loss, no-improvement count, its own tol, n_iter_no_change and max_iter) is followed as
MLPClassifier._update_no_improvement_count does; a track whose members have all stopped leaves the
stack.

What it costs: the per-call overhead once per stack and batch instead of once per network; the
arithmetic is the same. Large intermediates reuse buffers (a fresh multi-megabyte array per
operation page-faults, which cost more than the arithmetic), and a stack holds at most STACK_BYTES
of working memory: more networks train as several stacks, each from the same RandomState state.

Safety: those are assumptions about numpy/BLAS and private scikit-learn internals. Before the first
use in a process, `stacking_is_exact` trains small stacks (binary and 3-class, tanh and relu, one
and two hidden layers, members stopping at different epochs and at max_iter) and compares every
member's weights and loss curve bit for bit with MLPClassifier's own fit; if anything differs the
search trains each network on its own (engine/search.py). tests/unit/test_perceptron_stack.py
checks more cases.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from functools import cache
from typing import Callable

import numpy as np

VARYING = ("alpha", "tol", "n_iter_no_change", "max_iter")  # what may differ inside one stack


@dataclass
class Member:
    """One candidate in a stack: its stopping rule, followed on its track, and where it stopped."""

    alpha: float
    tol: float
    n_iter_no_change: int
    max_iter: int
    count: int = 0  # MLPClassifier's _no_improvement_count under this member's tol
    n_iter: int = 0
    loss_curve: list = field(default_factory=list)
    coefs: list[np.ndarray] | None = None  # its weights at its stopping epoch
    intercepts: list[np.ndarray] | None = None

    @property
    def stopped(self) -> bool:
        return self.coefs is not None

    def finite(self) -> bool:
        """MLPClassifier's fit raises on non-finite weights (the plain search then records NaN)."""
        return all(np.isfinite(w).all() for w in self.coefs + self.intercepts)


@dataclass
class _Track:
    """The members with one alpha: one weight trajectory, followed until its last member stops."""

    alpha: float
    members: list[Member]
    loss_curve: list = field(default_factory=list)
    best_loss: float = np.inf

    def end_epoch(self, loss, epoch: int, weights: Callable[[], tuple[list, list]]) -> bool:
        """MLPClassifier's end of an epoch, for each member still training (`weights`: this track's
        current coefs and intercepts); True once every member has stopped."""
        self.loss_curve.append(loss)
        best_before = self.best_loss  # each member's test compares with the best loss before this epoch
        if loss < self.best_loss:
            self.best_loss = loss
        for member in self.members:
            if member.stopped:
                continue
            member.count = member.count + 1 if loss > best_before - member.tol else 0
            if member.count > member.n_iter_no_change or epoch == member.max_iter:
                coefs, intercepts = weights()
                member.n_iter, member.loss_curve = epoch, list(self.loss_curve)
                member.coefs, member.intercepts = [c.copy() for c in coefs], [b.copy() for b in intercepts]
        return all(m.stopped for m in self.members)


def _softmax(Z: np.ndarray) -> None:
    """scikit-learn's inplace_softmax, row by row of every network in the stack."""
    tmp = Z - Z.max(axis=2)[:, :, np.newaxis]
    np.exp(tmp, out=Z)
    Z /= Z.sum(axis=2)[:, :, np.newaxis]


LARGE = 8192  # elements from which an intermediate is worth a reused buffer


class _Scratch:
    """Reused arrays for the stack's large intermediates. A fresh (K, rows, units) array per operation
    costs more than its arithmetic (the allocator hands large blocks back to the system, so each new
    one page-faults), so each named large intermediate keeps one buffer, handed out as a C-contiguous
    view of the size needed (the stack shrinks, the last batch is shorter). Small ones: None, so numpy
    allocates (cheaper than the bookkeeping)."""

    def __init__(self):
        self._buffers: dict[object, np.ndarray] = {}

    def get(self, name: object, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray | None:
        size = math.prod(shape)
        if size < LARGE:
            return None
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size:
            buffer = self._buffers[name] = np.empty(size, dtype=dtype)
        return buffer[:size].reshape(shape)


class _Parameters:
    """Every weight of K networks in one (K, P) array (coefs, then intercepts, as MLPClassifier lists
    them), with per-layer views: elementwise steps (Adam) run once over all of them."""

    def __init__(self, flat: np.ndarray, shapes: list[tuple[int, ...]]):
        self.flat, self.shapes = flat, shapes
        self.views: list[np.ndarray] = []
        start = 0
        for shape in shapes:
            size = math.prod(shape)
            self.views.append(flat[:, start:start + size].reshape(len(flat), *shape))
            start += size

    @classmethod
    def empty(cls, k: int, shapes: list[tuple[int, ...]]) -> "_Parameters":
        return cls(np.empty((k, sum(math.prod(s) for s in shapes))), shapes)

    def rows(self, rows: list[int]) -> "_Parameters":
        return _Parameters(self.flat[rows], self.shapes)

    def layers(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        half = len(self.views) // 2
        return self.views[:half], self.views[half:]


class _Adam:
    """scikit-learn's AdamOptimizer (_get_updates, then param += update) on the stack's (K, P)
    parameters: each array operation the same, elementwise, in place."""

    def __init__(self, k: int, size: int, learning_rate_init: float, beta_1: float, beta_2: float, epsilon: float):
        self.learning_rate_init, self.beta_1, self.beta_2, self.epsilon = learning_rate_init, beta_1, beta_2, epsilon
        self.t = 0
        self.m, self.v = np.zeros((k, size)), np.zeros((k, size))

    def keep(self, rows: list[int]) -> None:
        self.m, self.v = self.m[rows], self.v[rows]

    def update(self, params: np.ndarray, grad: np.ndarray) -> None:
        self.t += 1
        learning_rate = self.learning_rate_init * np.sqrt(1 - self.beta_2**self.t) / (1 - self.beta_1**self.t)
        self.m *= self.beta_1  # m = beta_1 * m + (1 - beta_1) * grad
        self.m += (1 - self.beta_1) * grad
        self.v *= self.beta_2  # v = beta_2 * v + (1 - beta_2) * grad**2
        tmp = np.square(grad)
        tmp *= 1 - self.beta_2
        self.v += tmp
        update = -learning_rate * self.m  # update = -learning_rate * m / (sqrt(v) + epsilon)
        np.sqrt(self.v, out=tmp)
        tmp += self.epsilon
        update /= tmp
        params += update


class _Stack:
    """K networks' weights, gradients, Adam state and L2 penalties, one leading axis per network."""

    def __init__(self, model, tracks: list[_Track]):
        k = len(tracks)
        self.tracks = tracks
        shapes = [c.shape for c in model.coefs_] + [b.shape for b in model.intercepts_]
        self.params = _Parameters.empty(k, shapes)
        for view, initial in zip(self.params.views, model.coefs_ + model.intercepts_):
            view[...] = initial  # every network starts from the same draws
        self.grads = _Parameters.empty(k, shapes)
        self.alphas = np.array([t.alpha for t in tracks], dtype=np.float64)
        self.scratch = _Scratch()
        self.optimizer = _Adam(k, self.params.flat.shape[1], model.learning_rate_init, model.beta_1, model.beta_2,
                               model.epsilon)

    def keep(self, rows: list[int]) -> None:
        """Drop the networks not in `rows` (their tracks have stopped)."""
        self.tracks = [self.tracks[i] for i in rows]
        self.params, self.grads = self.params.rows(rows), self.grads.rows(rows)
        self.alphas = self.alphas[rows]
        self.optimizer.keep(rows)

    def weights(self, k: int) -> tuple[list, list]:
        coefs, intercepts = self.params.layers()
        return [c[k] for c in coefs], [b[k] for b in intercepts]


def _forward(stack: _Stack, X_batch: np.ndarray, activation: str, out_activation: str) -> list:
    """MLPClassifier._forward_pass for every network: activations[0] is the shared batch."""
    from sklearn.neural_network._base import ACTIVATIONS

    coefs, intercepts = stack.params.layers()
    activations = [X_batch]
    last = len(coefs) - 1
    k, n = len(stack.tracks), X_batch.shape[0]
    for i in range(last + 1):
        # (n, f) or (K, n, f) @ (K, f, h): one BLAS product per network
        Z = np.matmul(activations[i], coefs[i], out=stack.scratch.get(("z", i), (k, n, coefs[i].shape[2])))
        Z += intercepts[i][:, np.newaxis, :]
        if i != last:
            ACTIVATIONS[activation](Z)
        elif out_activation == "softmax":
            _softmax(Z)
        else:
            ACTIVATIONS[out_activation](Z)
        activations.append(Z)
    return activations


def _losses(y_prob: np.ndarray, y: np.ndarray, binary: bool) -> np.ndarray:
    """scikit-learn's binary_log_loss / log_loss per network: np.average over its own rows (axis 1) is
    the sum over them divided by their count, then the sum over the outputs."""
    from scipy.special import xlogy

    eps = np.finfo(y_prob.dtype).eps
    y_prob = np.clip(y_prob, eps, 1 - eps)
    terms = xlogy(y, y_prob) + xlogy(1 - y, 1 - y_prob) if binary else xlogy(y, y_prob)
    means = np.add.reduce(terms, axis=1)
    means /= terms.shape[1]
    return -np.add.reduce(means, axis=1)


def _squared_norms(coefs: list[np.ndarray]) -> np.ndarray:
    """Per network, the sum over layers of np.dot(w, w) on the raveled weights: a (1, m) @ (m, 1)
    product per network is numpy's same dot routine."""
    values = 0
    for c in coefs:
        flat = c.reshape(c.shape[0], 1, -1)
        values += np.matmul(flat, flat.transpose(0, 2, 1))[:, 0, 0]
    return values


def _derivative(activation: str, Z: np.ndarray, delta: np.ndarray, scratch: _Scratch) -> None:
    """scikit-learn's inplace derivatives (tanh: delta *= 1 - Z**2; relu: delta[Z == 0] = 0),
    their temporaries in scratch buffers."""
    from sklearn.neural_network._base import DERIVATIVES

    if activation == "tanh":
        tmp = np.square(Z, out=scratch.get("derivative", Z.shape))
        np.subtract(1, tmp, out=tmp)
        delta *= tmp
    elif activation == "relu":
        np.copyto(delta, 0, where=np.equal(Z, 0, out=scratch.get("zero", Z.shape, dtype=bool)))
    else:
        DERIVATIVES[activation](Z, delta)


def _backprop(stack: _Stack, X_batch, y_batch, model, binary: bool) -> np.ndarray:
    """MLPClassifier._backprop (no sample weights) for every network: the losses; the gradients are
    written to stack.grads."""
    n = X_batch.shape[0]
    activations = _forward(stack, X_batch, model.activation, model.out_activation_)
    coefs, _ = stack.params.layers()
    coef_grads, intercept_grads = stack.grads.layers()
    loss = _losses(activations[-1], y_batch, binary)
    loss += (0.5 * stack.alphas) * _squared_norms(coefs) / n
    alphas = stack.alphas[:, np.newaxis, np.newaxis]
    last = len(coefs) - 1
    delta = np.subtract(activations[-1], y_batch, out=stack.scratch.get(("delta", last), activations[-1].shape))
    for i in range(last, -1, -1):
        inputs = activations[i]
        grad = np.matmul(inputs.T if inputs.ndim == 2 else inputs.transpose(0, 2, 1), delta, out=coef_grads[i])
        grad += np.multiply(alphas, coefs[i], out=stack.scratch.get(("penalty", i), coefs[i].shape))
        grad /= n
        np.divide(np.add.reduce(delta, axis=1), n, out=intercept_grads[i])
        if i > 0:
            delta = np.matmul(delta, coefs[i].transpose(0, 2, 1), out=stack.scratch.get(("delta", i - 1), inputs.shape))
            _derivative(model.activation, inputs, delta, stack.scratch)
    return loss


STACK_BYTES = 16 * 2**20  # at most this much working memory per stack (memory/estimate.py counts it)


def _bytes_per_network(model, batch_rows: int) -> int:
    """One network's share of a stack: its parameters, gradients, two Adam moments and the update's
    temporaries (8 arrays of P), and per layer its activations, deltas and derivative temporaries."""
    parameters = sum(c.size for c in model.coefs_) + sum(b.size for b in model.intercepts_)
    units = sum(b.size for b in model.intercepts_)
    return 8 * (8 * parameters + 5 * batch_rows * units)


def _train(model, X: np.ndarray, y: np.ndarray, tracks: list[_Track]) -> None:
    """Every track trained as MLPClassifier would, in stacks of at most STACK_BYTES: each stack starts
    from the RandomState as the model's set-up left it, so it draws the same row orders."""
    per_stack = max(1, STACK_BYTES // _bytes_per_network(model, min(200, X.shape[0])))
    state = model._random_state.get_state()
    for start in range(0, len(tracks), per_stack):
        model._random_state.set_state(state)
        _train_stack(model, X, y, tracks[start:start + per_stack])


def _train_stack(model, X: np.ndarray, y: np.ndarray, tracks: list[_Track]) -> None:
    """MLPClassifier._fit_stochastic (adam, batch_size "auto", shuffle, no early stopping) for every
    track at once, from the initial weights and RandomState `model` has just set up."""
    from sklearn.utils import gen_batches

    n_samples = X.shape[0]
    batches = list(gen_batches(n_samples, min(200, n_samples)))
    binary = model.out_activation_ == "logistic"
    stack = _Stack(model, tracks)
    order = np.arange(n_samples, dtype=int)
    epoch = 0
    while stack.tracks:
        epoch += 1
        shuffled = np.arange(n_samples)  # sklearn.utils.shuffle: resample's permutation of the order
        model._random_state.shuffle(shuffled)
        order = order[shuffled]
        accumulated = np.zeros(len(stack.tracks))
        for batch in batches:
            rows = order[batch]
            losses = _backprop(stack, X[rows], y[rows], model, binary)
            accumulated += losses * (batch.stop - batch.start)
            stack.optimizer.update(stack.params.flat, stack.grads.flat)
        losses = accumulated / n_samples
        going = [k for k, track in enumerate(stack.tracks)
                 if not track.end_epoch(losses[k], epoch, lambda k=k: stack.weights(k))]
        if len(going) < len(stack.tracks):
            stack.keep(going)


def _stack_class() -> type:
    from sklearn.neural_network import MLPClassifier

    class StackStarter(MLPClassifier):
        """Validates the data and sets up the first weights and RandomState as MLPClassifier.fit
        does, then trains `_tracks` together instead of itself."""

        _tracks: list[_Track] = []

        def _fit_stochastic(self, X, y, sample_weight, *args, **kwargs):
            if X.dtype != np.float64:  # MLPClassifier would train in float32: the stack is float64
                raise ValueError("train_stacked trains float64 data only")
            _train(self, X, y, self._tracks)

    return StackStarter


@dataclass
class StackedRun:
    """A stack's fit: `model` carries the classes and layers; members in the order given."""

    model: object
    members: list[Member]
    trajectories: int  # distinct alphas: the fits a plain search could not have shared

    def fitted(self, i: int):
        """Member i as a fitted MLPClassifier (its own copy of the model, with its weights)."""
        model, member = copy.copy(self.model), self.members[i]
        model.coefs_, model.intercepts_ = member.coefs, member.intercepts
        model.set_params(**{k: getattr(member, k) for k in VARYING})
        model.n_iter_, model.loss_curve_ = member.n_iter, member.loss_curve
        model.loss_, model.best_loss_ = member.loss_curve[-1], min(member.loss_curve)
        return model


def stackable(params: dict) -> bool:
    """Settings (all of the estimator's parameters) `train_stacked` reproduces."""
    return (params["solver"] == "adam" and not params["early_stopping"] and params["shuffle"]
            and params["batch_size"] == "auto" and not params["warm_start"])


def train_stacked(params: dict, X: np.ndarray, y: np.ndarray, members: list[dict]) -> StackedRun:
    """Train one MLP per member of `members` (each: alpha, tol, n_iter_no_change, max_iter), every
    other setting from `params` (`stackable`), as MLPClassifier(**params, **member).fit(X, y) would.
    Raises what that fit raises on bad data."""
    from scipy import sparse

    if not stackable(params) or sparse.issparse(X):
        raise ValueError("train_stacked reproduces adam without early stopping on dense data only")
    chosen = [Member(**{k: m[k] for k in VARYING}) for m in members]
    tracks: dict[float, _Track] = {}
    for member in chosen:
        tracks.setdefault(member.alpha, _Track(member.alpha, [])).members.append(member)
    starter = _stack_class()(**{**params, **members[0], "max_iter": max(m.max_iter for m in chosen)})
    starter._tracks = list(tracks.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        starter.fit(X, y)
    return StackedRun(starter, chosen, len(tracks))


# -- the start-up self-check ---------------------------------------------------------------------

CHECK_MEMBERS = (  # alphas shared and not, members stopping by tol early and late, and by max_iter
    dict(alpha=0.3, tol=1e-4, n_iter_no_change=10, max_iter=9),
    dict(alpha=0.3, tol=0.02, n_iter_no_change=1, max_iter=9),
    dict(alpha=2.5, tol=0.005, n_iter_no_change=2, max_iter=9),
    dict(alpha=0.0, tol=1e-4, n_iter_no_change=10, max_iter=5),
)
CHECK_NETWORKS = (((5,), "tanh", 2), ((4, 3), "relu", 3))  # (hidden_layer_sizes, activation, classes)


def same_as_mlpclassifier(run: StackedRun, params: dict, X, y) -> bool:
    """Does every member of `run` end as MLPClassifier's own fit does: weights, epochs, loss curve?"""
    from sklearn.neural_network import MLPClassifier

    for i, member in enumerate(run.members):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = MLPClassifier(**{**params, **{k: getattr(member, k) for k in VARYING}}).fit(X, y)
        weights = zip(member.coefs + member.intercepts, theirs.coefs_ + theirs.intercepts_)
        if (member.n_iter != theirs.n_iter_ or member.loss_curve != theirs.loss_curve_
                or not all(np.array_equal(a, b) for a, b in weights)):
            return False
    return True


def _check(trainer=train_stacked) -> bool:
    from sklearn.neural_network import MLPClassifier

    rng = np.random.RandomState(0)
    X = rng.normal(size=(230, 4))  # 230 rows: two batches per epoch, the second a partial one
    for hidden, activation, classes in CHECK_NETWORKS:
        y = rng.randint(classes, size=len(X))
        params = {**MLPClassifier().get_params(), "hidden_layer_sizes": hidden, "activation": activation,
                  "learning_rate_init": 0.01, "random_state": 3}
        try:
            run = trainer(params, X, y, [dict(m) for m in CHECK_MEMBERS])
        except Exception:
            return False
        if not same_as_mlpclassifier(run, params, X, y):
            return False
    return True


@cache
def stacking_is_exact() -> bool:
    """Does `train_stacked` train exactly as this scikit-learn / numpy / BLAS's MLPClassifier? (cached)"""
    return _check()
