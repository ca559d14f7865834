"""How much memory will a pipeline need, before it starts? And the run as a whole?

The model is deliberately simple and conservative, built from what each step
allocates (all sizes in bytes, float64 data unless said otherwise):

  worker peak = baseline (interpreter + scikit-learn)
              + data (the memory-mapped data set, counted once per worker)
              + max(search phase, refit phase)
  search phase = jobs x one fit on a CV training fold (+ a fresh interpreter per extra job)
  refit phase  = one fit on the whole fitting set
  one fit      = fold copy + scaled copy + selector work + algorithm work

The algorithm terms follow how scikit-learn implements each one: a forest
stores about 1.26 n nodes per tree; libsvm keeps its data as 16-byte nodes and
a kernel cache bounded by n^2 floats or cache_size (200 MB); k-NN scores with
a test x train distance matrix bounded by sklearn's working_memory (1 GiB);
the MLP's weights are small next to its copy of the data. A safety margin
covers Python object overhead. Each prediction is then corrected by what
finished models of the same algorithm really used (observe()).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from milo_tui.config import ALGORITHMS, format_size
from milo_tui.memory.limits import MemoryLimit

FLOAT = 8
FOREST_TREES = 200  # the largest n_estimators a forest search tries, unless the grids say (forest_trees)
NODE_BYTES = 64  # sklearn's tree Node struct
SVM_CACHE = 200 * 1024 * 1024  # SVC(cache_size=200) MB
SVM_NODE = 16  # libsvm's svm_node {int index; double value}, padded
KNN_WORKING_MEMORY = 1024 * 1024 * 1024  # sklearn.get_config()["working_memory"] MiB
MLP_HIDDEN = 200  # the widest hidden layer a search is assumed to try
MLP_BATCH = 200
# The search trains adam MLPs that share their random draws as stacks, each within this much working
# memory (engine/perceptron_stack.py STACK_BYTES; a test keeps the two equal).
MLP_STACK_BYTES = 16 * 2**20
GB_STAGES = 300
SAFETY = 1.25  # multiplies the variable part: allocator slack, temporary arrays, Python objects
FIXED_OVERHEAD = 16 * 1024 * 1024
DEFAULT_BASELINE = 150 * 1024 * 1024  # measured: python + numpy + pandas + scikit-learn, RSS ~165 MB

# Observed/predicted correction: move quickly towards a larger observation (safety),
# slowly towards a smaller one, and never further than these bounds.
CORRECTION_UP = 0.7
CORRECTION_DOWN = 0.3
CORRECTION_BOUNDS = (0.2, 10.0)

Pending = str | tuple[str, str] | tuple[str, str, str]


def _forest_bytes(n_rows: float, n_classes: int, trees: int = FOREST_TREES) -> float:
    nodes_per_tree = 2 * 0.63 * n_rows  # a bootstrap sample holds ~63 % distinct rows; a full tree ~2 nodes per leaf
    return trees * nodes_per_tree * (NODE_BYTES + FLOAT * n_classes)


def _algorithm_fit_bytes(algorithm: str, n: float, m: int, k: int, n_test: float,
                         forest_trees: int = FOREST_TREES) -> float:
    """Working memory of fitting (and scoring) one estimator on n rows x m features."""
    data = n * m * FLOAT
    per_row_classes = n * k * FLOAT
    if algorithm == "lr":
        return data + 4 * per_row_classes  # lbfgs may copy X; probabilities and gradients per class
    if algorithm == "nb":
        return 4 * k * m * FLOAT + 2 * per_row_classes
    if algorithm == "knn":
        distances = min(n_test * n * FLOAT, KNN_WORKING_MEMORY)
        return data + 2 * n * FLOAT + distances  # the stored copy, the tree, the scoring distance chunks
    if algorithm == "svm":
        kernel_cache = min(n * n * 4, SVM_CACHE)
        return n * m * SVM_NODE + kernel_cache + 4 * per_row_classes
    if algorithm == "rf":
        return _forest_bytes(n, k, forest_trees) + 4 * n * FLOAT
    if algorithm == "gb":
        stages = GB_STAGES * max(1, k if k > 2 else 1) * 15 * (NODE_BYTES + FLOAT)
        return n * m * 4 * 2 + 6 * per_row_classes + stages  # float32 copies of X, raw predictions and gradients
    if algorithm == "mlp":
        weights = (m * MLP_HIDDEN + MLP_HIDDEN * k) * FLOAT
        one = 3 * weights + 4 * MLP_BATCH * MLP_HIDDEN * FLOAT  # weights + two Adam moments + activations
        return data + max(one, MLP_STACK_BYTES)  # a stack holds several networks, a lone one what it needs
    raise ValueError(f"unknown algorithm {algorithm!r} (known: {', '.join(ALGORITHMS)})")


def _selector_fit_bytes(selector: str, n: float, m: int, k: int) -> float:
    data = n * m * FLOAT
    if selector == "none":
        return 0.0
    if selector.startswith("pca"):
        return 3 * data  # SVD workspace: a centred copy, U, and the projected output
    if selector.startswith("rf"):
        return _forest_bytes(n, k, trees=100) + data
    if selector.startswith("select"):
        return data  # the selected columns are a copy
    raise ValueError(f"unknown feature selector {selector!r}")


def _model_file_bytes(algorithm: str, selector: str, n: float, m: int, k: int) -> float:
    """Size of one saved pipeline (scaler + selector + estimator) before compression."""
    size = {
        "lr": (m + 1) * k * FLOAT,
        "nb": 2 * k * m * FLOAT,
        "knn": n * m * FLOAT + n * FLOAT,
        "svm": 0.5 * n * m * FLOAT + n * k * FLOAT,  # support vectors, assumed half the rows
        "rf": _forest_bytes(n, k, trees=100),
        "gb": 100 * max(1, k if k > 2 else 1) * 15 * (NODE_BYTES + FLOAT),
        "mlp": (m * 100 + 100 * k) * FLOAT,
    }[algorithm]
    if selector.startswith("pca"):
        size += m * m * FLOAT
    elif selector.startswith("rf"):
        size += _forest_bytes(n, k, trees=100)
    return size + 4 * m * FLOAT + 8192  # scaler statistics and pickle overhead


def _split(item: Pending) -> tuple[str, str, str]:
    if isinstance(item, str):
        return item, "none", "grid"
    if len(item) == 2:
        return item[0], item[1], "grid"
    return item[0], item[1], item[2]


class FootprintEstimator:
    """Predicts one worker's peak memory for one pipeline, and learns from real peaks."""

    def __init__(self, n_rows: int, n_features: int, n_classes: int, *, cv_folds: int, n_jobs: int,
                 baseline_bytes: int = DEFAULT_BASELINE, forest_trees: int = FOREST_TREES) -> None:
        if n_rows <= 0 or n_features <= 0 or n_classes < 2 or cv_folds < 2 or n_jobs < 1:
            raise ValueError("need n_rows, n_features > 0, n_classes >= 2, cv_folds >= 2 and n_jobs >= 1")
        self.n_rows = n_rows
        self.n_features = n_features
        self.n_classes = n_classes
        self.cv_folds = cv_folds
        self.n_jobs = n_jobs
        self.baseline_bytes = baseline_bytes
        self.forest_trees = forest_trees  # the search fits one forest of the grid's largest n_estimators
        self._correction: dict[str, float] = {}
        self._last_raw: dict[str, int] = {}
        self.observations: dict[str, list[tuple[int, int]]] = {}  # algorithm -> [(predicted, observed)]

    # -- prediction ---------------------------------------------------------------------------
    def _one_fit(self, algorithm: str, selector: str, n: float, n_test: float) -> float:
        m, k = self.n_features, self.n_classes
        copies = 2 * n * m * FLOAT  # the fold's rows (fancy indexing copies) and the scaled copy
        return copies + _selector_fit_bytes(selector, n, m, k) + _algorithm_fit_bytes(
            algorithm, n, m, k, n_test, self.forest_trees)

    def variable_bytes(self, algorithm: str, selector: str = "none", searcher: str = "grid",
                       n_jobs: int | None = None) -> int:
        """The uncorrected estimate above the baseline."""
        jobs = self.n_jobs if n_jobs is None else n_jobs
        n_fold = self.n_rows * (self.cv_folds - 1) / self.cv_folds
        n_test = self.n_rows / self.cv_folds
        search = jobs * self._one_fit(algorithm, selector, n_fold, n_test)
        search += (jobs - 1) * self.baseline_bytes if jobs > 1 else 0  # loky starts fresh interpreters
        refit = self._one_fit(algorithm, selector, self.n_rows, n_test)
        data = self.n_rows * self.n_features * FLOAT
        return int(SAFETY * (data + max(search, refit)) + FIXED_OVERHEAD)

    def raw_estimate(self, algorithm: str, selector: str = "none", searcher: str = "grid",
                     n_jobs: int | None = None) -> int:
        return self.baseline_bytes + self.variable_bytes(algorithm, selector, searcher, n_jobs)

    def correction(self, algorithm: str) -> float:
        return self._correction.get(algorithm, 1.0)

    def estimate(self, algorithm: str, selector: str = "none", searcher: str = "grid",
                 n_jobs: int | None = None) -> int:
        """Bytes one worker needs to train this pipeline (PSS of the worker and its children)."""
        variable = self.variable_bytes(algorithm, selector, searcher, n_jobs)
        self._last_raw[algorithm] = self.baseline_bytes + variable
        return self.baseline_bytes + int(variable * self.correction(algorithm))

    # -- learning -----------------------------------------------------------------------------
    def observe(self, algorithm: str, peak_bytes: int, predicted_bytes: int | None = None) -> None:
        """A finished model of `algorithm` peaked at `peak_bytes` (its worker's PSS).

        `predicted_bytes` is the uncorrected estimate for that model
        (raw_estimate()); by default the last one estimate() computed for the
        algorithm. Only the part above the baseline is corrected.
        """
        predicted = predicted_bytes if predicted_bytes is not None else self._last_raw.get(algorithm)
        if predicted is None:
            predicted = self.raw_estimate(algorithm)
        self.observations.setdefault(algorithm, []).append((predicted, peak_bytes))
        predicted_variable = max(1, predicted - self.baseline_bytes)
        observed_variable = max(0, peak_bytes - self.baseline_bytes)
        ratio = min(max(observed_variable / predicted_variable, CORRECTION_BOUNDS[0]), CORRECTION_BOUNDS[1])
        if algorithm not in self._correction:
            self._correction[algorithm] = ratio
            return
        current = self._correction[algorithm]
        weight = CORRECTION_UP if ratio > current else CORRECTION_DOWN
        self._correction[algorithm] = current + weight * (ratio - current)

    # -- the rest of the run --------------------------------------------------------------------
    def remaining_peak(self, pending_algorithms: list[Pending], workers: int) -> int:
        """Projected peak of the workers for the models still to train.

        Up to `workers` pipelines run at once; the worst case is the heaviest
        ones together, so this is the sum of the `workers` largest estimates.
        Items are an algorithm name or (algorithm, selector[, searcher]).
        """
        if not pending_algorithms or workers < 1:
            return 0
        per_kind = {item: self.estimate(*_split(item)) for item in set(pending_algorithms)}
        heaviest = sorted((per_kind[item] for item in pending_algorithms), reverse=True)
        return sum(heaviest[:workers])

    def model_file_bytes(self, algorithm: str, selector: str = "none") -> int:
        return int(_model_file_bytes(algorithm, selector, self.n_rows, self.n_features, self.n_classes))


