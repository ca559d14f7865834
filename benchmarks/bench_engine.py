"""Engine benchmark: the real engine against a plain scikit-learn loop, and the cost of isolating each model.

(a) The same search, on the same data, two ways, measured in one run:
    - the engine (`python -m milo_tui.engine` subprocess, forkserver workers, saving, archiving,
      metrics with confidence intervals, memory monitor), with workers=1 and workers=2;
    - a plain in-process loop over the same pipelines (milo_tui.engine.worker.run_search, then a
      refit of each chosen parameter set with space.make_pipeline) that keeps every fitted model
      in a Python list, as MILO-ML did.
    Wall time is start to exit. Peak memory is the peak PSS summed over the process tree, sampled
    from outside every 0.2 s with milo_tui.memory.sampler.sample_tree (the loop runs in its own
    process so it is sampled the same way). The engine's own figure (metadata.json
    memory.peak_bytes, sampled by its monitor every 0.5 s) is printed beside it.
(b) Isolation overhead per model: start a process from the engine's pre-warmed forkserver, run a
    trivial task, collect its result through a pipe and join it — against a fresh `spawn`
    interpreter per task.

    python benchmarks/bench_engine.py [--quick] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_projects"
MIB = 1024 * 1024

# DESIGN.md's measurements of MILO-ML on the same workloads (not measured here).
MILO_ML_FIGURES = {
    "breast_cancer": {"models": 64, "seconds": 305.0, "peak_mib": 460.0},
    "wine": {"models": 256, "seconds": 407.0, "peak_mib": 560.0},
}
# DESIGN.md's comparison workload: 16 pipelines x 2 scorers x top 2, 10-fold CV.
WORKLOAD = {"algorithms": ["lr", "rf", "knn", "gb"], "scalers": ["none", "std"],
            "selectors": ["none", "select-50"], "searchers": ["grid"],
            "scorers": ["accuracy", "roc_auc"], "cv_folds": 10, "top_k": 2}


# -- measuring a process tree from outside ---------------------------------------------

class PeakSampler:
    """Samples the PSS of a process tree in a thread and keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_pss = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        from milo_tui.memory.sampler import TreeSampler

        sampler = TreeSampler()
        while not self._stop.is_set():
            try:
                sample = sampler.sample(self.pid, None, exact=True)
            except Exception:  # the root exited between two samples
                break
            if sample.processes:
                self.peak_pss = max(self.peak_pss, sample.pss)
                self.samples += 1
            self._stop.wait(self.interval)


@dataclass
class Measured:
    label: str
    seconds: float
    peak_pss: int
    models: int
    exit_code: int
    extra: dict = field(default_factory=dict)

    @property
    def peak_mib(self) -> float:
        return self.peak_pss / MIB


# -- the engine --------------------------------------------------------------------------

def prepare_project(sample: str, work: Path, **run_settings) -> Path:
    """A copy of a sample project with DESIGN.md's workload and the given [run] settings."""
    sys.path.insert(0, str(ROOT / "tests"))
    from engine_helpers import copy_sample

    folder = work / f"{sample}-{'-'.join(f'{k}{v}' for k, v in run_settings.items())}"
    folder.mkdir(parents=True, exist_ok=True)
    return copy_sample(sample, folder, search=dict(WORKLOAD), run=dict(run_settings))


def measure_engine(project: Path, label: str, interval: float = 0.2) -> Measured:
    from milo_tui import events as ev
    from milo_tui.launcher import start_engine

    started = time.perf_counter()
    engine = start_engine(project)
    finished = None
    with PeakSampler(engine.pid, interval) as peak:
        for batch in ev.read_pipe(engine.event_fd):
            for event in batch.events:
                if event.type == ev.RUN_FINISHED:
                    finished = event.data
        code = engine.popen.wait()
    seconds = time.perf_counter() - started
    engine.close()
    meta = json.loads((project / "metadata.json").read_text())
    return Measured(label, seconds, peak.peak_pss, (finished or {}).get("models_completed", 0), code,
                    extra={"engine_peak_bytes": meta["memory"]["peak_bytes"], "status": meta["status"],
                           "samples": peak.samples})


