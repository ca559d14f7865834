"""What people do with a trained project, end to end: predict, compare, summary, leaderboard, model card.

What must survive: predictions equal the model's own on the test CSV (any column order, any chunk size),
probability columns are named by label, nothing is written for refused input, and every refusal is one
paragraph with exit code 2 naming the column (and row) at fault; a comparison scores both models on the
same rows and reproduces their recorded accuracy; a bundle's card matches its model file and its usage
lines work in plain scikit-learn.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
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


# -- compare --------------------------------------------------------------------------------------------


def _main_keys(project):
    rows = sort_best_first([r for r in model_rows(read_report(project / "report.csv")) if r["phase"] == "main"])
    return [r["key"] for r in rows], {r["key"]: r for r in rows}


def test_compare_scores_both_models_on_the_same_rows_with_paired_tests(project):
    keys, rows = _main_keys(project)
    done = _milo("compare", project, keys[0], keys[1], "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["rows"] == len(pd.read_csv(project / "test.csv"))
    accuracy = result["accuracy_test"]
    assert accuracy["a"] == pytest.approx(rows[keys[0]]["accuracy"], abs=1e-6)
    assert accuracy["b"] == pytest.approx(rows[keys[1]]["accuracy"], abs=1e-6)
    assert 0 <= accuracy["p_value"] <= 1 and "DeLong" in result["auc_test"]["name"]
    assert result["auc_test"]["a"] == pytest.approx(rows[keys[0]]["roc_auc"], abs=1e-6)
    table = _milo("compare", project, keys[0], keys[1])
    assert table.returncode == 0 and "McNemar (accuracy)" in table.stdout and "p = " in table.stdout
    assert "accuracy_ci" not in table.stdout and "[" in table.stdout  # CIs shown in brackets


def test_compare_refuses_models_answering_different_questions(project):
    keys, _ = _main_keys(project)
    ovr = next(r["key"] for r in model_rows(read_report(project / "report.csv")) if r["phase"] == "ovr")
    done = _milo("compare", project, keys[0], ovr)
    assert done.returncode == 2 and "different questions" in done.stderr
    same = _milo("compare", project, keys[0], keys[0])
    assert same.returncode == 2 and "two different models" in same.stderr


# -- summary, leaderboard -------------------------------------------------------------------------------


def test_summary_names_the_best_model_overall_and_per_algorithm(project):
    keys, _ = _main_keys(project)
    done = _milo("summary", project, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["best"]["key"] == keys[0] and summary["status"] == "completed"
    assert {b["algorithm"] for b in summary["best_per_algorithm"]} == {"lr", "knn"}
    assert summary["wall_seconds"] > 0 and summary["peak_memory_bytes"] > 0
    text = _milo("summary", project).stdout
    assert f"Best model (avg_sn_sp, then sensitivity, then f1): {keys[0]}" in text and "peak memory" in text


def test_leaderboard_fits_80_columns_and_offers_formats_and_ci_columns(project):
    table = _milo("models", project)
    assert table.returncode == 0 and max(len(line) for line in table.stdout.splitlines()) <= 80
    assert table.stdout.splitlines()[0].split()[:2] == ["key", "avg_sn_sp"]
    as_csv = _milo("models", project, "--format", "csv", "--columns", "key,accuracy,accuracy_ci", "--limit", "2")
    rows = list(csv.reader(as_csv.stdout.splitlines()))
    assert rows[0] == ["key", "accuracy", "accuracy_ci"] and len(rows) == 3
    low, high = (float(x) for x in rows[1][2].split("-"))
    assert low <= float(rows[1][1]) <= high
    markdown = _milo("models", project, "--format", "markdown", "--columns", "key,roc_auc_ci")
    assert markdown.stdout.startswith("| key | roc_auc_ci |\n|---|---:|")
    bad = _milo("models", project, "--columns", "key,nonsense")
    assert bad.returncode == 2 and "'nonsense'" in bad.stderr


# -- model card and bundle ------------------------------------------------------------------------------


def test_bundle_has_a_card_matching_its_model_and_usage_lines_that_work_without_milo(project, tmp_path):
    keys, rows = _main_keys(project)
    done = _milo("extract", project, keys[0], "-o", tmp_path / "bundle", "--bundle")
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "bundle"
    card = json.loads((folder / "model_card.json").read_text())
    model_bytes = (folder / "model.joblib").read_bytes()
    assert card["sha256"] == hashlib.sha256(model_bytes).hexdigest() and b"milo_tui" not in model_bytes
    assert card["training_data"]["features"] == [c for c in pd.read_csv(project / "train.csv").columns if c != "target"]
    assert card["training_data"]["label_mapping"] == {"cultivar_a": 0, "cultivar_b": 1, "cultivar_c": 2}
    assert card["generalization"]["metrics"]["accuracy"] == pytest.approx(rows[keys[0]]["accuracy"])
    low, high = card["generalization"]["ci_95"]["accuracy"]
    assert low <= card["generalization"]["metrics"]["accuracy"] <= high
    assert card["versions"]["trained_with"]["scikit-learn"] and card["pipeline"][-1]["name"] == "clf"
    markdown = (folder / "MODEL_CARD.md").read_text()
    assert keys[0] in markdown and card["sha256"] in markdown and "95 % CI" in markdown
    # The usage note's three lines, run as they are, in a fresh interpreter that cannot import milo.
    usage = (folder / "USAGE.txt").read_text().splitlines()
    start = usage.index("import joblib, pandas as pd")
    test = pd.read_csv(project / "test.csv")
    test[test.columns[::-1]].to_csv(folder / "new.csv", index=False)
    script = "import sys, warnings\nsys.modules['milo_tui'] = None\nwarnings.simplefilter('error')\n" + \
        "\n".join(usage[start:start + 3])
    run = subprocess.run([sys.executable, "-c", script], cwd=folder, capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert run.returncode == 0, run.stderr
    assert "cultivar_" in run.stdout


def test_a_different_scikit_learn_version_is_named_with_both_versions(project):
    import dataclasses

    import sklearn

    from milo_tui.results.model import ProjectData, describe_model

    data = ProjectData.read(project)
    older = dataclasses.replace(data, trained_versions={**data.trained_versions, "scikit-learn": "1.2.0"})
    key = _main_keys(project)[0][0]
    opened = describe_model(key, ModelStore(project).open_model(key), older)
    assert any("1.2.0" in note and sklearn.__version__ in note for note in opened.notes)
    assert not describe_model(key, ModelStore(project).open_model(key), data).notes
