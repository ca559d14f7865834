"""Scale run: a generated 7-class, 20,000-row, 50-feature problem with OvR re-optimization and
over 1,000 models, through the real engine (`milo run --headless`), its archives and a TUI replay.

Records wall time, peak memory (PSS of the whole `milo` process tree, sampled from outside every
0.5 s, next to the engine's own figure), disk used by the model files before compression and by
the archives after, and how long the TUI's RunState takes to fold the run's journal. Then checks
the result: every report key unique, the archive indexes hold exactly the report's models, no
loose model files, and a sample of models extract hash-verified and predict.

    python benchmarks/scale_run.py [--markdown FILE]          # the full run (1,728 models)
    python benchmarks/scale_run.py --scalers none --selectors none   # a small sizing run

Works in benchmarks/_work/scale (gitignored); the project is kept for inspection.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import MIB, PeakSampler  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "_work" / "scale"


def generate_data(project: Path, rows: int, features: int, classes: int, seed: int) -> None:
    """make_classification, split 80/20 stratified into train.csv and test.csv."""
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    X, y = make_classification(n_samples=rows, n_features=features, n_informative=min(features, 20),
                               n_redundant=min(10, features // 5), n_classes=classes, n_clusters_per_class=1,
                               class_sep=1.0, random_state=seed)
    frame = pd.DataFrame(X, columns=[f"f{i:02d}" for i in range(features)]).round(5)
    frame["target"] = [f"class_{c}" for c in y]
    train, test = train_test_split(frame, test_size=0.2, stratify=frame["target"], random_state=seed)
    train.to_csv(project / "train.csv", index=False)
    test.to_csv(project / "test.csv", index=False)


def write_config(project: Path, args) -> None:
    from milo_tui.config import render_toml

    config = {
        "data": {"train": "train.csv", "test": "test.csv", "target": "target"},
        "search": {"algorithms": args.algorithms, "scalers": args.scalers, "selectors": args.selectors,
                   "searchers": args.searchers, "scorers": args.scorers, "cv_folds": args.cv_folds,
                   "top_k": args.top_k, "random_iterations": args.random_iterations, "reoptimize_ovr": True},
        "run": {"workers": args.workers},
    }
    (project / "milo.toml").write_text(render_toml(config, comments=False))


def planned_models(args) -> tuple[int, int]:
    pipelines = len(args.algorithms) * len(args.scalers) * len(args.selectors) * len(args.searchers)
    main = pipelines * len(args.scorers) * args.top_k
    return main, main * args.classes


def run_headless(project: Path, interval: float) -> dict:
    log = project.parent / "milo-run.log"
    started = time.perf_counter()
    with open(log, "w") as out:
        child = subprocess.Popen([sys.executable, "-m", "milo_tui", "run", str(project), "--headless"],
                                 stdout=out, stderr=subprocess.STDOUT)
        with PeakSampler(child.pid, interval) as peak:
            code = child.wait()
    return {"seconds": time.perf_counter() - started, "exit_code": code, "peak_pss": peak.peak_pss,
            "samples": peak.samples, "log": str(log)}


def replay_journal(project: Path) -> dict:
    """What `milo watch` does on attach: read the journal and fold every event into the TUI's RunState."""
    from milo_tui import events as ev
    from milo_tui.runstate import RunState

    started = time.perf_counter()
    decoded = ev.read_journal(project / "events.jsonl")
    read_seconds = time.perf_counter() - started
    state = RunState()
    state.apply_batch(decoded.events, decoded.errors)
    seconds = time.perf_counter() - started
    return {"events": len(decoded.events), "errors": len(decoded.errors), "seconds": seconds,
            "read_seconds": read_seconds, "state_status": state.status, "state_models": len(state.models),
            "state_completed": state.completed}