# -- the plain loop ------------------------------------------------------------------------

def plain_loop(project: Path) -> dict:
    """MILO-ML's shape: one process, every search and refit in it, fitted models kept in a list.

    Runs the very search the engine's worker runs (run_search, make_pipeline), so the two
    differ only in how the work is hosted.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from milo_tui.config import load
    from milo_tui.engine.data import load_data
    from milo_tui.engine.grids import SearchSpace
    from milo_tui.engine.space import enumerate_pipelines, make_pipeline
    from milo_tui.engine.worker import TrainTask, run_search

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    config = load(project)
    s = config.search
    arrays, summary = load_data(config.train_path, config.test_path, config.target, cv_folds=s["cv_folds"],
                                test_size=s["test_size"], seed=s["seed"])
    fitted = []
    for spec in enumerate_pipelines(config):
        task = TrainTask(phase="main", spec=spec, scorers=s["scorers"], top_k=s["top_k"], cv_folds=s["cv_folds"],
                         space=SearchSpace.from_config(config), n_jobs=s["n_jobs"], seed=s["seed"],
                         class_labels=summary.class_labels, arrays={}, models_dir="", class_results_dir="",
                         archive="main_models")
        chosen = run_search(task, arrays["X_fit"], arrays["y_fit"], summary.n_classes)
        for key, params in chosen.items():
            model = make_pipeline(spec, arrays["X_fit"].shape[1], s["seed"], for_refit=True)
            model.set_params(**params)
            model.fit(arrays["X_fit"], arrays["y_fit"])
            model.predict_proba(arrays["X_test"])
            fitted.append((key, model))
    return {"models": len(fitted)}


def measure_loop(project: Path, threads: int, interval: float = 0.2) -> Measured:
    """Runs plain_loop in a child process (same BLAS threads as one engine worker) and samples it."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, __file__, "--loop", str(project)], env=env,
                             stdout=subprocess.PIPE, text=True)
    with PeakSampler(child.pid, interval) as peak:
        out, _ = child.communicate()
    seconds = time.perf_counter() - started
    models = json.loads(out.strip().splitlines()[-1])["models"] if child.returncode == 0 else 0
    return Measured("plain scikit-learn loop (1 process, models kept in a list)", seconds, peak.peak_pss,
                    models, child.returncode, extra={"samples": peak.samples})


# -- isolation overhead ------------------------------------------------------------------------

def trivial_task(conn) -> None:
    conn.send(("ok", {"answer": 42}))
    conn.close()


def time_one_task(ctx) -> float:
    """Start a process, run the trivial task, receive its result, join: seconds."""
    started = time.perf_counter()
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(target=trivial_task, args=(sender,), daemon=True)
    process.start()
    sender.close()
    kind, payload = receiver.recv()
    process.join()
    receiver.close()
    assert kind == "ok" and payload["answer"] == 42
    return time.perf_counter() - started


def measure_isolation(forkserver_tasks: int, spawn_tasks: int) -> dict:
    """Per-task overhead of the engine's forkserver (sklearn preloaded) against spawn per task.

    LocalExecutor.start only takes a TrainTask, so the trivial task is started through the
    executor's own context (executor._ctx.Process) after executor.warm_up(): the same
    forkserver, preload list and thread settings a training task gets.
    """
    import multiprocessing

    from milo_tui.engine.executor import PRELOAD, LocalExecutor

    executor = LocalExecutor()
    executor.warm_up(threads_per_worker=1)
    time_one_task(executor._ctx)  # the first task also pays for the forkserver's imports
    forkserver = [time_one_task(executor._ctx) for _ in range(forkserver_tasks)]
    spawn_ctx = multiprocessing.get_context("spawn")
    bare = [time_one_task(spawn_ctx) for _ in range(spawn_tasks)]
    preload = [time_spawn_with_imports(spawn_ctx, PRELOAD) for _ in range(spawn_tasks)]
    return {"forkserver": forkserver, "spawn_bare": bare, "spawn_imports": preload}


