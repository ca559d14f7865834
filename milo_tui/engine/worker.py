"""What one worker process does: search one pipeline, refit its best parameter sets,
save each fitted Pipeline, and send back only metrics.

Runs in a process started from the pre-warmed forkserver (see executor.py) and
exits afterwards, so all memory it used returns to the operating system.
"""

from __future__ import annotations

import json
import os
import resource
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from milo_tui.engine.grids import SearchSpace
from milo_tui.engine.space import PipelineSpec, make_pipeline, model_keys
from milo_tui.keys import ModelKey



@dataclass
class TrainTask:
    """Everything a worker needs, small enough to pickle: arrays travel as file paths."""

    phase: str  # "main" or "ovr"
    spec: PipelineSpec
    scorers: list[str]
    top_k: int
    cv_folds: int
    space: SearchSpace
    n_jobs: int
    seed: int
    class_labels: list[str]  # display form, for report.csv and events
    arrays: dict[str, str]
    models_dir: str
    class_results_dir: str
    archive: str  # "main_models" or "ovr_models"
    class_index: int | None = None  # ovr: the class trained against the rest
    ovr_params: dict[str, dict] = field(default_factory=dict)  # ovr: model key -> parameters to refit
    attempt: int = 1
    # What saved models are fitted with, so they work in the user's terms (engine/labels.py):
    class_values: list = field(default_factory=list)  # the labels with their type, in code order
    rest_label: object = None  # one-vs-rest models' "any other class"
    feature_names: list[str] = field(default_factory=list)  # train.csv's feature columns, in order
    fold_cache: str = ""  # the run's private fold cache directory (engine/foldcache.py); "" = none

    @property
    def keys(self) -> list[str]:
        if self.phase == "ovr":
            return list(self.ovr_params)
        return model_keys(self.spec, self.scorers, self.top_k)