# ---------------------------------------------------------------------------------------------
# Pre-flight: `milo estimate PROJECT`

# Rough seconds per fit: a fixed cost plus a per-cell term (row x feature), or for the
# distance/kernel methods a per (row x row x feature) term. Calibrated on this project's
# 2-core test machine for small data; the result is an order of magnitude, not a promise.
# gb, mlp, rf and knn were re-scaled by what the full MILO-ML space took against these
# estimates end to end (2026-11-26, breast cancer 318 x 30, docs/PERFORMANCE.md): gb 1.67x,
# rf 1.41x, knn 3.5x, mlp 0.16x (its searches now train stacked networks; lr and svm were
# within 20 %). A run's ETA keeps correcting them per algorithm (engine/workmeter.py).
FIT_FIXED_SECONDS = 0.004
FIT_SECONDS_PER_CELL = {"lr": 4e-7, "nb": 1e-7, "rf": 1.7e-5, "gb": 1.3e-5, "mlp": 4e-6}
FIT_SECONDS_PER_PAIR_CELL = {"knn": 1.75e-8, "svm": 2e-9}
ARCHIVE_RATIO = 0.35  # compressed / raw size of saved pipelines (MILO's measured ~0.14; kept cautious)
SELECTOR_SECONDS_FACTOR = {"rf": 1.5, "pca": 1.1}

