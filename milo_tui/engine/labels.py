"""Class labels in the user's terms: what saved models predict, and how one-vs-rest models name "the rest".

The engine encodes the target as codes 0..K-1 for its shared arrays (the search and the metrics work on
codes), but every saved model is refitted on the user's own labels, with their type: a CSV whose target
holds "benign"/"malignant" gives models that predict those strings, a target of 1/2/3 gives integers.

A one-vs-rest model for class L is a binary model whose classes are L and the *rest marker*: one value per
project, of the labels' own type (scikit-learn cannot sort a mix of strings and numbers), recorded in
metadata.json (data.rest_label) and used the same way in report.csv, class_results/, the TUI and
`milo predict`:

- string labels: "rest" (or "rest_" , "rest__", ... when a class is itself called "rest");
- integer labels: -1 (or one less than the smallest label when -1 is a class);
- float labels: -1.0 (likewise).

Two-class problems have no one-vs-rest models, so boolean labels never need a marker.

Model format 2 (this one) is recorded in metadata.json as data.model_format. Projects written before it
(no model_format) hold models that predict codes 0..K-1 and know no feature names; readers decode those
through metadata's label_mapping (see milo_tui.results.model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODEL_FORMAT = 2
REST_TEXT = "rest"


def label_kind(values: list) -> str:
    """"str", "int", "float" or "bool": the type every label of a target column shares."""
    if all(isinstance(v, bool) for v in values):
        return "bool"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "int"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "float"
    return "str"


def python_labels(values) -> list:
    """Plain Python labels (JSON-able) from a column's unique values; integral floats become ints.

    A target column with an empty cell is read as floats (1.0, 2.0) even though the user wrote
    integers; once those rows are dropped, the labels are the integers the file shows.
    """
    plain = [v.item() if hasattr(v, "item") else v for v in values]
    if plain and all(isinstance(v, float) and v.is_integer() for v in plain):
        return [int(v) for v in plain]
    if label_kind(plain) == "str":
        return [str(v) for v in plain]
    return plain


def rest_marker(values: list):
    """The project's one-vs-rest "rest" value: of the labels' type and never one of them."""
    kind = label_kind(values)
    if kind == "str":
        marker = REST_TEXT
        while marker in values:
            marker += "_"
        return marker
    if kind in ("int", "float"):
        marker = -1 if kind == "int" else -1.0
        return marker if marker not in values else min(values) - 1
    return None  # booleans: two classes, no one-vs-rest models


@dataclass(frozen=True)
class ClassLabels:
    """The user's labels in code order (code i = values[i]) and the project's rest marker."""

    values: tuple
    rest: object = None

    @classmethod
    def of(cls, values: list, rest=None) -> "ClassLabels":
        return cls(tuple(values), rest_marker(list(values)) if rest is None else rest)

    def array(self) -> np.ndarray:
        """The labels as a numpy array of their type (strings as objects, like pandas gives them)."""
        if label_kind(list(self.values)) == "str":
            return np.array(self.values, dtype=object)
        return np.array(self.values)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes 0..K-1 -> the user's labels."""
        return self.array()[np.asarray(codes, dtype=np.int64)]

    def one_vs_rest(self, codes: np.ndarray, class_index: int) -> np.ndarray:
        """Codes -> the labels a one-vs-rest model for class `class_index` is trained on."""
        codes = np.asarray(codes, dtype=np.int64)
        kind = label_kind(list(self.values))
        out = np.empty(len(codes), dtype=object if kind == "str" else self.array().dtype)
        out[:] = self.rest
        out[codes == class_index] = self.values[class_index]
        return out


def column_positions(model_classes, wanted: list) -> list[int]:
    """Where each wanted label sits among a fitted model's classes_ (its predict_proba columns)."""
    position = {_plain(value): i for i, value in enumerate(np.asarray(model_classes).tolist())}
    missing = [value for value in wanted if _plain(value) not in position]
    if missing:
        raise ValueError(f"the model has no class {missing!r} (its classes are {list(position)!r})")
    return [position[_plain(value)] for value in wanted]


def _plain(value):
    return value.item() if hasattr(value, "item") else value
