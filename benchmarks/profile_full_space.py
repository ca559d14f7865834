"""Where MILO-ML's full 567-pipeline space would spend its time: a PROJECTION, not a run.

For each algorithm and searcher (grid, random, random2) of sample_projects/milo_ml_full (MILO-ML's
grids, 10-fold, its three scorers, breast cancer), this times milo's own search
(engine/search.py run_search, n_jobs=1, one thread per process as in the engine's workers) for a
few representative pipelines, plus the refits the worker makes (the top 2 parameter sets per scorer,
each distinct set fitted once, on the whole fitting set). It records CPU seconds (core-seconds; the
measure that survives a shared machine) and wall seconds, and the estimator fits made.

The projection then multiplies: every one of the 3 scalers x 9 selectors of an (algorithm,
searcher) costs what its measured representative costs — selectors "none" and select-* take the
select-50 pipeline's time, pca-* the pca-90 one's, rf-* the rf-50 one's (each falls back to
select-50 when not measured); all measured with the std scaler. Wall on W workers = core-seconds / W
(567 pipelines pack well; the engine's own overhead per pipeline is not included).

A second column projects the fold cache for gb (engine/foldcache.py, another piece of issue 12, not
measured here): for the 7 selectors that keep the scaled columns as they are (none, rf-*, select-*)
one scaler's gb fold scores serve all three; refits are not assumed shared, and neither are rf's
fold scores (the cache does not share them: a node splits at the midpoint of its own values).

    flock /work/bench.lock python benchmarks/profile_full_space.py --algorithms mlp --out profile.json
    python benchmarks/profile_full_space.py --report profile.json [--workers 2]

Runs append to --out (one (algorithm, searcher, selector) entry each, replaced when re-measured),
so the measurement can be split into short holds of the benchmark lock.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # the engine's workers run one thread each (executor.THREAD_VARIABLES)

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "sample_projects" / "milo_ml_full"
ALGORITHMS = ("gb", "knn", "lr", "mlp", "nb", "rf", "svm")
SEARCHERS = ("grid", "random", "random2")
SCALERS = ("none", "minmax", "std")
SELECTORS = ("none", "pca-80", "pca-90", "rf-25", "rf-50", "rf-75", "select-25", "select-50", "select-75")
SCALE_FREE_SELECTORS = {"none", "rf-25", "rf-50", "rf-75", "select-25", "select-50", "select-75"}
CACHED_ALGORITHMS = {"gb"}  # what engine/foldcache.py shares across scalers


def load_project():
    from milo_tui.config import load
    from milo_tui.engine.data import load_data
    from milo_tui.engine.grids import SearchSpace

    config = load(PROJECT)
    arrays, _ = load_data(config.train_path, config.test_path, config.target, cv_folds=config.search["cv_folds"],
                          test_size=config.search["test_size"], seed=config.search["seed"])
    return config, SearchSpace.from_config(config), arrays["X_fit"], arrays["y_fit"]


def refit(spec, chosen: list[dict], X, y, seed: int) -> int:
    """The worker's refits: each distinct chosen set once, with the saved model's settings."""
    from milo_tui.engine.space import make_pipeline

    distinct = {json.dumps(p, sort_keys=True, default=str): p for p in chosen}
    for params in distinct.values():
        model = make_pipeline(spec, X.shape[1], seed, for_refit=True)
        model.set_params(**{f"clf__{k}": v for k, v in params.items()})
        model.fit(X, y)
    return len(distinct)


def measure_one(spec, config, space, X, y) -> dict:
    from milo_tui.engine.search import run_search

    search = config.search
    wall, cpu = time.perf_counter(), time.process_time()
    result = run_search(spec, space, X, y, scorers=search["scorers"], cv_folds=search["cv_folds"],
                        seed=search["seed"], n_jobs=1)
    search_wall, search_cpu = time.perf_counter() - wall, time.process_time() - cpu
    chosen = [p for s in search["scorers"] for p in result.chosen(s, search["top_k"])]
    wall, cpu = time.perf_counter(), time.process_time()
    refits = refit(spec, chosen, X, y, search["seed"])
    return {"algorithm": spec.algorithm, "searcher": spec.searcher, "selector": spec.selector,
            "scaler": spec.scaler, "candidates": len(result.candidates), "fits": result.fits,
            "plain_fits": len(result.candidates) * search["cv_folds"],
            "search_cpu": search_cpu, "search_wall": search_wall,
            "refits": refits, "refit_cpu": time.process_time() - cpu, "refit_wall": time.perf_counter() - wall,
            "load": os.getloadavg()[0], "at": time.strftime("%H:%M:%S", time.gmtime())}


def measure(args) -> None:
    import warnings

    from milo_tui.engine.space import PipelineSpec

    warnings.filterwarnings("ignore")
    config, space, X, y = load_project()
    out = Path(args.out)
    entries = json.loads(out.read_text()) if out.exists() else []
    for algorithm in args.algorithms:
        for searcher in args.searchers:
            for selector in args.selectors:
                row = measure_one(PipelineSpec("std", selector, algorithm, searcher), config, space, X, y)
                entries = [e for e in entries if (e["algorithm"], e["searcher"], e["selector"])
                           != (algorithm, searcher, selector)] + [row]
                out.write_text(json.dumps(entries, indent=1))
                print(f"{algorithm:4s} {searcher:8s} std/{selector:9s} {row['candidates']:4d} candidates "
                      f"{row['fits']:5d} fits (plain {row['plain_fits']:5d})  search {row['search_cpu']:7.1f} "
                      f"cpu-s {row['search_wall']:7.1f} wall-s  refits {row['refits']} {row['refit_cpu']:6.1f} "
                      f"cpu-s  load {row['load']:.1f}", flush=True)


def representative(entries: dict, algorithm: str, searcher: str, selector: str) -> dict | None:
    family = {"pca": "pca-90", "rf": "rf-50"}.get(selector.split("-")[0], "select-50")
    return entries.get((algorithm, searcher, family)) or entries.get((algorithm, searcher, "select-50"))


def project(entries: list[dict], workers: int) -> list[dict]:
    """Per algorithm: projected core-seconds of all its 81 pipelines, without and with the gb fold cache."""
    by_key = {(e["algorithm"], e["searcher"], e["selector"]): e for e in entries}
    rows = []
    for algorithm in ALGORITHMS:
        total = cached = fits = plain_fits = 0.0
        missing = []
        for searcher in SEARCHERS:
            for selector in SELECTORS:
                entry = representative(by_key, algorithm, searcher, selector)
                if entry is None:
                    missing.append(searcher)
                    continue
                search, refits = entry["search_cpu"], entry["refit_cpu"]
                total += len(SCALERS) * (search + refits)
                shared = algorithm in CACHED_ALGORITHMS and selector in SCALE_FREE_SELECTORS
                cached += (search if shared else len(SCALERS) * search) + len(SCALERS) * refits
                fits += len(SCALERS) * entry["fits"]
                plain_fits += len(SCALERS) * entry["plain_fits"]
        if missing:
            continue
        rows.append({"algorithm": algorithm, "core_s": total, "cached_core_s": cached,
                     "fits": fits, "plain_fits": plain_fits})
    return rows


def report(args) -> None:
    entries = json.loads(Path(args.report).read_text())
    print("Measured (std scaler, n_jobs=1, one thread; CPU seconds; search = 10-fold CV, refits = top 2 per scorer):")
    print(f"{'alg':4s} {'searcher':8s} {'selector':9s} {'cand':>5s} {'fits':>6s} {'plain':>6s} "
          f"{'search s':>9s} {'refit s':>8s} {'load':>5s}")
    for e in sorted(entries, key=lambda e: (e["algorithm"], SEARCHERS.index(e["searcher"]), e["selector"])):
        print(f"{e['algorithm']:4s} {e['searcher']:8s} {e['selector']:9s} {e['candidates']:5d} {e['fits']:6d} "
              f"{e['plain_fits']:6d} {e['search_cpu']:9.1f} {e['refit_cpu']:8.1f} {e['load']:5.1f}")
    rows = project(entries, args.workers)
    total = sum(r["core_s"] for r in rows)
    cached = sum(r["cached_core_s"] for r in rows)
    print(f"\nPROJECTION for the full space (27 pipelines per algorithm and searcher, 81 per algorithm), "
          f"wall = core-seconds / {args.workers} workers:")
    print(f"{'alg':4s} {'core-s':>8s} {'share':>6s} {'wall min':>9s} {'fits':>8s} {'plain fits':>10s} "
          f"{'with gb fold cache: core-s':>27s} {'wall min':>9s}")
    for r in sorted(rows, key=lambda r: -r["core_s"]):
        print(f"{r['algorithm']:4s} {r['core_s']:8.0f} {r['core_s'] / total:6.1%} "
              f"{r['core_s'] / args.workers / 60:9.1f} {r['fits']:8.0f} {r['plain_fits']:10.0f} "
              f"{r['cached_core_s']:27.0f} {r['cached_core_s'] / args.workers / 60:9.1f}")
    print(f"{'all':4s} {total:8.0f} {'':6s} {total / args.workers / 60:9.1f} {'':8s} {'':10s} "
          f"{cached:27.0f} {cached / args.workers / 60:9.1f}")
    if len(rows) < len(ALGORITHMS):
        print(f"(not all algorithms measured: {sorted(set(ALGORITHMS) - {r['algorithm'] for r in rows})})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=ALGORITHMS)
    parser.add_argument("--searchers", nargs="+", default=list(SEARCHERS), choices=SEARCHERS)
    parser.add_argument("--selectors", nargs="+", default=["select-50"], choices=SELECTORS)
    parser.add_argument("--out", default="profile_full_space.json", help="JSON file the measurements are added to")
    parser.add_argument("--report", help="print the table and the projection from this JSON file")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.report:
        report(args)
    else:
        measure(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
