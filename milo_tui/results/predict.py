"""`milo predict`: a project's model applied to a CSV of new rows, read and written in chunks.

The output holds the input's rows as read, then one column with the predicted label and one probability
column per class, named by the user's labels: `predicted_<target>`, `probability_<label>`. A one-vs-rest
model's classes are its own class and the project's rest marker (engine/labels.py).

The input must hold exactly the model's feature columns, in any order; the project's target column may
be there too (it is kept in the output and not used). Anything else is refused with one paragraph naming
the column (and for bad values, the first row): missing or extra columns, repeated column names,
non-numeric, missing or infinite values, an empty file. Input values are copied to the output as
written (read as text, parsed once for the model). The output file appears only once every row was
predicted: a refusal in the last chunk leaves nothing behind.

Memory stays bounded by the chunk size whatever the file's length (benchmarks/bench_predict.py).
"""

from __future__ import annotations

import csv
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from milo_tui.errors import BadInputError
from milo_tui.results.model import ProjectModel, open_project_model

CHUNK_ROWS = 50_000


@dataclass
class Prediction:
    """What one `predict_csv` call did."""

    key: str
    rows: int
    output: Path
    seconds: float
    predicted_counts: dict[str, int]
    columns_added: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def best_model_key(project: Path) -> str:
    """The project's best main model (avg_sn_sp, then sensitivity, then f1), as `milo models` ranks them."""
    from milo_tui.engine.report import model_rows, read_report, sort_best_first
    from milo_tui.project import ProjectPaths

    paths = ProjectPaths.of(project)
    rows = [r for r in model_rows(read_report(paths.report)) if r.get("phase") == "main"]
    if not rows:
        raise BadInputError(
            f"{paths.root} has no finished model yet (report.csv lists none), so there is no best model to "
            "predict with. Train first with `milo run PROJECT`, or name a model with --model KEY.")
    return str(sort_best_first(rows)[0]["key"])


def default_output(data: Path) -> Path:
    return data.with_name(f"{data.stem}.predictions.csv")


def predict_csv(project: Path, data: Path, output: Path | None = None, *, key: str | None = None,
                chunk_rows: int = CHUNK_ROWS, store=None) -> Prediction:
    """Predict every row of `data` with model `key` (default: the best) and write `output`.

    The output appears only when every row was predicted (written to a temporary file, then renamed).
    Raises BadInputError (one paragraph) for bad input; an existing output is never overwritten.
    """
    from milo_tui.results.model import ProjectData

    started = time.perf_counter()
    data = Path(data)
    output = Path(output) if output is not None else default_output(data)
    target = ProjectData.read(project).target
    key = key or best_model_key(project)
    model = open_project_model(project, key, store=store)
    header = read_header(data)
    check_columns(header, model.feature_names, target, data)
    added = output_columns(model, target, header)
    _refuse_existing(output)
    rows = 0
    counts: Counter = Counter()
    temporary = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            for chunk in _chunks(data, header, chunk_rows):
                if chunk.empty:
                    continue
                features = numeric_features(chunk, model.feature_names, data, first_row=rows + 1)
                labels, proba = model.predict(features)
                chunk[added[0]] = labels
                for column, values in zip(added[1:], proba.T):
                    chunk[column] = values
                chunk.to_csv(handle, header=rows == 0, index=False, lineterminator="\n")
                counts.update(str(label) for label in labels)
                rows += len(chunk)
        if rows == 0:
            raise BadInputError(f"{data} has a header but no data rows: there is nothing to predict.")
        os.replace(temporary, output)
    except OSError as exc:
        raise BadInputError(
            f"The predictions cannot be written to {output} ({exc.strerror or exc}). Choose a folder you can "
            "write to with -o, and check the disk has room.") from None
    finally:
        temporary.unlink(missing_ok=True)
    return Prediction(key=key, rows=rows, output=output, seconds=time.perf_counter() - started,
                      predicted_counts=dict(counts), columns_added=added, notes=model.notes)


def read_header(data: Path) -> list[str]:
    """The CSV's header as written (before pandas renames a repeated name); refuses missing/empty files."""
    try:
        with open(data, encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), None)
    except FileNotFoundError:
        raise BadInputError(f"{data} does not exist. Give the path of a CSV file to predict.") from None
    except IsADirectoryError:
        raise BadInputError(f"{data} is a folder. Give the path of a CSV file to predict.") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInputError(f"{data} cannot be read as a UTF-8 CSV file ({exc}).") from None
    if not header or not any(name.strip() for name in header):
        raise BadInputError(f"{data} is empty. It needs a header row naming the feature columns, then data rows.")
    return header


