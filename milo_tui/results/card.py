"""The model card that travels with an exported model (`milo extract --bundle`): JSON, Markdown, usage note.

What it holds (DESIGN.md decision 7): the key, the pipeline with its parameters, the generalization metrics
with their 95 % CIs, a summary of the training data (rows, feature names, class counts, label mapping),
the library versions it was trained with and the model file's sha256. The content is built here; the files
are written through storage (storage/export.py: atomic, never over an existing file by surprise).
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

from milo_tui.results.model import ModelKind, ProjectData, open_project_model

CARD_JSON = "model_card.json"
CARD_MARKDOWN = "MODEL_CARD.md"
USAGE = "USAGE.txt"
METRICS_WITH_CI = (
    ("accuracy", "acc_95_ci_low", "acc_95_ci_high"),
    ("roc_auc", "roc_auc_95_ci_low", "roc_auc_95_ci_high"),
    ("sensitivity", "sn_95_ci_low", "sn_95_ci_high"),
    ("specificity", "sp_95_ci_low", "sp_95_ci_high"),
)
METRICS_PLAIN = ("avg_sn_sp", "f1", "mcc", "ppv", "npv", "brier_score", "training_roc_auc")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_card(project: Path, key: str, model_file: Path, *, report_row: dict | None = None, store=None) -> dict:
    """The card of `key`, whose exported file is `model_file` (its sha256 is taken from those bytes)."""
    import sklearn

    data = ProjectData.read(project)
    opened = open_project_model(project, key, store=store)
    row = report_row or {}
    summary = data.summary
    return {
        "key": key,
        "kind": opened.kind.value,
        "classes": opened.classes,
        "one_vs_rest": _ovr(opened, data) if opened.kind is ModelKind.OVR else None,
        "pipeline": _pipeline(opened.model),
        "best_params": _params(row.get("best_params")),
        "generalization": {
            "rows": summary.get("test_rows"),
            "set": "the test CSV, never used in training or model selection",
            "metrics": {name: _number(row.get(name)) for name, _, _ in METRICS_WITH_CI}
            | {name: _number(row.get(name)) for name in METRICS_PLAIN},
            "ci_95": {name: [_number(row.get(low)), _number(row.get(high))] for name, low, high in METRICS_WITH_CI},
            "ci_methods": "accuracy, sensitivity, specificity: exact Clopper-Pearson; ROC AUC: DeLong",
        },
        "training_data": {
            "target": data.target,
            "train_rows": summary.get("train_rows"), "fit_rows": summary.get("fit_rows"),
            "internal_test_rows": summary.get("internal_rows"), "test_rows": summary.get("test_rows"),
            "dropped_rows_with_missing_values": summary.get("dropped_rows"),
            "features": opened.feature_names,
            "class_counts": summary.get("class_counts"), "test_class_counts": summary.get("test_class_counts"),
            "label_mapping": {str(label): code for code, label in enumerate(data.labels.values)},
            "label_type": summary.get("label_type", "str"),
            "model_predicts": "codes (older milo; decode with label_mapping)" if opened.encoded
            else "the labels themselves",
        },
        "versions": {
            "trained_with": data.trained_versions,
            "exported_with": {"milo_tui": _milo_version(), "scikit-learn": sklearn.__version__,
                              "python": platform.python_version()},
            "note": ("Load the model under the scikit-learn version it was trained with. Under another "
                     "version scikit-learn warns (InconsistentVersionWarning, naming both versions) and its "
                     "answers are not guaranteed."),
        },
        "sha256": sha256_of(model_file),
        "file": model_file.name,
        "notes": opened.notes,
    }


def usage_note(card: dict) -> str:
    """The three lines that load the model and predict, with what they need."""
    versions = card["versions"]["trained_with"]
    return (
        f"Model {card['key']}: a scikit-learn Pipeline. It needs scikit-learn "
        f"{versions.get('scikit-learn') or '(the version it was trained with)'}, joblib and pandas; not milo.\n"
        f"Check the file first: sha256sum {card['file']} must print {card['sha256']}.\n\n"
        "import joblib, pandas as pd\n"
        f"model = joblib.load(\"{card['file']}\")\n"
        "print(model.predict(pd.read_csv(\"new.csv\")[model.feature_names_in_]))\n\n"
        "Selecting model.feature_names_in_ puts the columns in training order and refuses a missing one by "
        "name. model.predict_proba gives one column per class, in the order of model.classes_.\n"
    )


def card_markdown(card: dict) -> str:
    gen = card["generalization"]
    data = card["training_data"]

    def num(value):
        return f"{value:.3f}" if isinstance(value, (int, float)) else "-"

    lines = [f"# Model card: {card['key']}", ""]
    if card["one_vs_rest"]:
        ovr = card["one_vs_rest"]
        lines += [f"One-vs-rest model for class **{ovr['class']}**: it predicts {ovr['class']!r} or the rest "
                  f"marker {ovr['rest_marker']!r} (any other class).", ""]
    lines += [f"Predicts: {', '.join(map(repr, card['classes']))} (its `classes_`, the order of "
              "`predict_proba`'s columns).", "", "## Pipeline", ""]
    lines += [f"{i + 1}. `{step['name']}`: {step['class']} {json.dumps(step['params'], default=str)}"
              for i, step in enumerate(card["pipeline"])]
    lines += ["", f"Parameters chosen by the search: `{json.dumps(card['best_params'], default=str)}`", "",
              f"## Generalization ({gen['rows']} rows of {gen['set']})", "",
              "| metric | value | 95 % CI |", "|---|---:|---:|"]
    for name in gen["ci_95"]:
        low, high = gen["ci_95"][name]
        lines.append(f"| {name} | {num(gen['metrics'][name])} | "
                     f"{num(low) + ' - ' + num(high) if low is not None else '-'} |")
    lines += [f"| {name} | {num(gen['metrics'][name])} | |" for name in METRICS_PLAIN]
    lines += ["", f"CIs: {gen['ci_methods']}.", "", "## Training data", "",
              f"- target column `{data['target']}`; {data['train_rows']} training rows ({data['fit_rows']} "
              f"fitted, {data['internal_test_rows']} internal test), {data['test_rows']} test rows",
              f"- class counts (train): {data['class_counts']}; (test): {data['test_class_counts']}",
              f"- label mapping: {data['label_mapping']}; the model predicts {data['model_predicts']}",
              f"- {len(data['features'])} features, in training order: "
              + ", ".join(f"`{f}`" for f in data["features"]), "", "## Versions and integrity", "",
              f"- trained with: {card['versions']['trained_with']}",
              f"- exported with: {card['versions']['exported_with']}",
              f"- {card['versions']['note']}",
              f"- sha256 of `{card['file']}`: `{card['sha256']}`", ""]
    lines += [f"> {note}" for note in card["notes"]]
    lines += ["", "## Use", "", "```", usage_note(card).rstrip(), "```", ""]
    return "\n".join(lines)


def write_card(folder: Path, card: dict) -> list[Path]:
    """Write the card (JSON and Markdown) and the usage note into an exported bundle's folder."""
    from milo_tui.storage.export import write_exported

    written = []
    for name, text in ((CARD_JSON, json.dumps(card, indent=1, default=str) + "\n"),
                       (CARD_MARKDOWN, card_markdown(card)), (USAGE, usage_note(card))):
        payload = text.encode("utf-8")
        write_exported(folder / name, lambda out, payload=payload: out.write(payload), overwrite=True,
                       what=f"the {name} of model {card['key']}")
        written.append(folder / name)
    return written


def _ovr(opened, data: ProjectData) -> dict:
    positive = next(c for c in opened.classes if c != data.labels.rest)
    return {"class": positive, "rest_marker": data.labels.rest}


def _pipeline(model) -> list[dict]:
    steps = getattr(model, "steps", [("model", model)])
    return [{"name": name, "class": f"{type(step).__module__}.{type(step).__name__}",
             "params": {k: _plain(v) for k, v in step.get_params(deep=False).items()}} for name, step in steps]


def _plain(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)  # an estimator inside a step (e.g. SelectFromModel's forest)


def _params(text) -> dict:
    from milo_tui.storage.store import parse_params

    return parse_params(text)


def _number(value):
    return float(value) if isinstance(value, (int, float)) and value == value else None


def _milo_version() -> str:
    from milo_tui import __version__

    return __version__
