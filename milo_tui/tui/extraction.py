"""What the details screen shows about one model, gathered off the UI thread.

Plain Python (no textual): the app runs `gather_details` in a worker thread.
The model itself comes from the storage read API (verified against its hash
by the store); metrics with confidence intervals from report.csv; confusion
matrix and curves from class_results/<key>.json.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from milo_tui.errors import MiloError
from milo_tui.project import ProjectPaths
from milo_tui.tui.project_files import find_report_row, read_class_results
from milo_tui.runstate import ModelRow

MAX_PARAM_CHARS = 60
# What unpickling a saved pipeline imports: scikit-learn's pipeline, scalers, selectors and estimators.
MODEL_MODULES = ("joblib", "sklearn.pipeline", "sklearn.preprocessing", "sklearn.feature_selection",
                 "sklearn.decomposition", "sklearn.linear_model", "sklearn.neighbors", "sklearn.ensemble",
                 "sklearn.svm", "sklearn.neural_network", "sklearn.naive_bayes")


def warm_model_imports(modules: tuple[str, ...] = MODEL_MODULES) -> float:
    """Import what opening a model needs, so the first model opens as fast as later ones; seconds spent.

    Run in a background thread after start: the ~1 s of scikit-learn imports
    is then paid while the user looks at the dashboard, not when they press x.
    """
    started = time.perf_counter()
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            continue  # an optional library missing only makes the first open slower
    return time.perf_counter() - started


class ModelStoreLike(Protocol):
    """The part of milo_tui.storage.store.ModelStore the UI uses."""

    def list_models(self) -> list[Any]: ...
    def open_model(self, key: str) -> Any: ...
    def export(self, key: str, dest: Any, bundle: bool = False, report_row: dict | None = None) -> Any: ...
    def stats(self) -> Any: ...


@dataclass
class PipelineStep:
    name: str
    class_name: str
    params: dict[str, str]  # parameters that differ from the class defaults (all, if unknown)


@dataclass
class ModelDetails:
    row: ModelRow
    steps: list[PipelineStep] = field(default_factory=list)
    report: dict[str, str] = field(default_factory=dict)
    class_results: dict[str, Any] | None = None
    error: str = ""  # set when the model could not be extracted (the rest may still show)
    notes: list[str] = field(default_factory=list)  # what `milo predict` would say about this model
    seconds: float = 0.0


def gather_details(store: ModelStoreLike | None, paths: ProjectPaths, row: ModelRow,
                   store_error: str = "", timer: Callable[[], float] = time.perf_counter) -> ModelDetails:
    started = timer()
    details = ModelDetails(row=row, report=row.report or find_report_row(paths, row.row_id) or {})
    details.class_results = read_class_results(paths, row.key)
    if store is None:
        details.error = store_error or "The model store is not available."
    else:
        try:
            pipeline = store.open_model(row.model_key)
            details.steps = describe_pipeline(pipeline)
            details.notes = model_notes(paths, row.model_key, pipeline)
        except MiloError as exc:
            details.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - anything else is shown, never crashes the UI
            details.error = f"Extraction failed: {type(exc).__name__}: {exc}"
    details.seconds = timer() - started
    return details


def model_notes(paths: ProjectPaths, key: str, model: Any) -> list[str]:
    """The notes `milo predict` and `milo compare` print about a model they open (trained under another
    scikit-learn than the installed one; saved by an older milo), from their own code."""
    from milo_tui.results.model import ProjectData, describe_model, sklearn_version_note  # scikit-learn: loaded

    try:
        data = ProjectData.read(paths.root)
    except MiloError:
        return []  # no readable metadata.json: nothing is known about how it was trained
    try:
        return describe_model(key, model, data).notes
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):  # not a fitted classifier
        note = sklearn_version_note(data.trained_versions.get("scikit-learn"))
        return [note] if note else []


def describe_pipeline(pipeline: Any) -> list[PipelineStep]:
    steps = getattr(pipeline, "steps", None)
    if steps is None:
        return [_describe_step("model", pipeline)]
    return [_describe_step(str(name), step) for name, step in steps]


def _describe_step(name: str, estimator: Any) -> PipelineStep:
    if estimator is None or estimator == "passthrough":
        return PipelineStep(name, "passthrough", {})
    params: dict[str, Any] = {}
    if hasattr(estimator, "get_params"):
        params = estimator.get_params(deep=False)
        defaults = _defaults_of(type(estimator))
        if defaults is not None:
            params = {k: v for k, v in params.items() if k not in defaults or not _same(defaults[k], v)}
    return PipelineStep(name, type(estimator).__name__, {k: _short(v) for k, v in sorted(params.items())})


def _defaults_of(cls: type) -> dict[str, Any] | None:
    try:
        return cls().get_params(deep=False)
    except Exception:  # noqa: BLE001 - classes with required arguments: show every parameter
        return None


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) if type(a) is type(b) else False
    except Exception:  # noqa: BLE001 - arrays and estimators compare oddly
        return repr(a) == repr(b)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_PARAM_CHARS else text[: MAX_PARAM_CHARS - 1] + "…"
