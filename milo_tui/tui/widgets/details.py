"""Renderers of the model details screen: pipeline, metrics with CIs, confusion matrix, ROC, per-class."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from milo_tui.tui import formatting as fmt
from milo_tui.tui.charts import roc_chart
from milo_tui.tui.extraction import ModelDetails
from milo_tui.tui.widgets.palette import lines_to_text

METRIC_ROWS = (  # label, report column, CI low column, CI high column
    ("Avg Sn/Sp", "avg_sn_sp", None, None),
    ("Accuracy", "accuracy", "acc_95_ci_low", "acc_95_ci_high"),
    ("ROC AUC", "roc_auc", "roc_auc_95_ci_low", "roc_auc_95_ci_high"),
    ("Sensitivity", "sensitivity", "sn_95_ci_low", "sn_95_ci_high"),
    ("Specificity", "specificity", "sp_95_ci_low", "sp_95_ci_high"),
    ("F1", "f1", None, None),
    ("MCC", "mcc", None, None),
    ("PPV", "ppv", None, None),
    ("NPV", "npv", None, None),
    ("Prevalence", "prevalence", None, None),
    ("Brier score", "brier_score", None, None),
    ("Train ROC AUC", "training_roc_auc", None, None),
    ("ROC delta", "roc_delta", None, None),
)


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None


def pipeline_text(details: ModelDetails) -> Text:
    text = Text()
    if details.error:
        text.append(details.error + "\n", style="bold")
    for note in details.notes:
        text.append(f"Note: {note}\n", style="bold")
    if not details.steps:
        if not details.error:
            text.append("(no pipeline steps)\n")
    for step in details.steps:
        text.append(f"{step.name}: ", style="bold")
        text.append(f"{step.class_name}\n")
        for name, value in step.params.items():
            text.append(f"    {name} = {value}\n")
    best_params = details.report.get("best_params")
    if best_params:
        text.append("best_params: ", style="bold")
        text.append(best_params + "\n")
    if details.steps:
        text.append(f"extracted in {details.seconds * 1000:.0f} ms", style="dim")
    return text


def metrics_table(details: ModelDetails) -> Table:
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    table.add_column("Metric")
    table.add_column("Value", justify="right")
    table.add_column("95% CI")
    report, metrics = details.report, details.row.metrics
    for label, column, low, high in METRIC_ROWS:
        value = _float(report.get(column)) if report else None
        if value is None:
            value = metrics.get(column)
        if value is None and not report:
            continue
        interval = fmt.ci(report.get(low), report.get(high)) if low and report else ""
        table.add_row(label, fmt.metric(value), interval)
    return table


def confusion_matrix(details: ModelDetails) -> tuple[list[str], list[list[int]]] | None:
    results = details.class_results or {}
    matrix = results.get("confusion_matrix")
    if isinstance(matrix, list) and matrix and all(isinstance(r, list) for r in matrix):
        labels = [str(x) for x in results.get("class_labels") or range(len(matrix))]
        if len(labels) != len(matrix):
            labels = [str(i) for i in range(len(matrix))]
        return labels, [[int(v) for v in r] for r in matrix]
    counts = [_float(details.report.get(k)) for k in ("tn", "fp", "fn", "tp")]
    if all(c is not None for c in counts):
        tn, fp, fn, tp = (int(c) for c in counts)  # type: ignore[arg-type]
        return ["neg", "pos"], [[tn, fp], [fn, tp]]
    return None


def confusion_table(details: ModelDetails) -> Table | Text:
    found = confusion_matrix(details)
    if found is None:
        return Text("no confusion matrix recorded")
    labels, matrix = found
    table = Table(box=None, pad_edge=False, title="rows: true, cols: predicted", title_justify="left")
    table.add_column("")
    for label in labels:
        table.add_column(label[:10], justify="right")
    for label, row in zip(labels, matrix):
        table.add_row(label[:10], *(str(v) for v in row))
    return table


def roc_curves(details: ModelDetails) -> list[tuple[str, dict]]:
    """(title, roc dict) for the model: one curve (binary/ovr) or one per class (multiclass)."""
    results = details.class_results or {}
    curves = results.get("curves") or {}
    if isinstance(curves.get("roc"), dict):
        return [("ROC", curves["roc"])]
    out = []
    for entry in results.get("per_class") or []:
        roc = ((entry or {}).get("curves") or {}).get("roc")
        if isinstance(roc, dict):
            out.append((f"ROC class {entry.get('class_label', entry.get('class_index'))} vs rest", roc))
    return out


def roc_text(title: str, roc: dict, width: int, height: int, palette: dict[str, str], auc: float | None) -> Text:
    fpr = [float(x) for x in roc.get("fpr") or []]
    tpr = [float(x) for x in roc.get("tpr") or []]
    text = Text(f"{title}" + (f"  AUC {auc:.3f}" if auc is not None else "") + "\n", style="bold")
    if not fpr or len(fpr) != len(tpr):
        text.append("no curve recorded")
        return text
    text.append_text(lines_to_text(roc_chart(fpr, tpr, width, height), palette))
    text.append("\n    false positive rate →", style=palette.get("axis", ""))
    return text


def per_class_table(details: ModelDetails) -> Table | None:
    results = details.class_results or {}
    per_class = results.get("per_class")
    if not isinstance(per_class, list) or not per_class:
        return None
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("Class", "Sens", "Spec", "AUC", "F1", "PPV", "NPV"):
        table.add_column(name, justify="left" if name == "Class" else "right")
    for entry in per_class:
        metrics = (entry or {}).get("metrics") or {}
        table.add_row(str(entry.get("class_label", entry.get("class_index", "?")))[:12],
                      *(fmt.metric(_float(metrics.get(k))) for k in ("sensitivity", "specificity", "roc_auc", "f1", "ppv", "npv")))
    return table
