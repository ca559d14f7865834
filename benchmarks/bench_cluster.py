"""Cluster benchmark: what training through Dask costs, and what a second worker process buys.

(a) Per-task overhead, Dask against local. The same TrainTask (breast_cancer, GaussianNB, grid
    search, 3-fold CV: a real pipeline that trains in well under a second) is run N times one
    after another by the LocalExecutor (a fresh child of the engine's forkserver per task) and by
    the DaskExecutor on a warm LocalCluster of 1 worker process (Dask places the task; the node's
    forkserver forks the child; the models come back as bytes and are written by the engine).
    Overhead per task = wall time from start() to the outcome, minus the seconds the worker itself
    reports for train(). Medians are reported; the cluster's start-up and the first task (which
    installs the data and warms the node's forkserver) are reported apart and not in the median.
(b) One plan on a LocalCluster with 1 against 2 worker processes (1 thread each): the real engine
    (`python -m milo_tui.engine PROJECT --scheduler local --force`, [run] workers = 1 or 2) on the
    same project, pipelines, grids, folds and seed. Wall time is start to exit; "training" is from
    the first model_started to the last model_finished in events.jsonl (without the cluster's
    start-up). Speed-up = 1-worker time / 2-worker time, measured side by side in one run.

    flock /work/bench.lock python benchmarks/bench_cluster.py [--tasks N] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_projects" / "breast_cancer"
PLAN = {"algorithms": ["lr", "nb", "knn"], "scalers": ["none", "std"], "selectors": ["none"],
        "searchers": ["grid"], "scorers": ["accuracy", "roc_auc"], "cv_folds": 3, "top_k": 2}


def _project(dest: Path, search: dict, workers: int) -> Path:
    import tomllib

    from milo_tui.config import render_toml

    project = dest / "project"
    shutil.copytree(SAMPLE, project, ignore=shutil.ignore_patterns(
        "models", "report.csv", "metadata.json", "class_results", "events.jsonl", ".milo"))
    raw = tomllib.loads((project / "milo.toml").read_text())
    raw.setdefault("search", {}).update(search)
    raw.setdefault("run", {})["workers"] = workers
    (project / "milo.toml").write_text(render_toml(raw, comments=False))
    return project


# -- (a) per-task overhead --------------------------------------------------------------------

def _one_task(executor, task) -> tuple[float, float]:
    started = time.perf_counter()
    executor.start(task, None)
    while True:
        done = executor.wait(0.01)
        if done:
            outcome = done[0][1]
            assert outcome.result is not None, outcome
            return time.perf_counter() - started, outcome.result["seconds"]


def per_task_overhead(tasks: int) -> dict:
    from milo_tui import config as config_module
    from milo_tui.cluster.executor import DaskExecutor
    from milo_tui.engine.data import map_arrays, prepare_data
    from milo_tui.engine.executor import LocalExecutor
    from milo_tui.engine.plan import make_plan
    from milo_tui.engine.space import min_class_count
    from milo_tui.engine.worker import TrainTask
    from milo_tui.memory.status import Thresholds

    with tempfile.TemporaryDirectory() as tmp:
        project = _project(Path(tmp), {**PLAN, "algorithms": ["nb"], "scalers": ["std"]}, 1)
        config = config_module.load(project)
        s = config.search
        local = LocalExecutor()
        local.warm_up()
        summary, arrays = local.call(prepare_data, config.train_path, config.test_path, config.target,
                                     cv_folds=s["cv_folds"], test_size=s["test_size"], seed=s["seed"],
                                     directory=Path(tmp) / "data")
        for sub in ("models", "class_results"):
            (Path(tmp) / sub).mkdir()
        # The task the engine itself would build for the plan's first pipeline (runner.template).
        smallest = min_class_count(map_arrays({"y": arrays["y_fit"]})["y"])
        plan = make_plan(config, summary.n_classes, set(), smallest_class=smallest)
        task = TrainTask(phase="main", spec=plan.main_units[0].spec, scorers=s["scorers"], top_k=s["top_k"],
                         cv_folds=s["cv_folds"], space=plan.space, n_jobs=1, seed=s["seed"],
                         class_labels=summary.class_labels, class_values=summary.class_values,
                         rest_label=summary.rest_label, feature_names=summary.feature_names, arrays=arrays,
                         models_dir=str(Path(tmp) / "models"), class_results_dir=str(Path(tmp) / "class_results"),
                         archive="main_models")
        cluster = DaskExecutor("local", memory_budget=None, thresholds=Thresholds(0.75, 0.85), critical_grace=30,
                               forecast_horizon=120, sample_interval=0.5, local_workers=1)
        started = time.perf_counter()
        cluster.warm_up()
        cluster_up = time.perf_counter() - started
        first_wall, first_worker = _one_task(cluster, task)
        _one_task(local, task)  # the same warm state on both sides
        rows = {"local": [], "dask": []}
        for _ in range(tasks):  # interleaved, so a change in the machine's load hits both alike
            for name, executor in (("local", local), ("dask", cluster)):
                wall, worker = _one_task(executor, task)
                rows[name].append((wall, worker))
        cluster.shutdown()
        local.shutdown()
    result = {"tasks": tasks, "cluster_start_s": round(cluster_up, 2),
              "dask_first_task_overhead_s": round(first_wall - first_worker, 3)}
    for name, pairs in rows.items():
        result[f"{name}_wall_median_s"] = round(statistics.median(w for w, _ in pairs), 3)
        result[f"{name}_overhead_median_s"] = round(statistics.median(w - k for w, k in pairs), 3)
    result["dask_minus_local_overhead_s"] = round(result["dask_overhead_median_s"]
                                                  - result["local_overhead_median_s"], 3)
    return result


# -- (b) one plan on 1 vs 2 worker processes ---------------------------------------------------

def run_plan(workers: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        project = _project(Path(tmp), PLAN, workers)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        started = time.perf_counter()
        code = subprocess.run([sys.executable, "-m", "milo_tui.engine", str(project), "--scheduler", "local"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        wall = time.perf_counter() - started
        events = [json.loads(line) for line in (project / "events.jsonl").read_text().splitlines()]
        first = min(e["ts"] for e in events if e["type"] == "model_started")
        last = max(e["ts"] for e in events if e["type"] == "model_finished")
        finished = [e for e in events if e["type"] == "run_finished"][-1]["data"]
        hosts = {e["data"].get("host") for e in events if e["type"] == "model_started"}
    return {"workers": workers, "exit_code": code, "models": finished["models_completed"],
            "wall_s": round(wall, 1), "training_s": round(last - first, 1), "hosts": sorted(h for h in hosts if h)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    load_before = os.getloadavg()
    overhead = per_task_overhead(args.tasks)
    print(json.dumps(overhead, indent=1), flush=True)
    one = run_plan(1)
    two = run_plan(2)
    print(json.dumps([one, two], indent=1), flush=True)
    ratio = {"speedup_wall": round(one["wall_s"] / two["wall_s"], 2),
             "speedup_training": round(one["training_s"] / two["training_s"], 2),
             "load_average_before": [round(x, 1) for x in load_before],
             "load_average_after": [round(x, 1) for x in os.getloadavg()], "cores": os.cpu_count()}
    print(json.dumps(ratio, indent=1))
    if args.markdown:
        args.markdown.write_text(json.dumps({"overhead": overhead, "plan": [one, two], **ratio}, indent=1))


if __name__ == "__main__":
    main()
