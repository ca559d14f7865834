"""`milo compare`: two models side by side, and paired tests on the same generalization rows.

Both models predict the project's test CSV (the rows the engine scored: those with missing values are
dropped as the engine drops them). Accuracy is compared with McNemar's test (exact binomial p-value) and
ROC AUC with DeLong's paired test (macro one-vs-rest for multi-class models); the functions live in
engine/metrics.py with the other metrics. Two models can only be compared on the same question: both main
models, or one-vs-rest models of the same class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from milo_tui.engine.labels import column_positions
from milo_tui.errors import BadInputError
from milo_tui.results.model import ModelKind, ProjectData, ProjectModel, open_project_model

# Metrics shown side by side: (report column, its 95 % CI columns or None).
SIDE_BY_SIDE = (
    ("accuracy", ("acc_95_ci_low", "acc_95_ci_high")),
    ("roc_auc", ("roc_auc_95_ci_low", "roc_auc_95_ci_high")),
    ("sensitivity", ("sn_95_ci_low", "sn_95_ci_high")),
    ("specificity", ("sp_95_ci_low", "sp_95_ci_high")),
    ("avg_sn_sp", None),
    ("f1", None),
    ("mcc", None),
    ("brier_score", None),
)


@dataclass(frozen=True)
class MetricPair:
    name: str
    a: float | None
    a_ci: tuple[float, float] | None
    b: float | None
    b_ci: tuple[float, float] | None


@dataclass(frozen=True)
class PairedTest:
    name: str  # "McNemar (accuracy)" or "DeLong (ROC AUC)"
    a: float
    b: float
    difference: float  # a - b
    statistic: float  # McNemar: chi2 (for reference); DeLong: z
    p_value: float
    detail: str


@dataclass(frozen=True)
class Comparison:
    key_a: str
    key_b: str
    rows: int  # generalization rows both models predicted
    metrics: list[MetricPair]
    accuracy_test: PairedTest
    auc_test: PairedTest
    notes: list[str]


def compare_models(project: Path, key_a: str, key_b: str, *, store=None) -> Comparison:
    from milo_tui.engine.report import read_report
    from milo_tui.engine import metrics as M
    from milo_tui.project import ProjectPaths

    if key_a == key_b:
        raise BadInputError(f"Both keys are {key_a!r}: give two different models to compare.")
    project = Path(project)
    data = ProjectData.read(project)
    a = open_project_model(project, key_a, store=store)
    b = open_project_model(project, key_b, store=store)
    _refuse_different_questions(a, b)
    features, truth = generalization_rows(project, data)
    codes_a, scores_a, correct_a = _scored(a, features, truth, data)
    _, scores_b, correct_b = _scored(b, features, truth, data)
    rows = {r["key"]: r for r in read_report(ProjectPaths.of(project).report) if r.get("archive")}
    mcnemar = M.mcnemar_test(correct_a, correct_b)
    delong = M.delong_paired_test(codes_a, scores_a, scores_b)
    notes = sorted(set(a.notes + b.notes))
    return Comparison(
        key_a=key_a, key_b=key_b, rows=len(truth),
        metrics=[_pair(name, ci, rows.get(key_a, {}), rows.get(key_b, {})) for name, ci in SIDE_BY_SIDE],
        accuracy_test=PairedTest(
            "McNemar (accuracy)", float(np.mean(correct_a)), float(np.mean(correct_b)),
            float(np.mean(correct_a) - np.mean(correct_b)), mcnemar["chi2"], mcnemar["p_value"],
            f"{mcnemar['only_a_correct']} rows only A got right, {mcnemar['only_b_correct']} only B; "
            "exact binomial p-value"),
        auc_test=PairedTest(
            "DeLong (ROC AUC)", delong["auc_a"], delong["auc_b"], delong["difference"], delong["z"],
            delong["p_value"], "paired DeLong test" + (" of the macro one-vs-rest AUC"
                                                       if scores_a.ndim == 2 else "")),
        notes=notes,
    )


def generalization_rows(project: Path, data: ProjectData):
    """The test CSV's features and labels, as the engine scored them (rows with missing values dropped)."""
    import pandas as pd

    from milo_tui.engine.labels import python_labels

    path = Path(project) / _configured_test(project)  # relative to the project (an absolute path stays)
    try:
        frame = pd.read_csv(path).dropna(axis=0, how="any")
    except (OSError, ValueError) as exc:
        raise BadInputError(
            f"The test CSV {path} cannot be read ({exc}); milo compare scores both models on it. "
            "Restore the file the project was trained with.") from None
    if data.target not in frame.columns or any(f not in frame.columns for f in data.feature_names):
        raise BadInputError(f"The test CSV {path} no longer has the columns the models were trained with.")
    labels = python_labels(frame[data.target].tolist())
    return frame[data.feature_names], labels


def _configured_test(project: Path) -> str:
    import json

    from milo_tui.project import ProjectPaths

    meta = json.loads(ProjectPaths.of(project).metadata.read_text(encoding="utf-8"))
    return str(((meta.get("config") or {}).get("data") or {}).get("test", "test.csv"))


def _scored(model: ProjectModel, features, truth: list, data: ProjectData):
    """(true codes, scores for the AUC, correct per row) of one model on the generalization rows."""
    predicted, proba = model.predict(features)
    truth_arr = np.asarray(truth, dtype=object)
    if model.kind is ModelKind.OVR:
        positive = next(c for c in model.classes if c != data.labels.rest)
        is_positive = np.array([t == positive for t in truth], dtype=bool)
        expected = np.where(is_positive, positive, data.labels.rest)
        scores = proba[:, column_positions(model.classes, [positive])[0]]
        return is_positive.astype(np.int64), scores, _equal(predicted, expected)
    code_of = {value: code for code, value in enumerate(data.labels.values)}
    codes = np.array([code_of[t] for t in truth], dtype=np.int64)
    ordered = proba[:, column_positions(model.classes, list(data.labels.values))]
    scores = ordered[:, 1] if ordered.shape[1] == 2 else ordered
    return codes, scores, _equal(predicted, truth_arr)


def _equal(predicted, expected) -> np.ndarray:
    return np.array([p == e for p, e in zip(np.asarray(predicted, dtype=object), expected)], dtype=bool)


def _refuse_different_questions(a: ProjectModel, b: ProjectModel) -> None:
    if a.kind is not b.kind or (a.kind is ModelKind.OVR and sorted(map(str, a.classes)) != sorted(map(str, b.classes))):
        raise BadInputError(
            f"{a.key} and {b.key} answer different questions ({_question(a)} and {_question(b)}), so their "
            "accuracy and AUC cannot be compared row by row. Compare two main models, or two one-vs-rest "
            "models of the same class.")


def _question(model: ProjectModel) -> str:
    if model.kind is ModelKind.OVR:
        return "one class against the rest: " + " vs ".join(map(str, model.classes))
    return "which of " + ", ".join(map(str, model.classes))


def _pair(name: str, ci: tuple[str, str] | None, row_a: dict, row_b: dict) -> MetricPair:
    def number(row, column):
        value = row.get(column)
        return float(value) if isinstance(value, (int, float)) and value == value else None

    def interval(row):
        if ci is None:
            return None
        low, high = number(row, ci[0]), number(row, ci[1])
        return (low, high) if low is not None and high is not None else None

    return MetricPair(name, number(row_a, name), interval(row_a), number(row_b, name), interval(row_b))
