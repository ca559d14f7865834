"""Gradient boosting for MILO-ML's gb grid: HistGradientBoosting vs XGBoost vs LightGBM.

Same data (a sample project's fitting set), same 30-candidate grid (learning_rate 0.01/0.05/0.1
x max_depth 2-6 x 100/1000 trees), same seeded 10-fold StratifiedKFold, scorers accuracy and
ROC AUC, one GridSearchCV per library with n_jobs=-1 (each model single-threaded). Prints wall
time and the best mean CV scores, so speed is compared at equal quality.

    flock /work/bench.lock python benchmarks/bench_boosting.py [--sample breast_cancer] [--folds 10]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

GRID = {"learning_rate": [0.01, 0.05, 0.1], "max_depth": [2, 3, 4, 5, 6], "trees": [100, 1000]}


def libraries():
    from sklearn.ensemble import HistGradientBoostingClassifier

    out = {"sklearn-hist": (HistGradientBoostingClassifier(early_stopping=False, random_state=0), "max_iter")}
    try:
        from xgboost import XGBClassifier
        out["xgboost"] = (XGBClassifier(n_jobs=1, random_state=0, eval_metric="logloss"), "n_estimators")
    except ImportError:
        pass
    try:
        from lightgbm import LGBMClassifier
        out["lightgbm"] = (LGBMClassifier(n_jobs=1, random_state=0, verbose=-1), "n_estimators")
    except ImportError:
        pass
    return out


def main() -> int:
    from bench_search import _load
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    parser = argparse.ArgumentParser()
    parser.add_argument("--sample", default="breast_cancer")
    parser.add_argument("--folds", type=int, default=10)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    X, y, n_classes = _load(args.sample)
    scoring = {"accuracy": "accuracy", "roc_auc": "roc_auc" if n_classes == 2 else "roc_auc_ovr"}
    print(f"{args.sample}: {len(y)} rows, MILO-ML's gb grid (30 candidates), {args.folds}-fold, n_jobs=-1")
    for name, (estimator, trees) in libraries().items():
        grid = {trees if k == "trees" else k: v for k, v in GRID.items()}
        cv = StratifiedKFold(args.folds, shuffle=True, random_state=42)
        search = GridSearchCV(estimator, grid, scoring=scoring, refit=False, cv=cv, n_jobs=-1)
        started = time.perf_counter()
        search.fit(X, y)
        seconds = time.perf_counter() - started
        res = search.cv_results_
        print(f"  {name:13s} {seconds:7.1f} s   best mean accuracy {res['mean_test_accuracy'].max():.4f}"
              f"   best mean ROC AUC {res['mean_test_roc_auc'].max():.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
