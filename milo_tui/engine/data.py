"""Load, validate and split the project's data, and share it with workers as memory-mapped .npy files."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from milo_tui.engine.labels import MODEL_FORMAT, label_kind, python_labels, rest_marker
from milo_tui.errors import BadInputError

ARRAYS = ("X_fit", "y_fit", "X_internal", "y_internal", "X_test", "y_test")


@dataclass
class DataSummary:
    train_rows: int
    test_rows: int
    features: int
    feature_names: list[str]
    class_labels: list[str]
    class_counts: dict[str, int]
    test_class_counts: dict[str, int]
    dropped_rows: dict[str, int]
    fit_rows: int
    internal_rows: int
    seed: int
    fingerprint: str  # of both CSVs' bytes: a resume refuses data that changed under it
    label_mapping: dict[str, int] = field(default_factory=dict)
    # The labels with their type (code i = class_values[i]), what saved models predict; see engine/labels.py.
    class_values: list = field(default_factory=list)
    label_type: str = "str"
    rest_label: object = None  # what one-vs-rest models predict for "any other class"
    model_format: int = MODEL_FORMAT

    @property
    def n_classes(self) -> int:
        return len(self.class_labels)

    @property
    def class_type(self) -> str:
        return "binary" if self.n_classes == 2 else "multiclass"

    def as_dict(self) -> dict:
        return asdict(self)


def _read_csv(path: Path, role: str):
    import pandas as pd

    if not path.is_file():
        raise BadInputError(
            f"The {role} CSV {path} does not exist. Check data.{role} in milo.toml "
            "(paths are relative to the project folder)."
        )
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise BadInputError(f"The {role} CSV {path} is empty. It needs a header row and at least some data rows.") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise BadInputError(
            f"The {role} CSV {path} cannot be parsed ({str(exc).strip()}). Check that it is a comma-separated "
            "file with one header row and the same number of fields on every line."
        ) from None
    except OSError as exc:
        raise BadInputError(f"The {role} CSV {path} cannot be read ({exc}). Check its permissions.") from None
    if frame.empty:
        raise BadInputError(f"The {role} CSV {path} has a header but no data rows.")
    _refuse_duplicate_columns(_raw_header(path), list(frame.columns), role, path)
    return frame


def _raw_header(path: Path) -> list[str] | None:
    """The header row as written in the file, before pandas renames a repeated name to `name.1`."""
    import csv

    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            return next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None  # pandas read the file; fall back to its column names


def _refuse_duplicate_columns(raw: list[str] | None, read: list, role: str, path: Path) -> None:
    """Refuse a header naming a column twice, also when the names differ only by surrounding spaces.

    pandas silently renames the second `target` to `target.1`, which would then be trained on as a
    feature: a copy of the label that makes every metric 1.000.
    """
    names = raw if raw is not None and len(raw) == len(read) else [str(c) for c in read]
    seen: dict[str, list[str]] = {}
    for name in names:
        seen.setdefault(name.strip(), []).append(name)
    repeated = {key: spellings for key, spellings in seen.items() if len(spellings) > 1}
    if not repeated:
        return
    described = "; ".join(
        f"{key!r} {len(spellings)} times" + (f" (as {', '.join(map(repr, spellings))})" if len(set(spellings)) > 1 else "")
        for key, spellings in list(repeated.items())[:10])
    renamed = [str(c) for c in read if str(c) not in names]
    raise BadInputError(
        f"The {role} CSV {path} names the same column more than once: {described}"
        + (f" (a CSV reader renames the copies to {', '.join(map(repr, renamed[:10]))})" if renamed else "")
        + ". A repeated column would be trained on as a separate feature, and a repeated target column "
        "leaks the answer into the features. Give every column a distinct name, or remove the copies."
    )


def _refuse_labels_differing_by_spaces(labels: list, target: str, path: Path) -> None:
    """" benign" and "benign" are almost surely one class written two ways: refuse rather than guess."""
    if label_kind(labels) != "str":
        return
    groups: dict[str, list[str]] = {}
    for label in labels:
        groups.setdefault(label.strip(), []).append(label)
    clashes = [spellings for spellings in groups.values() if len(spellings) > 1]
    if clashes:
        described = "; ".join(" and ".join(repr(s) for s in spellings) for spellings in clashes[:10])
        raise BadInputError(
            f"The target column {target!r} of {path} has labels that differ only by spaces around them: "
            f"{described}. They would be trained as different classes. Write each class the same way "
            "(remove the surrounding spaces) in both CSVs."
        )


def _drop_missing(frame, role: str, path: Path):
    clean = frame.dropna(axis=0, how="any")
    return clean, len(frame) - len(clean)


def load_data(train_path: Path, test_path: Path, target: str, *, cv_folds: int,
              test_size: float, seed: int) -> tuple[dict[str, np.ndarray], DataSummary]:
    """Read and check both CSVs, encode labels, split train 80/20 (stratified, seeded).

    Raises BadInputError with one paragraph naming what is wrong and what to do.
    """
    import pandas as pd
    from sklearn.model_selection import train_test_split

    train = _read_csv(train_path, "train")
    test = _read_csv(test_path, "test")
    for frame, role, path in ((train, "train", train_path), (test, "test", test_path)):
        if target not in frame.columns:
            raise BadInputError(
                f"The {role} CSV {path} has no target column {target!r}. Its columns are: "
                f"{', '.join(map(str, frame.columns[:20]))}{' ...' if len(frame.columns) > 20 else ''}. "
                "Set data.target in milo.toml to the name of the class column."
            )
    features = [c for c in train.columns if c != target]
    test_features = [c for c in test.columns if c != target]
    if set(features) != set(test_features):
        only_train = sorted(set(features) - set(test_features), key=str)
        only_test = sorted(set(test_features) - set(features), key=str)
        raise BadInputError(
            "The train and test CSVs do not have the same feature columns"
            + (f"; only in train: {', '.join(map(str, only_train))}" if only_train else "")
            + (f"; only in test: {', '.join(map(str, only_test))}" if only_test else "")
            + ". Both files need the same columns (order does not matter)."
        )
    if not features:
        raise BadInputError(f"The train CSV {train_path} has no feature columns besides the target {target!r}.")
    non_numeric = [c for c in features if not (pd.api.types.is_numeric_dtype(train[c]) and pd.api.types.is_numeric_dtype(test[c]))]
    if non_numeric:
        raise BadInputError(
            f"These feature columns are not numeric: {', '.join(map(str, non_numeric[:20]))}"
            f"{' ...' if len(non_numeric) > 20 else ''}. milo trains on numeric features only: encode them "
            "as numbers (e.g. one-hot columns) or remove them from both CSVs."
        )
    infinite = [c for c in features if np.isinf(train[c].to_numpy(dtype=np.float64)).any()
                or np.isinf(test[c].to_numpy(dtype=np.float64)).any()]
    if infinite:
        raise BadInputError(
            f"These feature columns hold infinite values (inf, or numbers too large for a float): "
            f"{', '.join(map(str, infinite[:20]))}{' ...' if len(infinite) > 20 else ''}. "
            "No classifier can use them: replace them with finite numbers or leave the cells empty "
            "(rows with empty cells are dropped)."
        )
    train, dropped_train = _drop_missing(train, "train", train_path)
    test, dropped_test = _drop_missing(test, "test", test_path)

    labels = sorted(python_labels(train[target].unique().tolist()))
    _refuse_labels_differing_by_spaces(labels, target, train_path)
    if len(labels) < 2:
        only = labels[0] if labels else "nothing"
        raise BadInputError(
            f"The target column {target!r} of the train CSV has a single class ({only!r}) "
            f"{'after dropping ' + str(dropped_train) + ' rows with missing values' if dropped_train else ''}. "
            "A classifier needs at least two classes: check the target column and the file."
        )
    unknown = sorted(set(python_labels(test[target].unique().tolist())) - set(labels), key=str)
    if unknown:
        near = [u for u in unknown if isinstance(u, str) and u.strip() in {str(l).strip() for l in labels}]
        raise BadInputError(
            f"The test CSV has target values that never occur in the train CSV: {', '.join(map(repr, unknown[:10]))}. "
            + (f"{', '.join(map(repr, near[:10]))} differ from a train label only by surrounding spaces: "
               "write each class the same way in both CSVs. " if near else "")
            + "Every test class must be present in the training data."
        )
    mapping = {label: i for i, label in enumerate(labels)}
    y_all = train[target].map(mapping).to_numpy(dtype=np.int64)
    X_all = train[features].to_numpy(dtype=np.float64)
    counts = np.bincount(y_all, minlength=len(labels))
    # Each class must survive the 80/20 split with at least cv_folds rows in the fitting part.
    need = int(np.ceil(cv_folds / (1 - test_size))) + 1
    small = [f"{labels[i]!r} ({int(n)} rows)" for i, n in enumerate(counts) if n < need]
    if small:
        raise BadInputError(
            f"Too few rows for {cv_folds}-fold cross-validation in class {', '.join(small)}"
            f"{' after dropping ' + str(dropped_train) + ' rows with missing values' if dropped_train else ''}. "
            f"Each class needs at least {need} rows in the train CSV. Add data, merge rare classes, "
            "or lower search.cv_folds in milo.toml."
        )
    if len(test) == 0:
        raise BadInputError(
            f"No rows of the test CSV are left after dropping {dropped_test} rows with missing values. "
            "Fill or remove the missing values."
        )
    X_fit, X_int, y_fit, y_int = train_test_split(
        X_all, y_all, test_size=test_size, stratify=y_all, random_state=seed)
    X_test = test[features].to_numpy(dtype=np.float64)
    y_test = test[target].map(mapping).to_numpy(dtype=np.int64)
    digest = hashlib.sha256()
    for path in (train_path, test_path):
        digest.update(path.read_bytes())
    summary = DataSummary(
        train_rows=int(len(train)), test_rows=int(len(test)), features=len(features),
        feature_names=[str(f) for f in features], class_labels=[str(l) for l in labels],
        class_counts={str(l): int(n) for l, n in zip(labels, counts)},
        test_class_counts={str(l): int(n) for l, n in zip(labels, np.bincount(y_test, minlength=len(labels)))},
        dropped_rows={"train": int(dropped_train), "test": int(dropped_test)},
        fit_rows=int(len(y_fit)), internal_rows=int(len(y_int)), seed=seed,
        fingerprint=digest.hexdigest(), label_mapping={str(l): i for l, i in mapping.items()},
        class_values=list(labels), label_type=label_kind(labels), rest_label=rest_marker(labels),
    )
    arrays = {"X_fit": X_fit, "y_fit": y_fit, "X_internal": X_int, "y_internal": y_int,
              "X_test": X_test, "y_test": y_test}
    return arrays, summary


def write_arrays(arrays: dict[str, np.ndarray], directory: Path) -> dict[str, Path]:
    """Write each array once; workers memory-map them read-only instead of receiving copies."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in ARRAYS:
        path = directory / f"{name}.npy"
        tmp = directory / f".{name}.npy.tmp"
        with open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(arrays[name]))
        tmp.replace(path)
        paths[name] = path
    return paths


def map_arrays(paths: dict[str, str | Path]) -> dict[str, np.ndarray]:
    return {name: np.load(path, mmap_mode="r") for name, path in paths.items()}


def prepare_data(train_path: Path, test_path: Path, target: str, *, cv_folds: int, test_size: float,
                 seed: int, directory: Path) -> tuple[DataSummary, dict[str, str]]:
    """Load, check, split and write the arrays; meant to run in a worker process.

    pandas and scikit-learn then never load into the long-lived engine process,
    which keeps its footprint (and so the whole run's) about 100 MB smaller.
    Nothing is written when the data is refused.
    """
    arrays, summary = load_data(train_path, test_path, target, cv_folds=cv_folds,
                                test_size=test_size, seed=seed)
    paths = write_arrays(arrays, directory)
    return summary, {name: str(path) for name, path in paths.items()}