# The source guide's "Resource Scaling by Problem Size" table, in GB.
GUIDE_TIERS = (
    ("Large", 7, 10000, (16, 32)),
    ("Medium", 4, 1000, (8, 16)),
    ("Small", 2, 0, (2, 4)),
)


@dataclass
class Preflight:
    models: int  # models to train in all (main + OvR)
    pipelines: int
    memory_bytes: int  # projected peak of the main phase (engine + concurrent workers)
    memory_bytes_ovr: int  # projected peak of the OvR phase; 0 when there is none
    disk_bytes: int
    seconds: float
    limit: MemoryLimit
    fits: bool  # every phase's peak stays below the critical threshold of the limit
    recommendation: str
    ovr_models: int = 0
    critical: float = 0.85
    heaviest: list[tuple[str, int]] = field(default_factory=list)  # (pipeline, bytes), largest first
    search: dict = field(default_factory=dict)  # space.search_plan(): candidates and CV fits per pipeline

    def render(self) -> str:
        def pct(n: int) -> str:
            return f"{100 * n / self.limit.bytes:.0f}%" if self.limit.bytes else "?"

        lines = [
            "Pre-flight estimate (nothing has been trained yet)",
            f"├── Pipelines: {self.pipelines}",
            f"├── Models: {self.models}" + (f" ({self.ovr_models} of them one-vs-rest)" if self.ovr_models else ""),
        ]
        if self.search:
            lines.append(f"├── Search: {self.search['grids']} grids, {self.search['candidates']} parameter sets, "
                         f"{self.search['cv_fits']} CV fits in a plain search, "
                         f"{self.search['shared_fits']} with shared work"
                         + (f" (the fold scores of {self.search['scores_reused']} pipelines counted once with "
                            "another scaler's: shared when the model sees the same data)"
                            if self.search.get("scores_reused") else ""))
        lines += [
            f"├── Memory peak: {format_size(self.memory_bytes)} ({pct(self.memory_bytes)} of the limit)",
        ]
        if self.memory_bytes_ovr:
            lines.append(f"├── OvR re-optimization peak: {format_size(self.memory_bytes_ovr)} ({pct(self.memory_bytes_ovr)})")
        lines += [
            f"├── Disk: {format_size(self.disk_bytes)}",
            f"├── Time: roughly {_format_duration(self.seconds)}",
            f"├── Limit: {format_size(self.limit.bytes)} ({self.limit.source}; RAM {format_size(self.limit.physical)}"
            f", cgroup {format_size(self.limit.cgroup)}, budget {format_size(self.limit.budget)})",
            f"├── Fits this limit: {'yes' if self.fits else 'NO'} (critical level {self.critical:.0%})",
        ]
        if self.heaviest:
            names = ", ".join(f"{name} {format_size(size)}" for name, size in self.heaviest[:3])
            lines.append(f"├── Heaviest pipelines: {names}")
        lines.append(f"└── Recommendation: {self.recommendation}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"models": self.models, "ovr_models": self.ovr_models, "pipelines": self.pipelines,
                "memory_bytes": self.memory_bytes, "memory_bytes_ovr": self.memory_bytes_ovr,
                "disk_bytes": self.disk_bytes, "seconds": self.seconds, "limit": self.limit.as_dict(),
                "fits": self.fits, "recommendation": self.recommendation, "search": self.search}


