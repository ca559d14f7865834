"""A run's summary (`milo summary`, and the end of `milo run --headless`): what a researcher reads first.

Best model overall and per algorithm (main models, ranked as `milo models` ranks them), failed and skipped
models with their reasons, status, wall time and peak memory, from report.csv and metadata.json only
(nothing is loaded or decompressed, so it is instant on a project of thousands of models).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from milo_tui.errors import BadInputError

RANKING = "avg_sn_sp, then sensitivity, then f1"


@dataclass(frozen=True)
class BestModel:
    key: str
    algorithm: str
    avg_sn_sp: float | None
    roc_auc: float | None
    accuracy: float | None


@dataclass(frozen=True)
class Problem:
    """Models that did not finish, grouped by pipeline and reason."""

    status: str  # "failed" or "skipped"
    pipeline: str
    models: int
    reason: str


@dataclass
class RunSummary:
    project: str
    status: str
    message: str
    completed: int
    failed: int
    skipped: int
    total: int
    wall_seconds: float | None
    peak_memory_bytes: int | None
    best: BestModel | None
    best_per_algorithm: list[BestModel] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def run_summary(project: Path) -> RunSummary:
    from milo_tui.engine.report import read_report, sort_best_first
    from milo_tui.project import ProjectPaths

    paths = ProjectPaths.of(project)
    meta = _metadata(paths)
    rows = read_report(paths.report)
    main = [r for r in rows if r.get("archive") and r.get("status") == "ok" and r.get("phase") == "main"]
    ranked = sort_best_first(main)
    per_algorithm: dict[str, dict] = {}
    for row in ranked:
        per_algorithm.setdefault(str(row.get("algorithm")), row)
    counts = meta.get("counts") or {}
    memory = meta.get("memory") or {}
    return RunSummary(
        project=str(paths.root), status=str(meta.get("status", "unknown")), message=str(meta.get("message") or ""),
        completed=int(counts.get("completed", len(main))), failed=int(counts.get("failed", 0)),
        skipped=int(counts.get("skipped", 0)), total=int(counts.get("total", 0)),
        wall_seconds=_wall_seconds(meta), peak_memory_bytes=memory.get("peak_bytes"),
        best=_best(ranked[0]) if ranked else None,
        best_per_algorithm=[_best(row) for row in per_algorithm.values()],
        problems=_problems(rows),
    )


def render(summary: RunSummary, *, with_message: bool = True) -> list[str]:
    """The summary as plain text lines (the CLI prints them; the TUI can show them as they are).

    with_message=False leaves out the run's closing message (the headless run has just printed it).
    """
    from milo_tui.config import format_size

    lines = [f"Run {summary.status}: {summary.completed} of {summary.total} models finished, "
             f"{summary.failed} failed, {summary.skipped} skipped"
             + (f"; wall time {_clock(summary.wall_seconds)}" if summary.wall_seconds is not None else "")
             + (f"; peak memory {format_size(summary.peak_memory_bytes)}" if summary.peak_memory_bytes else "")
             + "."]
    if summary.message and with_message:
        lines.append(summary.message)
    if summary.best is None:
        lines.append("No main model has finished yet.")
    else:
        lines.append(f"Best model ({RANKING}): {_describe(summary.best)}")
        lines.append("Best per algorithm:")
        lines += [f"  {b.algorithm:<5} {_describe(b)}" for b in summary.best_per_algorithm]
    if summary.problems:
        lines.append("Did not finish:")
        lines += [f"  {p.status} {p.pipeline} ({p.models} model{'s' if p.models != 1 else ''}): {p.reason}"
                  for p in summary.problems]
    return lines


def _describe(best: BestModel) -> str:
    def num(value):
        return f"{value:.3f}" if isinstance(value, (int, float)) else "-"

    return f"{best.key}  avg_sn_sp {num(best.avg_sn_sp)}, roc_auc {num(best.roc_auc)}, accuracy {num(best.accuracy)}"


def _best(row: dict) -> BestModel:
    def number(column):
        value = row.get(column)
        return float(value) if isinstance(value, (int, float)) and value == value else None

    return BestModel(str(row["key"]), str(row.get("algorithm", "")), number("avg_sn_sp"), number("roc_auc"),
                     number("accuracy"))


def _problems(rows: list[dict]) -> list[Problem]:
    groups: dict[tuple, int] = defaultdict(int)
    for row in rows:
        if row.get("status") in ("failed", "skipped"):
            pipeline = "__".join(str(row.get(c, "")) for c in ("scaler", "feature_selector", "algorithm", "searcher"))
            if row.get("phase") == "ovr" and row.get("class_index") not in ("", None):
                pipeline += f" (one-vs-rest, class {row['class_index']})"
            reason = str(row.get("reason") or "no reason recorded").splitlines()[0]
            groups[(str(row["status"]), pipeline, reason)] += 1
    return [Problem(status, pipeline, n, reason) for (status, pipeline, reason), n in sorted(groups.items())]


def _metadata(paths) -> dict:
    try:
        return json.loads(paths.metadata.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if not paths.report.exists():
            raise BadInputError(f"{paths.root} has neither metadata.json nor report.csv: no run has started "
                                "there. Start one with `milo run PROJECT`.") from None
        return {}
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{paths.metadata} cannot be read ({exc}).") from None


def _wall_seconds(meta: dict) -> float | None:
    try:
        started = datetime.fromisoformat(meta["started"])
        finished = datetime.fromisoformat(meta["finished"])
    except (KeyError, TypeError, ValueError):
        return None
    return (finished - started).total_seconds()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
