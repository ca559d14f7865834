"""`milo estimate` answers in the search's own terms, and "does not fit" is an answer, not a failure.

What must survive: a run that would not fit exits 6 (not 1, "failed"), the heaviest
pipelines are named fully (scaler__selector__algorithm__searcher, as model keys are),
and the advice names only algorithms that are in the search.
"""

from __future__ import annotations

import json
import re

from engine_helpers import copy_sample
from milo_tui import cli
from milo_tui.errors import EXIT_DOES_NOT_FIT


def test_estimate_that_does_not_fit(capsys, tmp_path):
    project = copy_sample("breast_cancer", tmp_path, search={"algorithms": ["lr", "nb"], "scalers": ["none", "std"]},
                          memory={"memory_budget": "300MB"})
    assert cli.main(["estimate", str(project)]) == EXIT_DOES_NOT_FIT
    text = capsys.readouterr().out
    assert "Fits this limit: NO" in text
    heaviest = re.search(r"Heaviest pipelines: (.*)", text).group(1)
    names = re.findall(r"(\S+) [\d.]+ (?:[KMGT]i?)?B", heaviest)
    assert names and all(len(name.split("__")) == 4 for name in names), heaviest
    assert len(set(names)) == len(names), f"two pipelines share a name: {heaviest}"
    advice = re.search(r"Recommendation: (.*)", text).group(1)
    for absent in ("svm", "knn", "rf", "mlp", "gb"):
        assert not re.search(rf"\b{absent}\b", advice), f"advice names {absent}, which is not in the search: {advice}"

    assert cli.main(["estimate", str(project), "--json"]) == EXIT_DOES_NOT_FIT
    estimate = json.loads(capsys.readouterr().out)
    assert estimate["fits"] is False and estimate["models"] > 0


def test_estimate_that_fits_exits_0(capsys, tmp_path):
    project = copy_sample("breast_cancer", tmp_path, memory={"memory_budget": "64GB"})
    assert cli.main(["estimate", str(project), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fits"] is True


FULL_SPACE = {"algorithms": ["gb", "knn", "lr", "mlp", "nb", "rf", "svm"], "scalers": ["none", "minmax", "std"],
              "selectors": ["none", "pca-80", "pca-90", "rf-25", "rf-50", "rf-75", "select-25", "select-50",
                            "select-75"], "grids": "milo-ml", "searchers": ["grid", "random", "random2"],
              "scorers": ["accuracy", "roc_auc", "f1_macro"], "cv_folds": 10}


def test_estimate_of_milo_mls_full_space_reports_candidates_and_fits_per_pipeline(capsys, tmp_path):
    """567 pipelines, each with the plain search's CV fits and the shared search's (its own planner's)."""
    project = copy_sample("breast_cancer", tmp_path, search=FULL_SPACE, memory={"memory_budget": "64GB"})
    assert cli.main(["estimate", str(project), "--json"]) == 0
    search = json.loads(capsys.readouterr().out)["search"]
    assert len(search["pipelines"]) == 567
    forest = search["pipelines"]["std__rf-50__rf__grid"]
    assert (forest["candidates"], forest["cv_fits"], forest["shared_fits"]) == (45, 450, 30)
    # learning_rate is adam's no-op, and tol only picks the epoch adam stops at: 72 candidates, 12 runs per fold
    assert search["pipelines"]["none__none__mlp__grid"]["shared_fits"] == 120
    assert search["shared_fits"] < search["cv_fits"]
    assert cli.main(["estimate", str(project)]) == 0
    assert re.search(r"Search: milo-ml grids, \d+ parameter sets, \d+ CV fits in a plain search, \d+ with shared work",
                     capsys.readouterr().out)
