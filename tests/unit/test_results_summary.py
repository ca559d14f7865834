"""The run summary from report.csv and metadata.json alone: best overall and per algorithm, and every
pipeline that did not finish with its reason (what a researcher reads first after a run)."""

from __future__ import annotations

import json

from milo_tui.engine.report import ReportWriter
from milo_tui.results.summary import render, run_summary


def _row(key, algorithm, avg, **extra):
    return {"key": key, "phase": "main", "archive": "main_models", "status": "ok", "algorithm": algorithm,
            "scaler": "std", "feature_selector": "none", "searcher": "grid", "avg_sn_sp": avg,
            "sensitivity": avg, "f1": avg, "roc_auc": avg, "accuracy": avg, **extra}


def _failure(key, algorithm, status, reason, phase="main", class_index=""):
    return {"key": key, "phase": phase, "status": status, "reason": reason, "algorithm": algorithm,
            "scaler": "none", "feature_selector": "none", "searcher": "grid", "class_index": class_index}


def test_summary_ranks_main_models_and_groups_failures_by_pipeline_and_reason(tmp_path):
    (tmp_path / "milo.toml").write_text("")
    ReportWriter(tmp_path / "report.csv").append([
        _row("std__none__lr__grid__accuracy__0", "lr", 0.91),
        _row("std__none__rf__grid__accuracy__0", "rf", 0.95),
        _row("std__none__lr__grid__roc_auc__0", "lr", 0.93),
        {**_row("std__none__rf__grid__accuracy__0_ovr_class_0", "rf", 0.99), "phase": "ovr"},  # not a main model
        _failure("none__none__svm__grid__accuracy__0", "svm", "failed", "ValueError: bad\ntraceback..."),
        _failure("none__none__svm__grid__accuracy__1", "svm", "failed", "ValueError: bad\ntraceback..."),
        _failure("none__none__mlp__grid__accuracy__0", "mlp", "skipped", "memory: needs 9 GiB", "ovr", 2),
    ])
    (tmp_path / "metadata.json").write_text(json.dumps({
        "status": "completed", "message": "done", "started": "2026-11-25T10:00:00+00:00",
        "finished": "2026-11-25T10:02:05+00:00", "counts": {"completed": 4, "failed": 2, "skipped": 1, "total": 7},
        "memory": {"peak_bytes": 300 * 2**20}}))
    summary = run_summary(tmp_path)
    assert summary.best.key == "std__none__rf__grid__accuracy__0"
    assert [(b.algorithm, b.key) for b in summary.best_per_algorithm] == [
        ("rf", "std__none__rf__grid__accuracy__0"), ("lr", "std__none__lr__grid__roc_auc__0")]
    assert summary.wall_seconds == 125 and summary.peak_memory_bytes == 300 * 2**20
    problems = {(p.status, p.pipeline, p.models, p.reason) for p in summary.problems}
    assert problems == {("failed", "none__none__svm__grid", 2, "ValueError: bad"),
                        ("skipped", "none__none__mlp__grid (one-vs-rest, class 2)", 1, "memory: needs 9 GiB")}
    text = "\n".join(render(summary))
    assert "wall time 0:02:05" in text and "peak memory 300" in text and "Did not finish:" in text
    assert "done" not in "\n".join(render(summary, with_message=False))