def _format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def guide_tier(n_classes: int, n_rows: int) -> tuple[str, tuple[int, int]]:
    for name, min_classes, min_rows, gigabytes in GUIDE_TIERS:
        if n_classes >= min_classes or n_rows >= min_rows:
            return name, gigabytes
    return GUIDE_TIERS[-1][0], GUIDE_TIERS[-1][3]


OVR_WORK = 0.5  # an OvR refit's rough cost as a share of its main model's: it reuses the ranking, no search


def fit_seconds(algorithm: str, n_rows: float, n_features: int) -> float:
    if algorithm in FIT_SECONDS_PER_PAIR_CELL:
        return FIT_FIXED_SECONDS + FIT_SECONDS_PER_PAIR_CELL[algorithm] * n_rows * n_rows * n_features
    return FIT_FIXED_SECONDS + FIT_SECONDS_PER_CELL[algorithm] * n_rows * n_features


def pipeline_seconds(algorithm: str, selector: str, search: dict, n_fit: float, m: int, folds: int) -> float:
    """Rough seconds one pipeline's search and refits take, from its `search_plan` entry (the fits
    its shared search really makes). `milo estimate` sums these; a run's ETA starts from them
    (engine/workmeter.py), so a slow algorithm counts for more than a fast one."""
    return _pipeline_seconds(algorithm, selector, search["candidates"] * search["work_share"], n_fit, m, folds,
                             search["refits"])


