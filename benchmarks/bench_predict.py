"""`milo predict` benchmark: peak memory and rows per second on a large CSV (default 1,000,000 rows x 30 features).

A small synthetic project (400 training rows, 30 features, two classes) is trained with the real engine
(logistic regression, std scaler, grid search, 3 folds), then `milo predict` runs in its own process on a
generated CSV of --rows rows. Peak memory is that process's maximum resident set (ru_maxrss of the child,
exact, no sampling); for contrast the same model predicts the same file read whole with pandas, in its own
process. Each is measured by a fresh parent process whose only child it is (RUSAGE_CHILDREN). Rows per second count the whole command (start-up, reading, checking, predicting, writing).

    python benchmarks/bench_predict.py [--rows N] [--features F]
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

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


def make_project(folder: Path, features: int, seed: int = 0) -> Path:
    import pandas as pd

    rng = np.random.default_rng(seed)
    names = [f"marker_{i:02d}" for i in range(features)]
    weights = rng.normal(size=features)

    def frame(rows: int):
        X = rng.normal(size=(rows, features))
        y = np.where(X @ weights + rng.normal(scale=2.0, size=rows) > 0, "positive", "negative")
        return pd.DataFrame(X, columns=names).assign(outcome=y)

    project = folder / "project"
    project.mkdir(parents=True)
    frame(400).to_csv(project / "train.csv", index=False)
    frame(200).to_csv(project / "test.csv", index=False)
    (project / "milo.toml").write_text(
        '[data]\ntrain = "train.csv"\ntest = "test.csv"\ntarget = "outcome"\n\n'
        '[search]\nalgorithms = ["lr"]\nscalers = ["std"]\nselectors = ["none"]\nsearchers = ["grid"]\n'
        'scorers = ["accuracy"]\ncv_folds = 3\ntop_k = 1\n')
    return project


def write_rows(path: Path, rows: int, features: int, seed: int = 1, block: int = 100_000) -> None:
    """The input CSV, written in blocks (6 decimals per value, like a typical export)."""
    rng = np.random.default_rng(seed)
    names = [f"marker_{i:02d}" for i in range(features)]
    with open(path, "w") as handle:
        handle.write(",".join(names) + "\n")
        for start in range(0, rows, block):
            X = rng.normal(size=(min(block, rows - start), features))
            np.savetxt(handle, X, fmt="%.6f", delimiter=",")


MEASURE = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"seconds": time.perf_counter() - started, "code": done.returncode, "stdout": done.stdout,
                  "stderr": done.stderr, "peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def run_measured(command: list[str], env: dict) -> tuple[float, float, dict]:
    """(seconds, peak MiB, result) of one command, measured by a fresh parent whose only child it is."""
    out = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, env=env,
                         check=True)
    result = json.loads(out.stdout)
    return result["seconds"], result["peak_kib"] / 1024, result


WHOLE_FILE = """
import sys, joblib, pandas as pd
from milo_tui.storage.store import ModelStore
model = ModelStore(sys.argv[1]).open_model(sys.argv[2])
data = pd.read_csv(sys.argv[3])
proba = model.predict_proba(data[model.feature_names_in_])
data.assign(predicted=model.classes_[proba.argmax(axis=1)]).to_csv(sys.argv[4], index=False)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=30)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from engine_helpers import run_engine

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        work = Path(tmp)
        project = make_project(work, args.features)
        trained = run_engine(project)
        assert trained.exit_code == 0, trained.finished
        data = work / "rows.csv"
        started = time.perf_counter()
        write_rows(data, args.rows, args.features)
        print(f"input: {args.rows:,} rows x {args.features} features, {data.stat().st_size / MIB:.0f} MiB "
              f"(written in {time.perf_counter() - started:.0f} s)")
        command = [sys.executable, "-m", "milo_tui", "predict", str(project), str(data), "-o", str(work / "out.csv"),
                   "--json"]
        seconds, peak, done = run_measured(command, env)
        assert done["code"] == 0, done["stderr"]
        result = json.loads(done["stdout"])
        print(f"milo predict (chunks):  {seconds:6.1f} s  {args.rows / seconds:10,.0f} rows/s  peak {peak:6.0f} MiB "
              f"(model {result['key']})")
        whole_seconds, whole_peak, whole = run_measured(
            [sys.executable, "-c", WHOLE_FILE, str(project), result["key"], str(data), str(work / "whole.csv")], env)
        assert whole["code"] == 0, whole["stderr"]
        print(f"pandas, whole file:     {whole_seconds:6.1f} s  {args.rows / whole_seconds:10,.0f} rows/s  "
              f"peak {whole_peak:6.0f} MiB")


if __name__ == "__main__":
    main()