def peak_memory_mb() -> float:
    """Peak resident memory of this worker and its children (loky jobs), in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round((own + children) / 1024, 1)  # Linux reports KiB


def _test_balloon(task: TrainTask) -> bytearray | None:
    """Test hook: MILO_TEST_BALLOON="algorithm:MB[:first]" makes this worker hold MB of memory.

    Lets the memory tests drive warning, critical and kill-and-retry with a real
    memory-hungry worker; ":first" balloons on the first attempt only.
    """
    spec = os.environ.get("MILO_TEST_BALLOON")
    if not spec:
        return None
    algorithm, _, rest = spec.partition(":")
    mb, _, when = rest.partition(":")
    if algorithm != task.spec.algorithm or (when == "first" and task.attempt > 1):
        return None
    balloon = bytearray(int(mb) * 1024 * 1024)
    for i in range(0, len(balloon), 4096):  # touch every page so it is resident
        balloon[i] = 1
    hold = float(os.environ.get("MILO_TEST_BALLOON_SECONDS", "1.0"))
    time.sleep(hold)
    return balloon


def _jsonable(value):
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "item"):
        return value.item()
    return value


def params_to_json(params: dict) -> str:
    return json.dumps({k: _jsonable(v) for k, v in sorted(params.items())}, sort_keys=True)


def params_from_json(text: str) -> dict:
    params = json.loads(text)
    # JSON has no tuples; sklearn wants hidden_layer_sizes as one.
    return {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}


class UserTerms:
    """Turns the shared coded arrays into what a saved model is fitted on, and its answers back into codes.

    The arrays stay memory-mapped: the DataFrames wrap them without copying, and only the label
    vector (one small array per model) is built in the user's labels.
    """

    def __init__(self, task: TrainTask, n_features: int) -> None:
        from milo_tui.engine.labels import ClassLabels

        values = task.class_values or list(range(len(task.class_labels)))
        self.labels = ClassLabels.of(values, task.rest_label)
        self.feature_names = list(task.feature_names) or [f"x{i}" for i in range(n_features)]
        self.class_index = task.class_index if task.phase == "ovr" else None

    def frame(self, X: np.ndarray):
        import pandas as pd

        return pd.DataFrame(X, columns=self.feature_names, copy=False)

    def target(self, codes: np.ndarray) -> np.ndarray:
        if self.class_index is not None:
            return self.labels.one_vs_rest(codes, self.class_index)
        return self.labels.decode(codes)

    def coded_answers(self, model, X) -> tuple[np.ndarray, np.ndarray]:
        """(predicted codes, probabilities in code order) on X; one-vs-rest: 1 = its class, 0 = the rest."""
        from milo_tui.engine.labels import column_positions

        frame = self.frame(X)
        proba = model.predict_proba(frame)
        predicted = np.asarray(model.predict(frame), dtype=object)
        if self.class_index is not None:
            positive = self.labels.values[self.class_index]
            rest_col, positive_col = column_positions(model.classes_, [self.labels.rest, positive])
            is_positive = np.array([p == positive for p in predicted], dtype=bool)
            return is_positive.astype(np.int64), proba[:, [rest_col, positive_col]]
        columns = column_positions(model.classes_, list(self.labels.values))
        code_of = {value: code for code, value in enumerate(self.labels.values)}
        codes = np.array([code_of[p.item() if hasattr(p, "item") else p] for p in predicted], dtype=np.int64)
        return codes, proba[:, columns]


def run_search(task: TrainTask, X: np.ndarray, y: np.ndarray, n_classes: int) -> dict[str, dict]:
    """Multi-metric search with stratified CV (engine/search.py: the scores of a plain
    GridSearchCV/RandomizedSearchCV, with fewer fits); returns model key -> parameters to refit."""
    from milo_tui.engine import search
    from milo_tui.engine.foldcache import FoldCache

    cache = FoldCache(task.fold_cache) if task.fold_cache else None
    result = search.run_search(task.spec, task.space, X, y, scorers=task.scorers, cv_folds=task.cv_folds,
                               seed=task.seed, n_jobs=task.n_jobs, cache=cache)
    chosen: dict[str, dict] = {}
    for scorer in task.scorers:
        for rank, params in enumerate(result.chosen(scorer, task.top_k)):
            chosen[task.spec.model_key(scorer, rank)] = {f"clf__{k}": v for k, v in params.items()}
    return chosen


def same_params_together(to_refit: dict[str, dict]) -> list[tuple[str, dict]]:
    """Model keys ordered so keys with the same parameters follow each other (first-seen order)."""
    groups: dict[str, list[tuple[str, dict]]] = {}
    for key, params in to_refit.items():
        groups.setdefault(params_to_json(params), []).append((key, params))
    return [item for group in groups.values() for item in group]


def train(task: TrainTask) -> dict:
    """Train the task's models. Returns {"rows": [...], "peak_memory_mb", "seconds"}."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import confusion_matrix

    from milo_tui.engine import metrics as M
    from milo_tui.engine.data import map_arrays
    from milo_tui.project import atomic_write_json
    from milo_tui.storage.files import save_model

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    started = time.perf_counter()
    balloon = _test_balloon(task)
    data = map_arrays(task.arrays)
    n_classes = len(task.class_labels)
    X_fit, X_int, X_test = data["X_fit"], data["X_internal"], data["X_test"]
    y_fit, y_int, y_test = data["y_fit"], data["y_internal"], data["y_test"]
    if task.phase == "ovr":
        positive = task.class_index
        # The metrics see class vs rest as 1/0; the model itself is fitted on labels (UserTerms.target).
        y_int, y_test = ((y == positive).astype(np.int64) for y in (y_int, y_test))
        to_refit = task.ovr_params
        model_classes = 2
    else:
        to_refit = run_search(task, X_fit, y_fit, n_classes)
        model_classes = n_classes
    search_seconds = time.perf_counter() - started

    terms = UserTerms(task, X_fit.shape[1])
    rows: list[dict] = []
    last_fit: tuple[str, object, float] = ("", None, 0.0)  # (parameters, model, seconds)
    for key, params in same_params_together(to_refit):
        if last_fit[0] != params_to_json(params):  # two scorers often pick the same set: fit it once
            last_fit = ("", None, 0.0)  # let the previous model go before fitting the next
            refit_started = time.perf_counter()
            model = make_pipeline(task.spec, X_fit.shape[1], task.seed, for_refit=True)
            model.set_params(**params)
            model.fit(terms.frame(X_fit), terms.target(y_fit))
            last_fit = (params_to_json(params), model, time.perf_counter() - refit_started)
        _, model, train_seconds = last_fit
        model_bytes = save_model(model, Path(task.models_dir), key)
        predicted, proba = terms.coded_answers(model, X_test)
        internal_proba = terms.coded_answers(model, X_int)[1]
        training_auc = M.training_auc(y_int, internal_proba[:, 1] if model_classes == 2 else internal_proba,
                                      model_classes)
        scorer, rank = _scorer_and_rank(key, task)
        base = {
            "key": key, "phase": task.phase, "archive": task.archive,
            "scaler": task.spec.scaler, "feature_selector": task.spec.selector,
            "algorithm": task.spec.algorithm, "searcher": task.spec.searcher,
            "scorer": scorer, "rank": rank, "status": "ok", "reason": "",
            "best_params": params_to_json(params), "train_seconds": round(train_seconds, 4),
            "search_seconds": round(search_seconds, 4), "model_bytes": model_bytes,
        }
        result_doc: dict = {"key": key}
        if model_classes == 2:
            metrics = M.binary_metrics(y_test, predicted, proba[:, 1])
            label = task.class_labels[task.class_index] if task.phase == "ovr" else task.class_labels[1]
            rows.append({**base, **metrics,
                         "class_type": "ovr" if task.phase == "ovr" else "binary",
                         "class_index": task.class_index if task.phase == "ovr" else 1,
                         "class_label": label,
                         "training_roc_auc": training_auc,
                         "roc_delta": _delta(training_auc, metrics.get("roc_auc"))})
            result_doc.update(
                class_type=rows[-1]["class_type"],
                class_labels=([str(terms.labels.rest), label] if task.phase == "ovr" else task.class_labels),
                rest_label=terms.labels.rest if task.phase == "ovr" else None,
                confusion_matrix=confusion_matrix(y_test, predicted, labels=[0, 1]).tolist(),
                curves=M.curves(y_test, proba[:, 1]),
            )
        else:
            metrics = M.multiclass_metrics(y_test, predicted, proba)
            rows.append({**base, **metrics, "class_type": "multiclass", "class_index": "",
                         "class_label": "", "training_roc_auc": training_auc,
                         "roc_delta": _delta(training_auc, metrics.get("roc_auc"))})
            per_class = []
            for i, label in enumerate(task.class_labels):
                class_metrics = M.ovr_class_metrics(y_test, predicted, proba, i)
                rows.append({**base, **class_metrics, "archive": "", "model_bytes": "",
                             "class_type": "ovr", "class_index": i, "class_label": label,
                             "training_roc_auc": "", "roc_delta": ""})
                per_class.append({"class_index": i, "class_label": label, "metrics": class_metrics,
                                  "curves": M.curves((y_test == i).astype(np.int64), proba[:, i])})
            result_doc.update(
                class_type="multiclass", class_labels=task.class_labels,
                confusion_matrix=confusion_matrix(y_test, predicted, labels=list(range(n_classes))).tolist(),
                per_class=per_class,
            )
        atomic_write_json(Path(task.class_results_dir) / f"{key}.json", result_doc, compact=True)
    model = last_fit = None  # noqa: F841 (drop the last model before measuring the peak)
    peak = peak_memory_mb()
    for row in rows:
        row["peak_memory_mb"] = peak
    del balloon
    return {"rows": rows, "peak_memory_mb": peak, "seconds": round(time.perf_counter() - started, 4)}


def _delta(training: float | None, test: float | None):
    if training is None or test is None:
        return ""
    try:
        value = float(training) - float(test)
    except (TypeError, ValueError):
        return ""
    return value if value == value else ""


def _scorer_and_rank(key: str, task: TrainTask) -> tuple[str, int]:
    parsed = ModelKey.parse(key)
    return parsed.scorer, parsed.rank
