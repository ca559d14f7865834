"""The vocabulary every part shares: model keys, the best-model order, metric names, run statuses.

Plain Python with no milo imports, so the engine, runstate, storage and the TUI
can all use one definition of each.

A model key names one trained model the way MILO-ML did:
``scaler__selector__algorithm__searcher__scorer__rank`` for a main model, and
the same followed by ``_ovr_class_<i>`` for its one-vs-rest refit of class i.
The first four parts are the pipeline's name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Callable, Iterable, Mapping, TypeVar

SEPARATOR = "__"
OVR_MARK = "_ovr_class_"


@dataclass(frozen=True)
class ModelKey:
    scaler: str
    selector: str
    algorithm: str
    searcher: str
    scorer: str
    rank: int
    ovr_class: int | None = None  # the class of a one-vs-rest refit

    @property
    def pipeline(self) -> str:
        """The pipeline (search) this model came from: `scaler__selector__algorithm__searcher`."""
        return SEPARATOR.join((self.scaler, self.selector, self.algorithm, self.searcher))

    @property
    def main(self) -> "ModelKey":
        """The main model an OvR refit re-optimizes (itself for a main model)."""
        return ModelKey(self.scaler, self.selector, self.algorithm, self.searcher, self.scorer, self.rank)

    def for_class(self, class_index: int) -> "ModelKey":
        """The key of this main model's one-vs-rest refit of `class_index`."""
        return ModelKey(self.scaler, self.selector, self.algorithm, self.searcher, self.scorer, self.rank,
                        class_index)

    def format(self) -> str:
        base = SEPARATOR.join((self.pipeline, self.scorer, str(self.rank)))
        return base if self.ovr_class is None else f"{base}{OVR_MARK}{self.ovr_class}"

    def __str__(self) -> str:
        return self.format()

    @classmethod
    def parse(cls, text: str) -> "ModelKey":
        """ValueError (naming the key) for anything that is not a model key."""
        base, mark, cls_text = text.partition(OVR_MARK)
        parts = base.split(SEPARATOR)
        if len(parts) != 6 or not all(parts) or not parts[5].isdigit() or (mark and not cls_text.isdigit()):
            raise ValueError(f"{text!r} is not a model key (scaler__selector__algorithm__searcher__scorer__rank"
                             f"[{OVR_MARK}N])")
        return cls(*parts[:5], int(parts[5]), int(cls_text) if mark else None)

    @classmethod
    def of_pipeline(cls, pipeline: str, scorer: str, rank: int) -> "ModelKey":
        scaler, selector, algorithm, searcher = pipeline.split(SEPARATOR)
        return cls(scaler, selector, algorithm, searcher, scorer, rank)


def key_parts(text: str) -> dict[str, str]:
    """A key's named parts as text, for display; "" for parts a malformed key lacks."""
    names = ("scaler", "selector", "algorithm", "searcher", "scorer", "rank")
    try:
        key = ModelKey.parse(text)
    except ValueError:
        parts = text.partition(OVR_MARK)[0].split(SEPARATOR)
        return {name: (parts[i] if i < len(parts) else "") for i, name in enumerate(names)}
    return {"scaler": key.scaler, "selector": key.selector, "algorithm": key.algorithm,
            "searcher": key.searcher, "scorer": key.scorer, "rank": str(key.rank)}


# -- metrics and the best model -----------------------------------------------------------

# The headline metrics of a model, in the order events and screens show them.
METRIC_NAMES = ("accuracy", "roc_auc", "avg_sn_sp", "sensitivity", "specificity", "f1", "mcc", "brier_score")

# MILO-ML's "best model": highest avg_sn_sp, then sensitivity, then f1.
BEST_ORDER = ("avg_sn_sp", "sensitivity", "f1")

T = TypeVar("T")


def _score(value: object) -> float:
    """A metric as a sortable number: missing, NaN or non-numeric sorts last."""
    if type(value) is float:  # the usual case: no conversion
        return value if math.isfinite(value) else float("-inf")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return float("-inf")
    number = float(value)
    return number if math.isfinite(number) else float("-inf")


def best_order_key(metrics: Mapping[str, object]) -> tuple[float, ...]:
    """Sort key of the best-model order (higher is better)."""
    return tuple(_score(metrics.get(name)) for name in BEST_ORDER)


def sort_best_first(items: Iterable[T], metrics_of: Callable[[T], Mapping[str, object]]) -> list[T]:
    return sorted(items, key=lambda item: best_order_key(metrics_of(item)), reverse=True)


# -- run statuses --------------------------------------------------------------------------

class RunStatus(StrEnum):
    """How a run stands (metadata.json, run_finished, the screens). A str: equal to its text."""

    WAITING = "waiting"  # front end only: no run_started seen yet
    RUNNING = "running"
    COMPLETED = "completed"
    STOPPED_MEMORY = "stopped_memory"
    INTERRUPTED = "interrupted"
    DISK_FULL = "disk_full"
    FAILED = "failed"
    BAD_INPUT = "bad_input"  # refused before anything was touched
    ENGINE_DIED = "engine_died"  # front end only: the engine exited without run_finished

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.STOPPED_MEMORY, RunStatus.FAILED,
                            RunStatus.INTERRUPTED, RunStatus.DISK_FULL})
