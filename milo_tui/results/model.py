"""One project's model, opened in the user's terms: its feature names, its classes as the user's labels.

Models written by this milo (model format 2, engine/labels.py) already predict the user's labels and know
train.csv's feature names. Models of older projects predict codes 0..K-1 and know no feature names; they
still open: `ProjectModel.notes` says so, and `predict` decodes their answers through metadata.json's
label mapping. Used by `milo predict`, the model card and `milo compare` (and by the TUI through them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np

from milo_tui.engine.labels import ClassLabels, rest_marker
from milo_tui.errors import BadInputError
from milo_tui.project import ProjectPaths


class ModelKind(Enum):
    MAIN = "main"  # binary or multi-class: predicts every class
    OVR = "ovr"  # one class against the rest marker


@dataclass(frozen=True)
class ProjectData:
    """What metadata.json says about the data every model of the project was trained on."""

    target: str
    feature_names: list[str]
    labels: ClassLabels
    label_mapping: dict[str, int]
    model_format: int  # 1: models predict codes (older milo); 2: models predict labels
    trained_versions: dict[str, str | None]
    summary: dict

    @classmethod
    def read(cls, project: Path) -> "ProjectData":
        paths = ProjectPaths.of(project)
        try:
            meta = json.loads(paths.metadata.read_text(encoding="utf-8"))
            data = meta["data"]
            names = [str(n) for n in data["feature_names"]]
        except FileNotFoundError:
            raise BadInputError(
                f"{paths.root} has no metadata.json, so milo does not know what its models were trained on. "
                "Is it a milo project whose run has started? (`milo run PROJECT`)") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BadInputError(
                f"{paths.metadata} cannot be read ({type(exc).__name__}: {exc}). Without it milo does not know "
                "the models' features and labels; restore it, or re-run the project with `milo run --force`."
            ) from None
        mapping = {str(k): int(v) for k, v in (data.get("label_mapping") or {}).items()}
        if data.get("class_values"):
            values = list(data["class_values"])
        else:  # older milo: labels as text only, in code order
            values = [label for label, _ in sorted(mapping.items(), key=lambda item: item[1])] or \
                [str(v) for v in data.get("class_labels", [])]
        rest = data.get("rest_label")
        config = meta.get("config") or {}
        return cls(
            target=str((config.get("data") or {}).get("target", "target")),
            feature_names=names,
            labels=ClassLabels(tuple(values), rest if rest is not None else rest_marker(values)),
            label_mapping=mapping,
            model_format=int(data.get("model_format", 1)),
            trained_versions=dict(meta.get("versions") or {}),
            summary=data,
        )


@dataclass
class ProjectModel:
    """A loaded model and what it needs to be used on a table of features."""

    key: str
    model: object
    kind: ModelKind
    feature_names: list[str]
    classes: list  # the user's labels, in the order of the model's probability columns
    encoded: bool  # an older milo's model: predicts codes, decoded here through the label mapping
    notes: list[str] = field(default_factory=list)

    def predict(self, features) -> tuple[np.ndarray, np.ndarray]:
        """(labels, probabilities) for a DataFrame holding exactly `feature_names` (any order).

        Probability column j belongs to `classes[j]`. Columns are put in training order here, so a table
        whose columns come in another order gets the same answers.
        """
        ordered = features[self.feature_names]
        X = ordered.to_numpy(dtype=np.float64) if self.encoded else ordered
        proba = np.asarray(self.model.predict_proba(X))
        raw = np.asarray(self.model.predict(X))
        if not self.encoded:
            return raw, proba
        decode = np.asarray(self.classes, dtype=object)
        return decode[raw.astype(np.int64)], proba


def open_project_model(project: Path, key: str, *, store=None) -> ProjectModel:
    """Load `key` (hash-verified by the store) with its feature names and classes in the user's terms."""
    from milo_tui.storage.store import open_store

    data = ProjectData.read(project)
    store = store or open_store(Path(project))
    model = store.open_model(key)
    return describe_model(key, model, data)


def describe_model(key: str, model, data: ProjectData) -> ProjectModel:
    kind = ModelKind.OVR if "_ovr_class_" in key else ModelKind.MAIN
    notes = []
    version_note = sklearn_version_note(data.trained_versions.get("scikit-learn"))
    if version_note:
        notes.append(version_note)
    if hasattr(model, "feature_names_in_"):
        return ProjectModel(key, model, kind, [str(n) for n in model.feature_names_in_],
                            np.asarray(model.classes_).tolist(), encoded=False, notes=notes)
    classes = _decoded_classes(key, kind, model, data)
    notes.append(
        f"Model {key} was saved by an older milo: it predicts class codes {np.asarray(model.classes_).tolist()} "
        f"and knows no feature names. milo decodes its answers through metadata.json's label mapping "
        f"({', '.join(f'{code} = {label!r}' for code, label in enumerate(classes))}) and feeds it the "
        "columns in training order. Outside milo, use a model from a new run (`milo run --force`).")
    return ProjectModel(key, model, kind, list(data.feature_names), classes, encoded=True, notes=notes)


def _decoded_classes(key: str, kind: ModelKind, model, data: ProjectData) -> list:
    codes = [int(c) for c in np.asarray(model.classes_).tolist()]
    if kind is ModelKind.OVR:  # older one-vs-rest models: 1 = its class, 0 = the rest
        class_index = int(key.rsplit("_ovr_class_", 1)[1])
        return [data.labels.values[class_index] if c == 1 else data.labels.rest for c in codes]
    return [data.labels.values[c] for c in codes]


def sklearn_version_note(trained: str | None) -> str | None:
    """A warning when the installed scikit-learn is not the one the models were trained with."""
    import sklearn

    if not trained or trained == sklearn.__version__:
        return None
    return (f"These models were trained with scikit-learn {trained}, and scikit-learn {sklearn.__version__} "
            "is installed. A pickled model is only guaranteed to behave the same under the version that "
            f"saved it: install scikit-learn=={trained} to be sure of its answers.")
