"""Search benchmark: milo's shared-work search against a plain scikit-learn search loop, same work.

Both sides get the same data (a sample project's fitting set, split as the engine splits it),
the same pipelines, the same grids (MILO-ML's by default), the same seeded StratifiedKFold folds
and the same scorers, and both refit the top 2 parameter sets per scorer on the fitting set
(with OvR on multi-class data: one binary refit per class and model, MILO-ML's re-optimize mode):

- plain: per pipeline one GridSearchCV/RandomizedSearchCV over the whole Pipeline with
  n_jobs=-1 (what MILO-ML does; engine/search.py plain_search), then the refits;
- milo:  per pipeline engine/search.py run_search with n_jobs=-1 over the folds, sharing fold
  results across pipelines through a fold cache as the engine's run does (engine/foldcache.py),
  then the refits, each distinct parameter set fitted once.

Each side runs in its own child process; wall time is measured around it and peak memory is the
PSS summed over its process tree (loky workers included), sampled every 0.2 s. The benchmark
then checks that every candidate's fold scores agree (1e-9) and that both refit the same
parameter sets. Per-algorithm seconds come from inside each side.

    flock /work/bench.lock python benchmarks/bench_search.py [--samples breast_cancer wine] [--folds 10]
        [--algorithms lr rf knn gb] [--scalers none std] [--selectors none select-50]
        [--searchers grid] [--scorers accuracy roc_auc] [--grids milo-ml] [--no-ovr] [--keep DIR]

Multi-class samples get the OvR refits unless --no-ovr.

`--algorithms gb knn lr mlp nb rf svm --scalers none minmax std --selectors none pca-80 ...
--searchers grid random random2 --scorers accuracy roc_auc f1_macro` is MILO-ML's full 567-pipeline
space (milo's side alone projects to about 1.5 h on 2 cores, docs/PERFORMANCE.md: run it only when
the machine is yours).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

MIB = 1024 * 1024


def _load(sample: str, seed: int = 42, test_size: float = 0.2):
    from milo_tui.config import load
    from milo_tui.engine.data import load_data

    config = load(ROOT / "sample_projects" / sample)
    arrays, summary = load_data(config.train_path, config.test_path, config.target, cv_folds=10,
                                test_size=test_size, seed=seed)
    return arrays["X_fit"], arrays["y_fit"], summary.n_classes


def _refits(spec, chosen: list[dict], X, y, n_classes: int, ovr: bool, dedupe: bool, seed: int) -> int:
    """Fit each chosen set on the whole fitting set (and per class for OvR); returns fits made."""
    from milo_tui.engine.space import make_pipeline

    sets = chosen
    if dedupe:
        unique = {json.dumps(p, sort_keys=True, default=str): p for p in chosen}
        sets = list(unique.values())
    fits = 0
    for params in sets:
        targets = [y] + ([(y == c).astype(int) for c in range(n_classes)] if ovr and n_classes > 2 else [])
        for target in targets:
            model = make_pipeline(spec, X.shape[1], seed, for_refit=True)
            model.set_params(**{f"clf__{k}": v for k, v in params.items()})
            model.fit(X, target)
            fits += 1
    return fits


def run_side(side: str, args) -> dict:
    """One side, in this process: every pipeline's search and refits. Returns timings and results."""
    import warnings

    import numpy as np

    from functools import partial

    from milo_tui.engine.foldcache import FoldCache
    from milo_tui.engine.grids import SearchSpace
    from milo_tui.engine.search import plain_search, run_search
    from milo_tui.engine.space import PipelineSpec

    warnings.filterwarnings("ignore")
    X, y, n_classes = _load(args.sample)
    space = SearchSpace(args.grids, 100 if args.grids == "milo-ml" else 10, tuple(args.searchers), seed=42)
    # milo shares fold results across pipelines through a run's fold cache, as the engine does
    # (engine/foldcache.py); a fresh private directory per side, removed at the end
    cache_dir = tempfile.TemporaryDirectory(prefix="bench_search_cache_")
    search = plain_search if side == "plain" else partial(run_search, cache=FoldCache(cache_dir.name + "/foldcache"))
    per_algorithm: dict[str, float] = {}
    results = {}
    fits = refits = hits = 0
    for algorithm in args.algorithms:
        for scaler in args.scalers:
            for selector in args.selectors:
                for searcher in args.searchers:
                    spec = PipelineSpec(scaler, selector, algorithm, searcher)
                    started = time.perf_counter()
                    result = search(spec, space, X, y, scorers=args.scorers, cv_folds=args.folds, seed=42, n_jobs=-1)
                    chosen = [p for s in args.scorers for p in result.chosen(s, 2)]
                    refits += _refits(spec, chosen, X, y, n_classes, args.ovr, dedupe=side == "milo", seed=42)
                    per_algorithm[algorithm] = per_algorithm.get(algorithm, 0.0) + time.perf_counter() - started
                    fits += result.fits
                    hits += result.cache_hits
                    results[spec.name] = {"candidates": [json.dumps(c, sort_keys=True, default=str)
                                                         for c in result.candidates],
                                          "scores": {s: np.asarray(result.scores[s]).tolist() for s in args.scorers},
                                          "chosen": {s: [json.dumps(c, sort_keys=True, default=str)
                                                         for c in result.chosen(s, 2)] for s in args.scorers}}
    cache_dir.cleanup()
    return {"per_algorithm": per_algorithm, "cv_fits": fits, "refits": refits, "cache_hits": hits,
            "results": results}


