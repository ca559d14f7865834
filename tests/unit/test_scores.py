"""engine/scores.py against scikit-learn's accuracy_score and f1_score(average="macro").

What must survive: for any integer labels (binary and multi-class, classes missing from either side,
a single class, one row) both give exactly scikit-learn's value, not merely a close one: the search
ranks candidates by their mean scores and a last-bit difference would break a tie the other way.
"""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score

from milo_tui.engine.scores import accuracy, f1_macro

labels = st.integers(min_value=1, max_value=60).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 4), min_size=n, max_size=n), st.lists(st.integers(0, 4), min_size=n, max_size=n)))


@settings(max_examples=300, deadline=None)
@given(labels)
def test_accuracy_and_macro_f1_equal_scikit_learns(pair):
    y_true, y_pred = (np.asarray(v, dtype=np.int64) for v in pair)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert accuracy(y_true, y_pred) == accuracy_score(y_true, y_pred)
        assert f1_macro(y_true, y_pred) == f1_score(y_true, y_pred, average="macro")


def test_other_labels_go_to_scikit_learn():
    assert accuracy(np.array(["a", "b"]), np.array(["a", "a"])) == 0.5
    assert f1_macro(np.array(["a", "b"]), np.array(["a", "b"])) == 1.0