def _pipeline_seconds(algorithm: str, selector: str, candidates: float, n_fit: float, m: int,
                      folds: int, refits: int) -> float:
    fold_rows = n_fit * (folds - 1) / folds
    factor = SELECTOR_SECONDS_FACTOR.get(selector.split("-")[0], 1.0)
    return factor * (candidates * folds * fit_seconds(algorithm, fold_rows, m) + refits * fit_seconds(algorithm, n_fit, m))


def _recommendation(n_classes: int, n_rows: int, reoptimize: bool, fits: bool, peak: int,
                    limit: MemoryLimit, critical: float, heaviest: list[tuple[str, int]] = ()) -> str:
    tier, (low, high) = guide_tier(n_classes, n_rows)
    text = f"{tier} problem ({n_classes} classes, {n_rows} rows): the guide recommends {low}-{high} GB"
    if reoptimize:
        text += f", plus 50-100% for OvR re-optimization ({low * 1.5:g}-{high * 2:g} GB)"
    text += "."
    if fits:
        return text + f" This run's projected peak fits below {critical:.0%} of the {format_size(limit.bytes)} limit."
    return text + (f" This run's projected peak ({format_size(peak)}) does not fit below {critical:.0%} of the "
                   f"{format_size(limit.bytes)} limit: lower run.workers or search.n_jobs, "
                   + _what_to_drop(heaviest)
                   + ("turn off reoptimize_ovr, " if reoptimize else "")
                   + "or raise memory_budget if the machine has room. "
                   "Models that cannot fit will be skipped with the reason recorded.")


def _what_to_drop(heaviest: list[tuple[str, int]]) -> str:
    """Advice that names only what this search has: the algorithms and selectors of its heaviest pipelines."""
    parts = [name.split("__") for name, _ in heaviest]
    algorithms = list(dict.fromkeys(p[2] for p in parts if len(p) == 4))
    selectors = list(dict.fromkeys(p[1] for p in parts if len(p) == 4 and p[1] != "none"))
    named = algorithms[:2] + selectors[:1]
    return f"drop the heaviest parts ({', '.join(named)}), " if named else ""


