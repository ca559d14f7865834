"""A quick look at a CSV before a project is made of it: its columns and the classes of the target.

`milo init` uses this to refuse a target column that is not there (suggesting
the closest name) and to show the user the classes it found, in their own
labels, before anything is trained. The engine's loader (engine/data.py) does
the full validation when a run starts; this only reads what init must check.
"""

from __future__ import annotations

import csv
import difflib
from collections import Counter
from pathlib import Path

from milo_tui.errors import BadInputError


def class_labels(path: Path, target: str) -> dict[str, int]:
    """{label: rows} of column `target`, most frequent first. BadInputError if it cannot be."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, [])]
            if target not in header:
                raise BadInputError(_missing_column(path, target, header))
            column = header.index(target)
            counts = Counter(row[column].strip() for row in reader if len(row) > column and row[column].strip())
    except UnicodeDecodeError:
        raise BadInputError(f"{path} is not UTF-8 text, so it cannot be read as a CSV. "
                            "Save it as UTF-8 CSV and try again.") from None
    except csv.Error as exc:
        raise BadInputError(f"{path} is not a readable CSV ({exc}). Check the file and try again.") from None
    if len(counts) < 2:
        found = f"only {next(iter(counts))!r}" if counts else "no values"
        raise BadInputError(f"The target column {target!r} of {path} has {found}: a classifier needs at least "
                            "two classes. Check that --target names the class column.")
    rows = sum(counts.values())
    if len(counts) > rows / 2:
        raise BadInputError(f"The target column {target!r} of {path} has {len(counts)} different values in {rows} "
                            "rows: it looks like a measurement, not a class. Check that --target names the class "
                            "column.")
    return dict(counts.most_common())


def shown(values, limit: int = 10) -> str:
    """a, b, c and 7 more: a list that stays one readable line."""
    values = list(values)
    text = ", ".join(values[:limit])
    return text + (f" and {len(values) - limit} more" if len(values) > limit else "")


def _missing_column(path: Path, target: str, header: list[str]) -> str:
    close = difflib.get_close_matches(target, header, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    shown = ", ".join(map(repr, header[:12])) + (f" and {len(header) - 12} more" if len(header) > 12 else "")
    return (f"{path} has no column {target!r}.{hint} Its columns are {shown or 'none (the file is empty)'}. "
            "Give the class column with --target.")