def check_consistency(project: Path, samples: int, seed: int) -> dict:
    """Keys unique, archives == report, nothing loose, a random sample extracts, verifies and predicts."""
    import pandas as pd

    from milo_tui.engine.report import model_rows, read_report
    from milo_tui.storage.store import ModelStore

    keys = [r["key"] for r in model_rows(read_report(project / "report.csv"))]
    store = ModelStore(project)
    archived = [e.key for e in store.list_models()]
    loose = [p.name for d in ("main_models", "ovr_models") for p in (project / "models" / d).glob("*.joblib")]
    X = pd.read_csv(project / "test.csv").drop(columns=["target"]).to_numpy()[:100]
    opened = []
    for key in random.Random(seed).sample(keys, min(samples, len(keys))):
        started = time.perf_counter()
        model = store.open_model(key)
        model.predict(X)
        opened.append(time.perf_counter() - started)
    return {"report_models": len(keys), "unique_keys": len(set(keys)) == len(keys),
            "archive_matches_report": sorted(archived) == sorted(keys), "loose_files": len(loose),
            "opened": len(opened), "open_median_ms": 1000 * sorted(opened)[len(opened) // 2] if opened else 0}


def disk_usage(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def markdown_section(args, result: dict) -> str:
    run, stats, replay, checks, meta = (result[k] for k in ("run", "stats", "replay", "checks", "meta"))
    main, ovr = result["planned"]
    counts = meta["counts"]
    raw, packed = stats["bytes_before_compression"], stats["bytes_in_archives"]
    lines = [
        "## Scale run", "",
        f"`python benchmarks/scale_run.py` — {args.rows:,} rows generated by `make_classification` "
        f"({args.classes} classes, {args.features} features; 80/20 into train.csv and test.csv), "
        f"{', '.join(args.algorithms)} × {len(args.scalers)} scalers × {len(args.selectors)} selectors × "
        f"{len(args.searchers)} searchers × {len(args.scorers)} scorers × top {args.top_k}, {args.cv_folds}-fold CV, "
        f"OvR re-optimization, {args.workers} workers: {main:,} main + {ovr:,} OvR = **{main + ovr:,} models**, "
        "through `milo run --headless` (the real engine, workers, archives), then a replay of its journal "
        "through the TUI's `RunState` (what `milo watch` does on attach).", "",
        "| measure | value |", "|---|---|",
        f"| status, exit code | {meta['status']}, {run['exit_code']} |",
        f"| models completed / failed / skipped | {counts['completed']:,} / {counts['failed']} / {counts['skipped']} |",
        f"| wall time | {run['seconds']:.0f} s ({run['seconds'] / max(1, counts['completed']) * 1000:.0f} ms per model) |",
        f"| peak PSS of the `milo` process tree (sampled every {args.interval} s from outside) | {run['peak_pss'] / MIB:.0f} MiB |",
        f"| engine's own peak (metadata.json, its monitor) | {meta['memory']['peak_bytes'] / MIB:.0f} MiB |",
        f"| model files before compression | {raw / 1e6:.1f} MB |",
        f"| archives after compression (main + OvR, indexes excluded) | {packed / 1e6:.1f} MB "
        f"({stats['compression_ratio'] * 100:.1f} % smaller, {stats['batches']} batches) |",
        f"| project folder on disk after the run | {result['project_bytes'] / 1e6:.1f} MB |",
        f"| TUI replay: {replay['events']:,} journal events read and folded into RunState | "
        f"{replay['seconds'] * 1000:.0f} ms (reading {replay['read_seconds'] * 1000:.0f} ms); "
        f"{replay['state_completed']:,} completed, status {replay['state_status']} |",
        f"| checks: keys unique; archive indexes == report; loose model files | "
        f"{checks['unique_keys']}; {checks['archive_matches_report']}; {checks['loose_files']} |",
        f"| {checks['opened']} random models extracted, hash-verified, loaded, predicting | "
        f"median {checks['open_median_ms']:.0f} ms each |",
        "",
    ]
    return "\n".join(lines)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--classes", type=int, default=7)
    parser.add_argument("--algorithms", nargs="+", default=["lr", "nb"])
    parser.add_argument("--scalers", nargs="+", default=["none", "std", "minmax"])
    parser.add_argument("--selectors", nargs="+", default=["none", "select-25", "select-50"])
    parser.add_argument("--searchers", nargs="+", default=["grid", "random"])
    parser.add_argument("--scorers", nargs="+", default=["accuracy", "roc_auc", "f1_macro"])
    parser.add_argument("--cv-folds", type=int, default=3)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--random-iterations", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between outside PSS samples")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--verify", type=int, default=50, help="random models extracted and checked")
    parser.add_argument("--markdown", type=Path, help="write the '## Scale run' section of PERFORMANCE.md here")
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    from milo_tui.storage.stats import project_storage_stats

    main_models, ovr_models = planned_models(args)
    shutil.rmtree(WORK, ignore_errors=True)
    project = WORK / "project"
    project.mkdir(parents=True)
    generate_data(project, args.rows, args.features, args.classes, args.seed)
    write_config(project, args)
    print(f"scale run: {main_models} main + {ovr_models} OvR = {main_models + ovr_models} models in {project}", flush=True)
    run = run_headless(project, args.interval)
    print(f"  milo run --headless: exit {run['exit_code']} in {run['seconds']:.1f} s, "
          f"peak PSS {run['peak_pss'] / MIB:.0f} MiB (log {run['log']})", flush=True)
    meta = json.loads((project / "metadata.json").read_text())
    stats = project_storage_stats(project).as_event()
    replay = replay_journal(project)
    checks = check_consistency(project, args.verify, args.seed)
    result = {"planned": (main_models, ovr_models), "run": run, "meta": meta, "stats": stats, "replay": replay,
              "checks": checks, "project_bytes": disk_usage(project)}
    print(f"  status {meta['status']}, counts {meta['counts']}, engine's own peak {meta['memory']['peak_bytes'] / MIB:.0f} MiB")
    print(f"  disk: {stats['bytes_before_compression'] / 1e6:.1f} MB of model files -> "
          f"{stats['bytes_in_archives'] / 1e6:.1f} MB of archives ({stats['compression_ratio'] * 100:.1f} % smaller); "
          f"project {result['project_bytes'] / 1e6:.1f} MB")
    print(f"  TUI replay: {replay['events']} events in {replay['seconds'] * 1000:.0f} ms, "
          f"{replay['errors']} garbled, RunState completed={replay['state_completed']} status={replay['state_status']}")
    print(f"  checks: {checks}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    if args.markdown:
        args.markdown.write_text(markdown_section(args, result))
        print(f"wrote {args.markdown}")
    ok = (run["exit_code"] == 0 and checks["unique_keys"] and checks["archive_matches_report"]
          and not checks["loose_files"])
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
