"""`milo predict` end to end on a trained sample: the user's labels out, bad input refused by name.

What must survive: predictions equal the model's own on the test CSV (any column order, any chunk size),
probability columns are named by label and sum to 1, nothing is written for refused input, and every
refusal is one paragraph with exit code 2 naming the column (and row) at fault.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from milo_tui.engine.report import model_rows, read_report, sort_best_first
from milo_tui.results.predict import predict_csv
from milo_tui.storage.store import ModelStore

from engine_helpers import copy_sample, run_engine

QUICK = {"algorithms": ["lr", "knn"], "scalers": ["std"], "selectors": ["none"], "searchers": ["grid"],
         "scorers": ["accuracy"], "cv_folds": 3, "top_k": 1}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = copy_sample("wine", tmp_path_factory.mktemp("predict"), search=QUICK)
    assert run_engine(project).exit_code == 0
    return project


def _milo(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "milo_tui", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_predict_writes_rows_labels_and_one_probability_column_per_label(project, tmp_path):
    test = pd.read_csv(project / "test.csv")
    shuffled = test[list(np.random.default_rng(1).permutation(test.columns))]
    shuffled.to_csv(tmp_path / "new.csv", index=False)
    done = _milo("predict", project, tmp_path / "new.csv", "-o", tmp_path / "out.csv")
    assert done.returncode == 0, done.stderr
    out = pd.read_csv(tmp_path / "out.csv")
    best = sort_best_first([r for r in model_rows(read_report(project / "report.csv")) if r["phase"] == "main"])[0]
    assert best["key"] in done.stdout
    assert list(out.columns) == list(shuffled.columns) + [
        "predicted_target", "probability_cultivar_a", "probability_cultivar_b", "probability_cultivar_c"]
    model = ModelStore(project).open_model(best["key"])
    features = test.drop(columns="target")
    assert (out["predicted_target"] == model.predict(features)).all()
    assert np.allclose(out.filter(like="probability_").to_numpy(), model.predict_proba(features), atol=1e-9)
    assert np.mean(out["predicted_target"] == out["target"]) == pytest.approx(best["accuracy"], abs=1e-6)


def test_chunk_size_does_not_change_the_answers_and_ovr_models_name_the_rest(project, tmp_path):
    ovr_key = next(r["key"] for r in model_rows(read_report(project / "report.csv")) if r["phase"] == "ovr")
    one = predict_csv(project, project / "test.csv", tmp_path / "one.csv", key=ovr_key, chunk_rows=7)
    whole = predict_csv(project, project / "test.csv", tmp_path / "whole.csv", key=ovr_key, chunk_rows=10_000)
    assert one.rows == whole.rows == len(pd.read_csv(project / "test.csv"))
    out, out_whole = pd.read_csv(tmp_path / "one.csv"), pd.read_csv(tmp_path / "whole.csv")
    assert (out.drop(columns=out.filter(like="probability_").columns)
            == out_whole.drop(columns=out.filter(like="probability_").columns)).all().all()
    assert np.allclose(out.filter(like="probability_"), out_whole.filter(like="probability_"), atol=1e-12)
    assert "probability_rest" in out.columns and set(out["predicted_target"]) <= {"rest", "cultivar_a"}


@pytest.mark.parametrize("case, edit, phrases", [
    ("missing column", lambda f: f.drop(columns="alcohol"), ["missing", "'alcohol'"]),
    ("extra column", lambda f: f.assign(patient_id=1), ["not trained on", "'patient_id'"]),
    ("non-numeric value", lambda f: f.astype({"hue": object}).assign(
        hue=lambda g: g["hue"].where(g.index != 4, "pale")), ["'hue'", "'pale'", "data row 5"]),
    ("missing value", lambda f: f.assign(proline=lambda g: g["proline"].where(g.index != 2)),
     ["'proline'", "missing value", "data row 3"]),
])
def test_bad_input_is_one_paragraph_exit_2_and_nothing_written(project, tmp_path, case, edit, phrases):
    edit(pd.read_csv(project / "test.csv")).to_csv(tmp_path / "bad.csv", index=False)
    done = _milo("predict", project, tmp_path / "bad.csv", "-o", tmp_path / "out.csv")
    assert done.returncode == 2, (case, done.stderr)
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0
    for phrase in phrases:
        assert phrase in done.stderr, (case, done.stderr)
    assert not (tmp_path / "out.csv").exists() and not list(tmp_path.glob(".out.csv*"))


def test_empty_file_unknown_model_and_existing_output_are_refused(project, tmp_path):
    (tmp_path / "empty.csv").write_text("")
    done = _milo("predict", project, tmp_path / "empty.csv")
    assert done.returncode == 2 and "is empty" in done.stderr
    (tmp_path / "header.csv").write_text(pd.read_csv(project / "test.csv").head(0).to_csv(index=False))
    done = _milo("predict", project, tmp_path / "header.csv", "-o", tmp_path / "h.csv")
    assert done.returncode == 2 and "no data rows" in done.stderr and not (tmp_path / "h.csv").exists()
    done = _milo("predict", project, project / "test.csv", "--model", "std__none__lr__grid__nope__0")
    assert done.returncode == 2 and "std__none__lr__grid__nope__0" in done.stderr
    (tmp_path / "exists.csv").write_text("keep me")
    done = _milo("predict", project, project / "test.csv", "-o", tmp_path / "exists.csv")
    assert done.returncode == 2 and "already exists" in done.stderr
    assert (tmp_path / "exists.csv").read_text() == "keep me"


def test_json_output_says_what_was_done(project, tmp_path):
    done = _milo("predict", project, project / "test.csv", "-o", tmp_path / "p.csv", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["rows"] == sum(report["predicted_counts"].values()) == len(pd.read_csv(project / "test.csv"))