def import_then_answer(conn, modules: list[str]) -> None:
    import importlib

    for name in modules:
        importlib.import_module(name)
    trivial_task(conn)


def time_spawn_with_imports(ctx, modules: list[str]) -> float:
    """A fresh interpreter that must import what a training task needs (the forkserver's preload)."""
    started = time.perf_counter()
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(target=import_then_answer, args=(sender, modules), daemon=True)
    process.start()
    sender.close()
    receiver.recv()
    process.join()
    receiver.close()
    return time.perf_counter() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


# -- reporting -------------------------------------------------------------------------------------

def ratio(value: float, reference: float) -> str:
    return f"{value / reference:.2f}x" if reference else "-"


def comparison_rows(loop: Measured | None, runs: list[Measured], milo: dict) -> list[str]:
    lines = ["| run | models | wall time | vs loop | peak PSS (tree, 0.2 s) | vs loop | engine's own peak (0.5 s) |",
             "|---|---|---|---|---|---|---|"]
    lines.append(f"| MILO-ML, **from DESIGN.md, not measured here** | {milo['models']} | ~{milo['seconds']:.0f} s | "
                 f"{ratio(milo['seconds'], loop.seconds) if loop else '-'} | ~{milo['peak_mib']:.0f} MiB | "
                 f"{ratio(milo['peak_mib'], loop.peak_mib) if loop else '-'} | |")
    if loop:
        lines.append(f"| {loop.label} | {loop.models} | {loop.seconds:.1f} s | 1.00x | {loop.peak_mib:.0f} MiB | 1.00x | |")
    for run in runs:
        own = run.extra.get("engine_peak_bytes", 0) / MIB
        lines.append(f"| {run.label} | {run.models} | {run.seconds:.1f} s | "
                     f"{ratio(run.seconds, loop.seconds) if loop else '-'} | {run.peak_mib:.0f} MiB | "
                     f"{ratio(run.peak_mib, loop.peak_mib) if loop else '-'} | {own:.0f} MiB |")
    return lines


def isolation_rows(iso: dict) -> list[str]:
    def row(label: str, values: list[float]) -> str:
        return (f"| {label} | {len(values)} | {statistics.median(values) * 1000:.1f} ms | "
                f"{percentile(values, 0.9) * 1000:.1f} ms | {max(values) * 1000:.1f} ms |")

    fork_median = statistics.median(iso["forkserver"])
    return [
        "| how a task's process starts | tasks | median | p90 | max |",
        "|---|---|---|---|---|",
        row("engine's forkserver (scikit-learn preloaded)", iso["forkserver"]),
        row("`spawn`, bare interpreter", iso["spawn_bare"]),
        row("`spawn`, importing what a task needs (the preload list)", iso["spawn_imports"]),
        "",
        f"Forkserver median {fork_median * 1000:.1f} ms against the 50 ms target: "
        f"**{'met' if fork_median < 0.05 else 'missed'}**; spawn with imports costs "
        f"{statistics.median(iso['spawn_imports']) / fork_median:.0f}x as much per task.",
    ]


