"""MILO-ML's full 567-pipeline space, really run: wall time and where it went, per algorithm.

This is the measurement that benchmarks/profile_full_space.py only projects. It copies
sample_projects/milo_ml_full and the breast_cancer data it points at to a temporary folder, runs
`milo run --headless` on it (the engine as a user runs it: 2 workers, MILO-ML's grids, 10-fold,
three scorers, top 2), and then reads the finished project's report.csv:

- per pipeline, the worker's search seconds (`search_seconds`, the same on each of its models) and
  its refits (`train_seconds` of each distinct chosen parameter set: models that share a set share
  one refit, so it is counted once);
- summed per algorithm and per (algorithm, searcher), as worker-seconds (each worker is one
  single-threaded process, so worker-seconds are core-seconds while the machine is not oversubscribed);
- "engine and metrics": 2 workers x wall minus all search and refit seconds, i.e. test-set metrics,
  saving, hashing and archiving, scheduling, and idle worker slots (at the start and the tail).

    flock /work/bench.lock python benchmarks/full_space_run.py             # about 1.5 h on 2 cores
    python benchmarks/full_space_run.py --summarize /tmp/x/milo_ml_full --wall 5400

It takes long: run it alone on the machine (the wall time is the figure published).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_projects"


def run(workdir: Path) -> float:
    for name in ("milo_ml_full", "breast_cancer"):
        shutil.copytree(SAMPLES / name, workdir / name, ignore=shutil.ignore_patterns(".milo*"))
    project = workdir / "milo_ml_full"
    started = time.perf_counter()
    with open(workdir / "run.log", "w") as log:
        code = subprocess.call([sys.executable, "-m", "milo_tui", "run", "--headless", str(project)],
                               stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started
    if code != 0:
        sys.exit(f"milo run exited with {code}; see {workdir / 'run.log'}")
    return wall


def pipeline_seconds(report: Path) -> dict[tuple[str, str, str, str], tuple[float, float]]:
    """(scaler, selector, algorithm, searcher) -> (search seconds, refit seconds) of the main phase."""
    search: dict[tuple, float] = {}
    refits: dict[tuple, dict[str, float]] = defaultdict(dict)
    with open(report, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["phase"] != "main" or row["status"] != "ok":
                continue
            pipeline = (row["scaler"], row["feature_selector"], row["algorithm"], row["searcher"])
            search[pipeline] = float(row["search_seconds"])
            refits[pipeline][row["best_params"]] = float(row["train_seconds"])
    return {p: (s, sum(refits[p].values())) for p, s in search.items()}


def summarize(project: Path, wall: float, workers: int) -> dict:
    seconds = pipeline_seconds(project / "report.csv")
    meta = json.loads((project / "metadata.json").read_text())
    per_algorithm: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    per_searcher: dict[tuple[str, str], float] = defaultdict(float)
    for (_, _, algorithm, searcher), (search, refit) in seconds.items():
        totals = per_algorithm[algorithm]
        totals[0] += 1
        totals[1] += search
        totals[2] += refit
        per_searcher[algorithm, searcher] += search + refit
    worked = sum(s + r for s, r in seconds.values())
    return {"wall_seconds": wall, "workers": workers, "status": meta.get("status"), "counts": meta.get("counts"),
            "engine_peak_bytes": (meta.get("memory") or {}).get("peak_bytes"),
            "pipelines": len(seconds), "worker_seconds": worked,
            "engine_and_metrics_seconds": workers * wall - worked,
            "per_algorithm": {a: {"pipelines": n, "search_seconds": s, "refit_seconds": r}
                              for a, (n, s, r) in sorted(per_algorithm.items(), key=lambda kv: -kv[1][1])},
            "per_searcher": {f"{a}/{s}": v for (a, s), v in sorted(per_searcher.items())}}


def render(summary: dict) -> str:
    wall, workers = summary["wall_seconds"], summary["workers"]
    capacity = workers * wall
    lines = [f"full space: {summary['pipelines']} pipelines, status {summary['status']}, counts {summary['counts']}",
             f"wall {wall:,.0f} s ({wall / 60:.1f} min) on {workers} workers = {capacity:,.0f} worker-seconds",
             f"engine peak memory (its monitor): {(summary['engine_peak_bytes'] or 0) / 2**20:,.0f} MiB", "",
             "| algorithm | pipelines | search s | refit s | share of worker-seconds | wall-equivalent min |",
             "|---|---:|---:|---:|---:|---:|"]
    for algorithm, a in summary["per_algorithm"].items():
        total = a["search_seconds"] + a["refit_seconds"]
        lines.append(f"| {algorithm} | {a['pipelines']} | {a['search_seconds']:,.0f} | {a['refit_seconds']:,.0f} | "
                     f"{100 * total / capacity:.1f} % | {total / workers / 60:.1f} |")
    other = summary["engine_and_metrics_seconds"]
    lines.append(f"| engine, metrics, saving, idle slots | | | | {100 * other / capacity:.1f} % | "
                 f"{other / workers / 60:.1f} |")
    lines += ["", "per algorithm/searcher, search + refit worker-seconds:"]
    lines += [f"  {k:14s} {v:9,.0f}" for k, v in summary["per_searcher"].items()]
    return "\n".join(lines)


def replay_eta(project: Path, marks=(0.1, 0.25, 0.5, 0.75, 0.9)) -> list[tuple[float, float, float]]:
    """The ETA the engine's work meter gives with the code of this checkout, replayed on a finished
    run: each pipeline's measured seconds (report.csv) fed to engine/workmeter.py in the order and at
    the time its models finished (events.jsonl). (elapsed, ETA, actually left) in seconds, at `marks`
    of the run's wall time. Binary runs only (the OvR phase's recount is not replayed)."""
    from milo_tui import config as milo_config
    from milo_tui.engine.data import load_data
    from milo_tui.engine.space import min_class_count
    from milo_tui.engine.plan import make_plan
    from milo_tui.engine.workmeter import WorkMeter
    from milo_tui.events import read_journal

    config = milo_config.load(project)
    s = config.search
    arrays, summary = load_data(config.train_path, config.test_path, config.target, cv_folds=s["cv_folds"],
                                test_size=s["test_size"], seed=s["seed"])
    plan = make_plan(config, len(summary.class_labels), set(), smallest_class=min_class_count(arrays["y_fit"]),
                     fit_rows=summary.fit_rows, features=summary.features)
    meter, units = WorkMeter.for_plan(plan), {unit.spec.name: unit for unit in plan.main_units}
    events = read_journal(project / "events.jsonl").events
    started, ended = events[0].ts, events[-1].ts
    finished_at = {e.data["pipeline"]: e.ts for e in events if e.type == "model_finished"}
    by_name = {"__".join(key): sum(parts) for key, parts in pipeline_seconds(project / "report.csv").items()}
    out, todo = [], list(marks)
    for name in sorted(finished_at, key=finished_at.get):
        unit = units[name]
        meter.finished(unit, len(unit.keys), by_name[name])
        elapsed = finished_at[name] - started
        while todo and elapsed >= todo[0] * (ended - started):
            out.append((elapsed, elapsed * (meter.total - meter.done) / meter.done, ended - started - elapsed))
            todo.pop(0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--summarize", type=Path, help="a finished milo_ml_full project: only read its results")
    parser.add_argument("--wall", type=float, help="with --summarize: the run's wall seconds")
    parser.add_argument("--workers", type=int, default=2, help="the run's [run] workers (the sample's: 2)")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    parser.add_argument("--eta", type=Path, metavar="PROJECT",
                        help="a finished milo_ml_full project: replay its pipelines through this checkout's ETA")
    args = parser.parse_args()
    if args.eta:
        for elapsed, eta, left in replay_eta(args.eta):
            print(f"at {elapsed / 60:5.1f} min: ETA {eta / 60:6.1f} min, actually left {left / 60:5.1f} min")
        return
    if args.summarize:
        if args.wall is None:
            parser.error("--summarize needs --wall (the run's wall seconds)")
        project, wall = args.summarize, args.wall
    else:
        workdir = Path(tempfile.mkdtemp(prefix="milo-full-space-"))
        print(f"running in {workdir} (load average {os.getloadavg()[0]:.1f})", flush=True)
        wall = run(workdir)
        project = workdir / "milo_ml_full"
    summary = summarize(project, wall, args.workers)
    print(render(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
