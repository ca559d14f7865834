"""report.csv: one row per model (and per class of a multi-class model), appended as models finish.

Rows of one pipeline are appended in a single write and fsynced, so a run
killed at any instant keeps every finished row; a torn last line (a kill in
the middle of that write) is dropped when the report is next opened.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from milo_tui.keys import best_order_key
from milo_tui.project import atomic_write_text, raise_if_disk_full

COLUMNS = [
    "key", "class_type", "class_index", "class_label", "phase", "archive",
    "scaler", "feature_selector", "algorithm", "searcher", "scorer", "rank", "status", "reason",
    "accuracy", "acc_95_ci_low", "acc_95_ci_high", "mcc", "avg_sn_sp",
    "roc_auc", "roc_auc_95_ci_low", "roc_auc_95_ci_high", "f1",
    "sensitivity", "sn_95_ci_low", "sn_95_ci_high", "specificity", "sp_95_ci_low", "sp_95_ci_high",
    "prevalence", "ppv", "npv", "tn", "tp", "fn", "fp", "brier_score",
    "best_params", "training_roc_auc", "roc_delta",
    "train_seconds", "search_seconds", "peak_memory_mb", "model_bytes",
]
NUMERIC = {
    "accuracy", "acc_95_ci_low", "acc_95_ci_high", "mcc", "avg_sn_sp", "roc_auc", "roc_auc_95_ci_low",
    "roc_auc_95_ci_high", "f1", "sensitivity", "sn_95_ci_low", "sn_95_ci_high", "specificity",
    "sp_95_ci_low", "sp_95_ci_high", "prevalence", "ppv", "npv", "tn", "tp", "fn", "fp", "brier_score",
    "training_roc_auc", "roc_delta", "train_seconds", "search_seconds", "peak_memory_mb", "model_bytes",
    "rank", "class_index",
}


def _cell(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return ""
        return repr(round(value, 6))
    return str(value)


def format_rows(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    for row in rows:
        writer.writerow({c: _cell(row.get(c)) for c in COLUMNS})
    return buffer.getvalue()


class ReportWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists() or path.stat().st_size == 0:
            atomic_write_text(path, ",".join(COLUMNS) + "\n")

    def append(self, rows: list[dict]) -> None:
        if not rows:
            return
        data = format_rows(rows).encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as exc:
            # All of this pipeline's rows or none: a torn row would be read as a finished model.
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass
            raise_if_disk_full(self.path, exc)
            raise
        finally:
            os.close(fd)

    def rewrite(self, rows: list[dict]) -> None:
        atomic_write_text(self.path, ",".join(COLUMNS) + "\n" + format_rows(rows))


def _parse(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if key in NUMERIC and value not in ("", None):
            try:
                number = float(value)
                out[key] = int(number) if key in {"tn", "tp", "fn", "fp", "rank", "class_index", "model_bytes"} else number
            except ValueError:
                out[key] = value
        else:
            out[key] = value if value is not None else ""
    return out


def read_report(path: Path, *, parse: bool = True) -> list[dict]:
    """All complete rows; a torn final line (no newline) is ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    rows = list(csv.DictReader(io.StringIO(text)))
    rows = [r for r in rows if r.get("key")]
    return [_parse(r) for r in rows] if parse else rows


def model_rows(rows: list[dict]) -> list[dict]:
    """Rows that own a model file (not the per-class rows of a multi-class model)."""
    return [r for r in rows if r.get("archive") and r.get("status") == "ok"]


def sort_best_first(rows: list[dict], column: str | None = None, descending: bool = True) -> list[dict]:
    def number(row, col):
        value = row.get(col)
        return float(value) if isinstance(value, (int, float)) and value == value else float("-inf")

    if column is None:
        return sorted(rows, key=best_order_key, reverse=True)
    if column in NUMERIC:
        return sorted(rows, key=lambda r: number(r, column), reverse=descending)
    return sorted(rows, key=lambda r: str(r.get(column, "")), reverse=descending)