def preflight(config, data_summary: dict, limit: MemoryLimit, *, baseline_bytes: int = DEFAULT_BASELINE,
              engine_bytes: int | None = None, cores: int | None = None,
              models_for: Callable[[str, str, str], int] | None = None) -> Preflight:
    """The estimate `milo estimate` prints before anything trains.

    `config` is a milo_tui.config.Config; `data_summary` has n_rows (rows of
    train.csv), n_features and n_classes, and optionally fit_rows (rows the
    searches fit on; default n_rows x (1 - test_size)). `engine_bytes` is the
    engine's own footprint (defaults to a baseline plus the data set held
    once); `smallest_class` (optional) sizes k-NN's MILO-ML random search. `models_for(algorithm, selector, searcher)` is the number of models
    one pipeline yields (default: scorers x top_k).
    """
    from milo_tui.engine.grids import SearchSpace
    from milo_tui.engine.space import enumerate_pipelines, search_plan

    search, run, memory = config.search, config.run, config.memory
    space = SearchSpace.from_config(config)
    smallest_class = data_summary.get("smallest_class")
    n_rows, m, k = int(data_summary["n_rows"]), int(data_summary["n_features"]), int(data_summary["n_classes"])
    n_fit = int(data_summary.get("fit_rows") or max(2, round(n_rows * (1 - search["test_size"]))))
    workers, n_jobs, folds = run["workers"], search["n_jobs"], search["cv_folds"]
    critical = memory["critical"]
    combos = [(a, sel, s) for a in search["algorithms"] for _ in search["scalers"]
              for sel in search["selectors"] for s in space.searchers]
    refits_per_pipeline = len(search["scorers"]) * search["top_k"]
    per_combo = [models_for(*combo) if models_for else refits_per_pipeline for combo in combos]
    main_models = sum(per_combo)
    reoptimize = bool(search["reoptimize_ovr"]) and k > 2
    ovr_models = main_models * k if reoptimize else 0

    trees = space.largest("rf", "n_estimators", FOREST_TREES)
    estimator = FootprintEstimator(n_fit, m, k, cv_folds=folds, n_jobs=n_jobs, baseline_bytes=baseline_bytes,
                                   forest_trees=trees)
    engine = engine_bytes if engine_bytes is not None else baseline_bytes + n_rows * m * FLOAT
    # Named like model keys (scaler__selector__algorithm__searcher). The scaler does not change the
    # footprint (the scaled copy is counted either way), but a name without it is ambiguous.
    per_pipeline = sorted(((f"{sc}__{sel}__{a}__{s}", estimator.estimate(a, sel, s))
                           for a in search["algorithms"] for sc in search["scalers"]
                           for sel in search["selectors"] for s in space.searchers),
                          key=lambda item: item[1], reverse=True)
    memory_main = engine + sum(size for _, size in per_pipeline[:workers])
    memory_ovr = 0
    if reoptimize:
        # One binary problem per class; assumed to search again (an upper bound on re-optimization).
        binary = FootprintEstimator(n_fit, m, 2, cv_folds=folds, n_jobs=n_jobs, baseline_bytes=baseline_bytes,
                                    forest_trees=trees)
        memory_ovr = engine + binary.remaining_peak([(a, sel, s) for a, sel, s in combos], workers)

    files = sum(estimator.model_file_bytes(a, sel) * count for (a, sel, _), count in zip(combos, per_combo))
    files_ovr = files * k if reoptimize else 0
    data_copies = 2 * n_rows * m * FLOAT  # the engine's .npy copies of the data
    disk = int((files + files_ovr) * ARCHIVE_RATIO + config.storage["batch_bytes"] + data_copies)

    fold_rows = max(1, n_fit * (folds - 1) // folds)
    pipelines = enumerate_pipelines(config)
    plan = search_plan(pipelines, space, search["scorers"], search["top_k"], folds, smallest_class, fold_rows)
    # The search shares fits between candidates (engine/search.py): a pipeline costs its plain
    # search's fits scaled by the share of that work its shared fits really do.
    work = {spec: plan["pipelines"][spec.name] for spec in pipelines}
    serial = sum(pipeline_seconds(spec.algorithm, spec.selector, p, n_fit, m, folds) for spec, p in work.items())
    if reoptimize:
        serial *= 1 + k * OVR_WORK  # one OvR refit per main model and class
    parallel = max(1, min(workers * n_jobs, cores or os.cpu_count() or 1))
    seconds = serial / parallel

    critical_bytes = int(limit.bytes * critical)
    fits = memory_main <= critical_bytes and memory_ovr <= critical_bytes
    return Preflight(models=main_models + ovr_models, pipelines=len(combos), memory_bytes=memory_main,
                     memory_bytes_ovr=memory_ovr, disk_bytes=disk, seconds=seconds, limit=limit, fits=fits,
                     recommendation=_recommendation(k, n_rows, reoptimize, fits, max(memory_main, memory_ovr),
                                                    limit, critical, per_pipeline),
                     ovr_models=ovr_models, critical=critical, heaviest=per_pipeline[:3],
                     search=plan)