def measure(side: str, args, out: Path) -> dict:
    from bench_engine import PeakSampler

    command = [sys.executable, __file__, "--side", side, "--out", str(out)] + _passthrough(args)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}  # joblib's workers too: no convergence chatter
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env)
    with PeakSampler(process.pid, 0.2) as peak:
        code = process.wait()
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"the {side} side failed (exit {code})")
    data = json.loads(out.read_text())
    data.update(seconds=seconds, peak_mib=peak.peak_pss / MIB)
    return data


def _passthrough(args) -> list[str]:
    out = ["--sample", args.sample, "--folds", str(args.folds), "--grids", args.grids]
    for name in ("algorithms", "scalers", "selectors", "searchers", "scorers"):
        out += [f"--{name}", *getattr(args, name)]
    return out + (["--ovr"] if args.ovr else [])


def run_sample(args) -> bool:
    """Both sides on one sample; prints the comparison; True when scores and choices agree."""
    with tempfile.TemporaryDirectory(prefix="bench_search_") as work:
        folder = Path(args.keep) if args.keep else Path(work)  # --keep: the sides' results stay for a look
        folder.mkdir(parents=True, exist_ok=True)
        milo = measure("milo", args, folder / f"{args.sample}-milo.json")
        plain = measure("plain", args, folder / f"{args.sample}-plain.json")
    worst, same = compare(plain, milo)
    pipelines = len(plain["results"])
    print(f"{args.sample}: {pipelines} pipelines, {args.grids} grids, {args.folds}-fold, scorers "
          f"{', '.join(args.scorers)}{', OvR refits' if args.ovr else ''}")
    print(f"  plain loop : {plain['seconds']:7.1f} s  peak {plain['peak_mib']:6.0f} MiB  "
          f"CV fits {plain['cv_fits']:6d}  refits {plain['refits']}")
    print(f"  milo search: {milo['seconds']:7.1f} s  peak {milo['peak_mib']:6.0f} MiB  "
          f"CV fits {milo['cv_fits']:6d}  refits {milo['refits']}  fold-cache hits {milo['cache_hits']}")
    print(f"  milo wall / plain wall = {milo['seconds'] / plain['seconds']:.3f}   "
          f"peak memory milo / plain = {milo['peak_mib'] / plain['peak_mib']:.2f}")
    print(f"  largest fold-score difference {worst:.2e}; same refit parameter sets: {'yes' if same else 'NO'}")
    print("  seconds per algorithm (search + refits), plain -> milo:")
    for algorithm in args.algorithms:
        p, m = plain["per_algorithm"][algorithm], milo["per_algorithm"][algorithm]
        print(f"    {algorithm:4s} {p:8.1f} -> {m:7.1f}  ({p / max(m, 1e-9):.1f}x)")
    return worst <= 1e-9 and same


def compare(plain: dict, milo: dict) -> tuple[float, bool]:
    """Largest fold-score difference, and whether every pipeline refits the same sets (the ones
    that do not are printed)."""
    import numpy as np

    worst, same = 0.0, True
    for name, p in plain["results"].items():
        for scorer, chosen in p["chosen"].items():
            if chosen != milo["results"][name]["chosen"][scorer]:
                print(f"  {name} {scorer}: plain refits {chosen}, milo {milo['results'][name]['chosen'][scorer]}")
        m = milo["results"][name]
        if p["candidates"] != m["candidates"]:
            return float("inf"), False
        for scorer in p["scores"]:
            a, b = np.asarray(p["scores"][scorer], float), np.asarray(m["scores"][scorer], float)
            if not np.array_equal(np.isnan(a), np.isnan(b)):
                return float("inf"), False
            worst = max(worst, float(np.nanmax(np.abs(a - b), initial=0.0)))
        same &= p["chosen"] == m["chosen"]
    return worst, same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", nargs="+", default=["breast_cancer", "wine"])
    parser.add_argument("--sample", help=argparse.SUPPRESS)  # one side's sample (internal)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--grids", default="milo-ml", choices=["milo-ml", "compact"])
    parser.add_argument("--algorithms", nargs="+", default=["lr", "rf", "knn", "gb"])
    parser.add_argument("--scalers", nargs="+", default=["none", "std"])
    parser.add_argument("--selectors", nargs="+", default=["none", "select-50"])
    parser.add_argument("--searchers", nargs="+", default=["grid"])
    parser.add_argument("--scorers", nargs="+", default=["accuracy", "roc_auc"])
    parser.add_argument("--ovr", action="store_true", help=argparse.SUPPRESS)  # internal: set per sample
    parser.add_argument("--no-ovr", action="store_true", help="multi-class: skip the one-vs-rest refits")
    parser.add_argument("--keep", help="folder to keep each side's scores and choices in (JSON)")
    parser.add_argument("--side", choices=["plain", "milo"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        Path(args.out).write_text(json.dumps(run_side(args.side, args)))
        return 0
    ok = True
    for sample in args.samples:
        args.sample = sample
        args.ovr = not args.no_ovr and _load(sample)[2] > 2
        ok &= run_sample(args)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