def check_columns(header: list[str], features: list[str], target: str, data: Path) -> None:
    """Refuse repeated, missing and extra columns, by name."""
    repeated = sorted({name for name, n in Counter(h.strip() for h in header).items() if n > 1})
    if repeated:
        raise BadInputError(
            f"{data} names these columns more than once: {', '.join(map(repr, repeated))}. Give every column "
            "a distinct name: milo cannot tell which copy the model should read.")
    missing = [f for f in features if f not in header]
    extra = [h for h in header if h not in features and h != target]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing the model's feature columns {', '.join(map(repr, missing[:20]))}"
                         + (f" and {len(missing) - 20} more" if len(missing) > 20 else ""))
        if extra:
            parts.append(f"has columns the model was not trained on: {', '.join(map(repr, extra[:20]))}"
                         + (f" and {len(extra) - 20} more" if len(extra) > 20 else ""))
        raise BadInputError(
            f"{data} does not fit the model: it is {'; it '.join(parts)}. The model needs exactly the "
            f"feature columns of train.csv ({len(features)}, in any order; the target column {target!r} "
            "may be present and is ignored). Rename or remove columns to match.")


def output_columns(model: ProjectModel, target: str, header: list[str]) -> list[str]:
    """`predicted_<target>`, then `probability_<label>` for each class in the model's order."""
    columns = [f"predicted_{target}"] + [f"probability_{label}" for label in model.classes]
    clash = [c for c in columns if c in header]
    if clash:
        raise BadInputError(
            f"The input already has columns named {', '.join(map(repr, clash))}, which milo predict would add. "
            "Rename them (is this a file milo predict wrote?).")
    return columns


# What pandas reads as a missing value by default: an empty cell, or one of these markers.
MISSING_MARKERS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                             "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})


def numeric_features(chunk, features: list[str], data: Path, *, first_row: int):
    """The chunk's feature columns as numbers (a float DataFrame), from the text read.

    Refuses non-numeric, missing and infinite values, naming the column and the first data row.
    """
    import pandas as pd

    columns = {}
    for column in features:
        text = chunk[column].str.strip()
        missing = text.isin(MISSING_MARKERS).to_numpy()
        numbers = pd.to_numeric(text.where(~missing), errors="coerce").to_numpy(dtype=np.float64)
        not_numbers = np.flatnonzero(np.isnan(numbers) & ~missing)
        if len(not_numbers):
            raise BadInputError(
                f"Column {column!r} of {data} holds a value that is not a number: "
                f"{chunk[column].iloc[not_numbers[0]]!r} in data row {first_row + int(not_numbers[0])}. The "
                "model reads numbers only: fix or remove that row (and any like it).")
        if missing.any():
            raise BadInputError(
                f"Column {column!r} of {data} has a missing value (an empty cell, or a marker such as NA or n/a) "
                f"in data row {first_row + int(np.flatnonzero(missing)[0])}. The model cannot predict a row "
                "with a missing feature: fill it in or remove the row.")
        infinite = np.flatnonzero(np.isinf(numbers))
        if len(infinite):
            raise BadInputError(
                f"Column {column!r} of {data} holds an infinite value in data row {first_row + int(infinite[0])}. "
                "Replace it with a finite number or remove the row.")
        columns[column] = numbers
    return pd.DataFrame(columns, index=chunk.index)


def _chunks(data: Path, header: list[str], chunk_rows: int):
    import pandas as pd

    try:
        # As text: the output repeats each input value exactly as written, whatever a chunk's types.
        reader = pd.read_csv(data, chunksize=chunk_rows, encoding="utf-8-sig", dtype=str,
                             keep_default_na=False)
        for chunk in reader:
            chunk.columns = header  # the names as written (pandas would rename repeats)
            yield chunk
    except pd.errors.EmptyDataError:
        raise BadInputError(f"{data} is empty: it needs a header row and data rows.") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise BadInputError(
            f"{data} cannot be parsed as CSV ({str(exc).strip()}). Check that every line has as many "
            "comma-separated fields as the header.") from None


def _refuse_existing(output: Path) -> None:
    if output.is_dir():
        raise BadInputError(f"{output} is a folder. Give -o the path of the CSV file to write.")
    if output.exists():
        raise BadInputError(
            f"{output} already exists, so it was not overwritten. Choose another path with -o, or remove it first.")
    if not output.parent.is_dir():
        raise BadInputError(f"The folder {output.parent} does not exist. Create it, or choose another path with -o.")
