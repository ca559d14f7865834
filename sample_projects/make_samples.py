"""Regenerate the sample projects' CSVs from scikit-learn's bundled data sets (no download).

    python sample_projects/make_samples.py
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent


def write(bunch, target_names, folder: Path, test_size: float = 0.3) -> None:
    frame = pd.DataFrame(bunch.data, columns=[c.replace(" ", "_") for c in bunch.feature_names])
    frame["target"] = [target_names[i] for i in bunch.target]
    train, test = train_test_split(frame, test_size=test_size, stratify=frame["target"], random_state=7)
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False, float_format="%.6g")
    test.to_csv(folder / "test.csv", index=False, float_format="%.6g")


def main() -> None:
    cancer = load_breast_cancer()
    write(cancer, ["malignant", "benign"], HERE / "breast_cancer")
    wine = load_wine()
    write(wine, ["cultivar_a", "cultivar_b", "cultivar_c"], HERE / "wine")


if __name__ == "__main__":
    main()