def markdown_section(args, bc_loop, bc_runs, wine_runs, iso) -> str:
    lines = [
        "## Engine", "",
        f"`python benchmarks/bench_engine.py{' --quick' if args.quick else ''}` — DESIGN.md's MILO-ML comparison "
        "workload (lr, rf, knn, gb × none/std × none/select-50 × grid; accuracy and roc_auc; top 2; 10-fold CV) "
        "through the real engine and through a plain in-process scikit-learn loop running the identical "
        "search (`worker.run_search`, `space.make_pipeline`) and keeping its fitted models in a list. Peak "
        "memory is PSS summed over each process tree, sampled from outside every 0.2 s; the engine's own "
        "monitor figure (metadata.json `memory.peak_bytes`, every 0.5 s) is beside it. The engine does more "
        "work than the loop: it also saves, hashes and archives every model and writes metrics with "
        "confidence intervals and curves. MILO-ML rows are DESIGN.md's figures for the same workload, "
        "measured elsewhere — context, not a measurement of this run.", "",
        "Breast cancer (binary, 455 training rows, 30 features):", "",
        *comparison_rows(bc_loop, bc_runs, MILO_ML_FIGURES["breast_cancer"]), "",
    ]
    if wine_runs:
        lines += ["Wine (3 classes, OvR re-optimization: 64 multi-class + 192 one-vs-rest models; engine only):", "",
                  *comparison_rows(None, wine_runs, MILO_ML_FIGURES["wine"]), ""]
    lines += ["Isolation overhead per model: start a process, run a trivial task, receive its result, join. "
              "`LocalExecutor.start` only accepts a TrainTask, so the trivial task is started through the "
              "executor's own context (`executor._ctx.Process`) after `warm_up()` — the same forkserver and "
              "preload a training task gets.", "", *isolation_rows(iso), ""]
    return "\n".join(lines)


def print_runs(title: str, loop: Measured | None, runs: list[Measured], milo: dict) -> None:
    print(f"\n{title}")
    print(f"  MILO-ML (DESIGN.md, not measured here): {milo['models']} models ~{milo['seconds']:.0f} s, "
          f"~{milo['peak_mib']:.0f} MiB")
    for run in ([loop] if loop else []) + runs:
        extra = f"; engine's own peak {run.extra['engine_peak_bytes'] / MIB:.0f} MiB" if "engine_peak_bytes" in run.extra else ""
        versus = (f"  ({ratio(run.seconds, loop.seconds)} time, {ratio(run.peak_mib, loop.peak_mib)} memory of the loop)"
                  if loop and run is not loop else "")
        print(f"  {run.label}: {run.models} models, exit {run.exit_code}, {run.seconds:.1f} s, "
              f"peak PSS {run.peak_mib:.0f} MiB{extra}{versus}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer isolation samples, skip the wine runs")
    parser.add_argument("--tasks", type=int, default=200, help="forkserver tasks timed")
    parser.add_argument("--spawn-tasks", type=int, default=10, help="spawn tasks timed (slow)")
    parser.add_argument("--markdown", type=Path, help="write the '## Engine' section of PERFORMANCE.md here")
    parser.add_argument("--loop", type=Path, help=argparse.SUPPRESS)  # internal: run the plain loop
    args = parser.parse_args()
    if args.loop:
        print(json.dumps(plain_loop(args.loop)))
        return
    if args.quick:
        args.tasks, args.spawn_tasks = min(args.tasks, 50), min(args.spawn_tasks, 3)

    iso = measure_isolation(args.tasks, args.spawn_tasks)
    print("Isolation overhead per task (start, trivial task, result, join):")
    for name, values in iso.items():
        print(f"  {name:<14} n={len(values):<4} median {statistics.median(values) * 1000:7.1f} ms   "
              f"p90 {percentile(values, 0.9) * 1000:7.1f} ms")

    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        work = Path(tmp)
        cpus = os.cpu_count() or 1
        loop_project = prepare_project("breast_cancer", work / "plain-loop", workers=1)
        bc_loop = measure_loop(loop_project, threads=cpus)
        bc_runs = [measure_engine(prepare_project("breast_cancer", work, workers=n), f"milo engine, workers={n}")
                   for n in (1, 2)]
        print_runs("Breast cancer, 64 models:", bc_loop, bc_runs, MILO_ML_FIGURES["breast_cancer"])
        wine_runs = []
        if not args.quick:
            wine_runs = [measure_engine(prepare_project("wine", work, workers=n), f"milo engine, workers={n}")
                         for n in (1, 2)]
            print_runs("Wine with OvR, 256 models:", None, wine_runs, MILO_ML_FIGURES["wine"])
    if args.markdown:
        args.markdown.write_text(markdown_section(args, bc_loop, bc_runs, wine_runs, iso))
        print(f"\nwrote {args.markdown}")


if __name__ == "__main__":
    main()
