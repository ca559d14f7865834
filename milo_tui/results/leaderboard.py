"""The leaderboard behind `milo models`: which rows, which columns, and one renderer per format.

Rows are report.csv's model rows (one per saved model), best first by MILO-ML's order (avg_sn_sp, then
sensitivity, then f1) or by any column. Besides report.csv's columns there are four confidence-interval
columns, `accuracy_ci`, `roc_auc_ci`, `sensitivity_ci` and `specificity_ci`, each the 95 % interval of
its metric. Without --columns, the table keeps the key (never shortened: it is what you type next) and
adds metric columns while the line fits the width (80 by default); CSV and JSON get every column.
"""

from __future__ import annotations

import csv
import io
import json
from enum import Enum

from milo_tui.errors import BadInputError

CI_COLUMNS = {
    "accuracy_ci": ("acc_95_ci_low", "acc_95_ci_high"),
    "roc_auc_ci": ("roc_auc_95_ci_low", "roc_auc_95_ci_high"),
    "sensitivity_ci": ("sn_95_ci_low", "sn_95_ci_high"),
    "specificity_ci": ("sp_95_ci_low", "sp_95_ci_high"),
}
# The order in which columns join the default table while it still fits.
PREFERRED = ("key", "avg_sn_sp", "roc_auc", "accuracy", "sensitivity", "specificity", "f1", "class_label",
             "phase")
GAP = 2


class Format(Enum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"
    MARKDOWN = "markdown"


def ranked(rows: list[dict], sort: str | None = None, ascending: bool = False, limit: int = 0) -> list[dict]:
    """Model rows, best first (or by `sort`), at most `limit` of them (0: all)."""
    from milo_tui.engine.report import model_rows, sort_best_first

    models = model_rows(rows)
    if sort and sort not in available_columns(models):
        raise BadInputError(f"There is no column {sort!r} to sort by. Columns: {', '.join(available_columns(models))}.")
    ordered = sort_best_first(models, sort, descending=not ascending)
    return ordered[:limit] if limit else ordered


def available_columns(rows: list[dict]) -> list[str]:
    from milo_tui.engine.report import COLUMNS

    return list(COLUMNS) + list(CI_COLUMNS)


def parse_columns(text: str, rows: list[dict]) -> list[str]:
    """--columns "key,roc_auc,roc_auc_ci": checked against the columns there are."""
    wanted = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in available_columns(rows)]
    if unknown or not wanted:
        raise BadInputError(
            f"Unknown column{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown)) or '(none given)'} "
            f"in --columns. Columns: {', '.join(available_columns(rows))}.")
    return wanted


def value(row: dict, column: str):
    """A cell's value: report.csv's, or a (low, high) pair for a CI column (None when undefined)."""
    if column in CI_COLUMNS:
        low, high = (row.get(c) for c in CI_COLUMNS[column])
        return (low, high) if all(isinstance(v, (int, float)) for v in (low, high)) else None
    cell = row.get(column)
    return None if cell == "" else cell


def text(row: dict, column: str) -> str:
    """A cell as a person reads it: three decimals, "-" when undefined."""
    return _cell(row, column, missing="-", number=lambda v: f"{v:.3f}")


def fit_columns(rows: list[dict], width: int = 80) -> list[str]:
    """The preferred columns that fit in `width` characters, the key always first."""
    chosen: list[str] = []
    used = 0
    for column in PREFERRED:
        column_width = _width(rows, column)
        needed = column_width + (GAP if chosen else 0)
        if chosen and used + needed > width:
            continue
        chosen.append(column)
        used += needed
    return chosen


def render(rows: list[dict], columns: list[str], fmt: Format) -> str:
    if fmt is Format.JSON:
        return json.dumps([{c: value(r, c) for c in columns} for r in rows], indent=1, default=str) + "\n"
    if fmt is Format.CSV:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_raw(r, c) for c in columns] for r in rows])
        return buffer.getvalue()
    if fmt is Format.MARKDOWN:
        lines = ["| " + " | ".join(columns) + " |",
                 "|" + "|".join("---" if c in ("key", "phase", "class_label") else "---:" for c in columns) + "|"]
        lines += ["| " + " | ".join(text(r, c).replace("|", "\\|") for c in columns) + " |" for r in rows]
        return "\n".join(lines) + "\n"
    widths = {c: _width(rows, c) for c in columns}
    gap = " " * GAP
    lines = [gap.join(_align(c, c, widths[c]) for c in columns)]
    lines += [gap.join(_align(c, text(r, c), widths[c]) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def default_columns(rows: list[dict], fmt: Format, width: int = 80) -> list[str]:
    """Tables fit the width; CSV and JSON, meant for programs, get every column."""
    return fit_columns(rows, width) if fmt in (Format.TABLE, Format.MARKDOWN) else available_columns(rows)


def _raw(row: dict, column: str) -> str:
    """A CSV cell at full precision; a CI as "low-high" (its two columns hold the numbers)."""
    return _cell(row, column, missing="", number=repr)


def _cell(row: dict, column: str, *, missing: str, number) -> str:
    cell = value(row, column)
    if cell is None:
        return missing
    if isinstance(cell, tuple):
        return f"{number(cell[0])}-{number(cell[1])}"
    return number(cell) if isinstance(cell, float) else str(cell)


def _width(rows: list[dict], column: str) -> int:
    return max([len(column)] + [len(text(r, column)) for r in rows])


def _align(column: str, cell: str, width: int) -> str:
    return cell.ljust(width) if column in ("key", "phase", "class_label", "class_type") else cell.rjust(width)
