"""What to train and in which order: pure, so it is unit-tested without a process.

A run trains every pipeline's main models (phase "main"), then, for a
multi-class problem with reoptimize_ovr, one binary refit per finished main
model per class (phase "ovr", class by class). A resumed run skips what is
already done.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from milo_tui.config import Config
from milo_tui.engine.grids import SearchSpace
from milo_tui.engine.space import (PipelineSpec, enumerate_pipelines, model_keys, models_per_pipeline,
                                   search_plan)
from milo_tui.keys import ModelKey
from milo_tui.memory.estimate import OVR_WORK, pipeline_seconds


@dataclass
class Unit:
    """One worker task-to-be: a pipeline's search (main) or its refits for one class (ovr)."""

    phase: str
    spec: PipelineSpec
    keys: list[str]
    class_index: int | None = None
    ovr_params: dict[str, dict] = field(default_factory=dict)
    attempt: int = 1
    estimate: int = 0  # bytes, set when it is about to start

    @property
    def unit_id(self) -> str:
        """Names the unit across retries (the governor counts kills per unit)."""
        return self.spec.name if self.class_index is None else f"{self.spec.name}@class{self.class_index}"

    @property
    def archive(self) -> str:
        return "main_models" if self.phase == "main" else "ovr_models"


@dataclass(frozen=True)
class Work:
    """What the ETA starts from: each pipeline's rough seconds (memory/estimate.py), so that an hour
    of boosting ahead is not counted like an hour of naive Bayes; engine/workmeter.py corrects them
    with the seconds pipelines really take. Without the data's size (a plan made in a test) every
    main model weighs 1."""

    per_model: dict[str, float]  # pipeline name -> one of its main models' share of the pipeline's seconds
    models: dict[str, int]  # pipeline name -> its main models
    done: float  # models (main and OvR) finished before this run (resume)

    def of(self, pipeline: str, phase: str = "main") -> float:
        per_model = self.per_model.get(pipeline, 1.0)
        return per_model * OVR_WORK if phase == "ovr" else per_model

    def of_key(self, key: str) -> float:
        try:
            parsed = ModelKey.parse(key)
        except ValueError:
            return 0.0
        return self.of(parsed.pipeline, "main" if parsed.ovr_class is None else "ovr")


@dataclass(frozen=True)
class Plan:
    pipelines: list[PipelineSpec]
    main_units: list[Unit]  # what phase "main" still has to train, in order
    main_total: int  # main models of the whole run, done or not
    n_classes: int
    ovr: bool  # is there an OvR phase
    already_done: int  # models finished before this run (resume)
    space: SearchSpace  # the grids and random draws every search uses
    search: dict  # candidates and CV fits per pipeline (metadata.json)
    work: Work = field(default_factory=lambda: Work({}, {}, 0.0))

    @property
    def ovr_total(self) -> int:
        """OvR models if every main model finishes (the OvR phase recounts from the ones that did)."""
        return self.main_total * self.n_classes if self.ovr else 0

    @property
    def total(self) -> int:
        return self.main_total + self.ovr_total


def make_plan(config: Config, n_classes: int, done_keys: set[str], *, smallest_class: int | None = None,
              fit_rows: int | None = None, features: int | None = None) -> Plan:
    """`smallest_class`: rows of the smallest class in the fitting set (MILO-ML's k-NN draws depend on it);
    `fit_rows` and `features`: the fitting set's size, which weighs pipelines for the ETA."""
    s = config.search
    space = SearchSpace.from_config(config)
    pipelines = enumerate_pipelines(config)
    search = search_plan(pipelines, space, s["scorers"], s["top_k"], s["cv_folds"], smallest_class)
    main_units: list[Unit] = []
    main_total = 0
    per_model: dict[str, float] = {}
    models: dict[str, int] = {}
    for spec in pipelines:
        count = models_per_pipeline(spec, s["scorers"], s["top_k"], space, smallest_class)
        keys = model_keys(spec, s["scorers"], s["top_k"])[:count]
        main_total += count
        seconds = (pipeline_seconds(spec.algorithm, spec.selector, search["pipelines"][spec.name], fit_rows,
                                    features, s["cv_folds"]) if fit_rows and features else float(count))
        per_model[spec.name] = seconds / max(1, count)
        models[spec.name] = count
        if not all(k in done_keys for k in keys):  # rows of one pipeline are written together
            main_units.append(Unit("main", spec, keys))
    ovr = n_classes > 2 and bool(s["reoptimize_ovr"])
    work = Work(per_model, models, done=0.0)
    work = replace(work, done=sum(work.of_key(k) for k in done_keys))
    return Plan(pipelines, main_units, main_total, n_classes, ovr, already_done=len(done_keys), space=space,
                search=search, work=work)


def ovr_units(pipelines: list[PipelineSpec], main_params: dict[str, dict], class_index: int,
              done_keys: set[str]) -> list[Unit]:
    """Phase "ovr" for one class: refit each finished main model's parameters, one unit per pipeline.

    `main_params`: finished main model key -> its best parameters.
    """
    by_pipeline: dict[str, dict[str, dict]] = {}
    for key, params in main_params.items():
        main = ModelKey.parse(key)
        by_pipeline.setdefault(main.pipeline, {})[main.for_class(class_index).format()] = params
    units = []
    for spec in pipelines:
        todo = {k: v for k, v in by_pipeline.get(spec.name, {}).items() if k not in done_keys}
        if todo:
            units.append(Unit("ovr", spec, list(todo), class_index, todo))
    return units
