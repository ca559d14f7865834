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
