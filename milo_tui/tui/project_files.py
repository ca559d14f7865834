"""Reading what a run left on disk: report.csv, metadata.json, class_results/.

Plain Python (no textual). The browser of a finished project starts from
report.csv, which is richer than the events (confidence intervals, counts,
best_params); class_results/<key>.json feeds the details screen.
"""

from __future__ import annotations

import csv
import json
from typing import Any

from milo_tui.project import ProjectPaths
from milo_tui.runstate import METRIC_NAMES, ModelRow, _int_or_none, _number, split_key

csv.field_size_limit(1 << 24)  # best_params cells can be long


class ProjectFileError(Exception):
    """A project file exists but cannot be read; the message says which and what still works."""


def read_report_rows(paths: ProjectPaths) -> list[ModelRow]:
    """Every row of report.csv as a ModelRow; [] when there is no report yet.

    Raises ProjectFileError when the file is there but unreadable (permissions,
    not UTF-8, not CSV): the caller shows it and goes on with the journal's rows.
    """
    try:
        with open(paths.report, newline="", encoding="utf-8") as handle:
            return [row for row in (report_row_to_model(r) for r in csv.DictReader(handle)) if row is not None]
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ProjectFileError(
            f"{paths.report} cannot be read ({type(exc).__name__}: {exc}). The models shown come from the "
            f"event journal (without confidence intervals); the saved models in the archives are untouched."
        ) from None


def report_row_to_model(record: dict[str, str]) -> ModelRow | None:
    key = (record.get("key") or "").strip()
    if not key:
        return None
    parts = split_key(key)
    for name in ("scaler", "algorithm", "searcher", "scorer"):
        parts[name] = record.get(name) or parts[name]
    parts["selector"] = record.get("feature_selector") or parts["selector"]
    parts["rank"] = record.get("rank") or parts["rank"]
    return ModelRow(
        key=key, phase=record.get("phase") or "main", class_type=record.get("class_type") or "binary",
        class_index=_int_or_none(record.get("class_index")), class_label=record.get("class_label") or "",
        archive=record.get("archive", None), metrics={n: _number(record.get(n)) for n in METRIC_NAMES},
        report=dict(record), **parts,
    )


def find_report_row(paths: ProjectPaths, row_id: str) -> dict[str, str] | None:
    """The report.csv record of one browser row (used by the details screen of a live run)."""
    for row in read_report_rows(paths):
        if row.row_id == row_id:
            return row.report
    return None


def read_metadata(paths: ProjectPaths) -> dict[str, Any]:
    try:
        data = json.loads(paths.metadata.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_class_results(paths: ProjectPaths, key: str) -> dict[str, Any] | None:
    """class_results/<key>.json, or None when it is missing or unreadable."""
    if "/" in key or "\\" in key or key.startswith("."):
        return None  # keys never contain path separators; refuse to walk out of the folder
    try:
        data = json.loads((paths.class_results / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def thresholds_from_metadata(metadata: dict[str, Any]) -> tuple[float, float] | None:
    memory = (metadata.get("config") or {}).get("memory") or {}
    warning, critical = _number(memory.get("warning")), _number(memory.get("critical"))
    return (warning, critical) if warning and critical else None
