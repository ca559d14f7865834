"""How much of a run is done and how much is left, in worker-seconds: what the ETA reads.

Counting models misleads: MILO-ML's full space starts with gradient boosting (an hour of
1,000-stage searches), so after its first models the rate of models promised ten more hours,
while naive Bayes' models take a second each. So every pipeline starts with `milo estimate`'s
rough seconds (plan.Work), and as pipelines finish, the meter learns how far off that estimate is
for each algorithm (seconds measured ÷ seconds estimated) and scales what is left of that
algorithm by it. An algorithm not seen yet takes the seen algorithms' ratios' geometric mean,
shrunk towards 1 (`UNSEEN_PRIOR`): one algorithm's error is mostly its own (in the full MILO-ML
run, gb took 1.7x its estimate and mlp 0.16x), while a machine slower or faster than the
constants shows in all of them, which several seen algorithms agree on. The run's overall ratio,
used before, let gb's first pipelines scale mlp's hours of estimate: the ETA said 4.4 h a
quarter into a run that took 1.3 h.

The runner sends `done` and `total` with every model event (docs/EVENTS.md, "Work"); RunState's
ETA is elapsed × (total − done) ÷ the work done since the run started.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from milo_tui.engine.plan import Plan, Unit, Work
from milo_tui.keys import ModelKey


UNSEEN_PRIOR = 2  # pseudo-algorithms at ratio 1 that an unseen algorithm's ratio is shrunk towards


@dataclass
class WorkMeter:
    work: Work
    done: float = 0.0  # worker-seconds of this run, plus the estimate of what earlier runs finished
    remaining: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    measured: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # algorithm -> seconds
    estimated: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # ... and their estimate

    @classmethod
    def for_plan(cls, plan: Plan) -> WorkMeter:
        meter = cls(plan.work, done=plan.work.done)
        for unit in plan.main_units:
            meter.remaining["main", unit.spec.algorithm] += plan.work.of(unit.spec.name) * len(unit.keys)
        if plan.ovr:  # until the OvR phase recounts: every main model refitted once per class
            for spec in plan.pipelines:
                meter.remaining["ovr", spec.algorithm] += (plan.work.of(spec.name, "ovr")
                                                           * plan.work.models.get(spec.name, 0) * plan.n_classes)
        return meter

    def finished(self, unit: Unit, models: int, seconds: float) -> None:
        """`models` of `unit` are done (trained, failed or skipped), after `seconds` of a worker."""
        algorithm = unit.spec.algorithm
        estimate = self.work.of(unit.spec.name, unit.phase) * models
        left = (unit.phase, algorithm)
        self.remaining[left] = max(0.0, self.remaining[left] - estimate)
        if seconds > 0:  # a model skipped before it started says nothing about the estimate
            self.estimated[algorithm] += estimate
            self.measured[algorithm] += seconds
        self.done += seconds

    def expect_ovr(self, main_keys: list[str], n_classes: int) -> None:
        """The OvR phase refits these finished main models once per class."""
        for left in [k for k in self.remaining if k[0] == "ovr"]:
            del self.remaining[left]
        for key in map(ModelKey.parse, main_keys):
            self.remaining["ovr", key.algorithm] += self.work.of(key.pipeline, "ovr") * n_classes

    def ratio(self, algorithm: str) -> float:
        """Seconds measured per second estimated: this algorithm's once it has run; before that, the
        seen algorithms' geometric mean shrunk towards 1 by UNSEEN_PRIOR (1 when none has run)."""
        if self.estimated.get(algorithm):
            return self.measured[algorithm] / self.estimated[algorithm]
        logs = [math.log(self.measured[a] / e) for a, e in self.estimated.items() if e > 0 and self.measured[a] > 0]
        return math.exp(sum(logs) / (len(logs) + UNSEEN_PRIOR))

    @property
    def total(self) -> float:
        return self.done + sum(left * self.ratio(algorithm) for (_, algorithm), left in self.remaining.items())
