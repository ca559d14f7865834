"""Footprint estimates, learning from observed peaks, and the pre-flight of `milo estimate`."""

import pytest

from milo_tui.config import ALGORITHMS, format_size, validate
from milo_tui.memory.estimate import (DEFAULT_BASELINE, SVM_CACHE, FootprintEstimator, guide_tier, preflight)
from milo_tui.memory.limits import resolve_limit
from milo_tui.project import ProjectPaths

MB = 1_000_000
GB = 1_000_000_000


def est(n_rows=1000, n_features=30, n_classes=2, **kw):
    kw.setdefault("cv_folds", 10)
    kw.setdefault("n_jobs", 1)
    kw.setdefault("baseline_bytes", 100 * MB)
    return FootprintEstimator(n_rows, n_features, n_classes, **kw)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_costs_more_than_the_baseline_and_grows_with_rows(algorithm):
    small, large = est(n_rows=1000), est(n_rows=50_000)
    assert small.estimate(algorithm) > 100 * MB
    assert large.estimate(algorithm) > small.estimate(algorithm)


def test_heavy_algorithms_outweigh_light_ones():
    e = est(n_rows=20_000, n_features=50)
    assert e.estimate("rf") > e.estimate("lr") > e.estimate("nb")
    assert e.estimate("svm") > e.estimate("nb") and e.estimate("knn") > e.estimate("nb")


def test_svm_kernel_cache_is_quadratic_then_bounded():
    def svm_variable(n):
        return est(n_rows=n, n_features=1).variable_bytes("svm") - est(n_rows=n, n_features=1).variable_bytes("nb")

    assert svm_variable(4000) > 3.5 * svm_variable(2000)  # n^2 while the cache is not full
    huge = svm_variable(200_000)
    assert huge < 1.25 * (SVM_CACHE + 200_000 * 16 * 2) + 50 * MB  # capped by cache_size, not n^2 (320 GB)


def test_selectors_and_parallel_jobs_add_memory():
    e = est(n_rows=20_000, n_features=100)
    assert e.estimate("lr", "pca-80") > e.estimate("lr", "select-50") > e.estimate("lr", "none")
    assert e.estimate("lr", "rf-50") > e.estimate("lr", "none")
    assert est(n_rows=20_000, n_features=100, n_jobs=4).estimate("lr") > e.estimate("lr") + 3 * 100 * MB


def test_unknown_names_are_refused():
    with pytest.raises(ValueError):
        est().estimate("xgboost")
    with pytest.raises(ValueError):
        est().estimate("lr", "lasso")


def test_observe_corrects_future_estimates_of_that_algorithm_only():
    e = est(n_rows=20_000)
    before_rf, before_lr = e.estimate("rf"), e.estimate("lr")
    variable = before_rf - e.baseline_bytes
    e.observe("rf", e.baseline_bytes + 2 * variable)  # rf really used twice the predicted extra
    assert e.estimate("rf") == pytest.approx(e.baseline_bytes + 2 * variable, rel=1e-6)
    assert e.estimate("lr") == before_lr
    for _ in range(5):  # smaller peaks pull the estimate down, but slowly
        e.estimate("rf")
        e.observe("rf", e.baseline_bytes + variable // 2)
    assert before_rf * 0.5 < e.estimate("rf") < before_rf * 2


def test_observe_rises_faster_than_it_falls():
    e = est(n_rows=20_000)
    variable = e.raw_estimate("gb") - e.baseline_bytes
    e.observe("gb", e.baseline_bytes + variable)          # correction 1.0
    e.observe("gb", e.baseline_bytes + 3 * variable, e.raw_estimate("gb"))
    up = e.correction("gb") - 1.0
    e2 = est(n_rows=20_000)
    e2.observe("gb", e2.baseline_bytes + variable)
    e2.observe("gb", e2.baseline_bytes + 0 * variable, e2.raw_estimate("gb"))
    down = 1.0 - e2.correction("gb")
    assert up / 2 > down  # relative to the size of the surprise


def test_remaining_peak_sums_the_heaviest_concurrent_models():
    e = est(n_rows=20_000)
    pending = ["lr", "rf", "nb", ("lr", "pca-80"), "rf"]
    sizes = sorted((e.estimate("lr"), e.estimate("rf"), e.estimate("nb"), e.estimate("lr", "pca-80"),
                    e.estimate("rf")), reverse=True)
    assert e.remaining_peak(pending, workers=1) == sizes[0]
    assert e.remaining_peak(pending, workers=2) == sizes[0] + sizes[1]
    assert e.remaining_peak([], workers=2) == 0


def config_for(tmp_path, **search):
    raw = {"data": {"train": "train.csv", "test": "test.csv", "target": "y"}, "search": search,
           "memory": {"memory_budget": "8GB"}}
    return validate(raw, ProjectPaths.of(tmp_path))


def test_guide_tiers():
    assert guide_tier(2, 400) == ("Small", (2, 4))
    assert guide_tier(5, 400) == ("Medium", (8, 16))
    assert guide_tier(3, 5000) == ("Medium", (8, 16))
    assert guide_tier(8, 100) == ("Large", (16, 32))


def test_preflight_counts_and_fits(tmp_path):
    config = config_for(tmp_path, algorithms=["lr", "rf", "knn", "gb"], scalers=["none", "std"],
                        selectors=["none", "select-50"], searchers=["grid"], scorers=["accuracy", "roc_auc"])
    limit = resolve_limit(8 * GB, physical=24 * GB, cgroup=None)
    result = preflight(config, {"n_rows": 400, "n_features": 30, "n_classes": 2}, limit)
    assert result.pipelines == 16 and result.models == 64 and result.ovr_models == 0
    assert result.memory_bytes_ovr == 0
    assert DEFAULT_BASELINE < result.memory_bytes < 1 * GB
    assert result.fits and result.disk_bytes > 0 and result.seconds > 0
    text = result.render()
    for expected in ("Pipelines: 16", "Models: 64", "Memory peak", "Disk", "Time: roughly", f"{format_size(8 * GB)} (budget",
                     "Fits this limit: yes", "Small problem", "2-4 GB"):
        assert expected in text


def test_preflight_with_ovr_and_a_tight_limit_says_it_does_not_fit(tmp_path):
    config = config_for(tmp_path, algorithms=["rf", "svm"], selectors=["none"], scalers=["std"],
                        reoptimize_ovr=True)
    limit = resolve_limit(300 * MB, physical=24 * GB, cgroup=None)
    result = preflight(config, {"n_rows": 5_000, "n_features": 40, "n_classes": 4}, limit)
    main_models = result.models - result.ovr_models
    assert result.ovr_models == 4 * main_models
    assert result.memory_bytes_ovr > 0 and not result.fits
    text = result.render()
    assert "Fits this limit: NO" in text and "OvR re-optimization peak" in text
    assert "plus 50-100% for OvR re-optimization (12-32 GB)" in text and "does not fit" in text


def test_more_workers_mean_a_higher_peak(tmp_path):
    limit = resolve_limit(None, physical=24 * GB, cgroup=None)
    summary = {"n_rows": 5000, "n_features": 20, "n_classes": 2}
    one = preflight(config_for(tmp_path), summary, limit)
    raw_two = {"data": {"train": "a", "test": "b", "target": "y"}, "run": {"workers": 2}}
    two = preflight(validate(raw_two, ProjectPaths.of(tmp_path)), summary, limit)
    assert two.memory_bytes > one.memory_bytes
    assert two.seconds < one.seconds


def test_preflight_takes_fit_rows_and_models_per_pipeline_from_the_engine(tmp_path):
    config = config_for(tmp_path, algorithms=["lr", "nb"], scalers=["std"], selectors=["none"], searchers=["grid"])
    limit = resolve_limit(8 * GB, physical=24 * GB, cgroup=None)
    summary = {"n_rows": 50_000, "n_features": 100, "n_classes": 2}
    default = preflight(config, summary, limit)
    assert default.models == 2 * 3 * 2  # pipelines x scorers x top_k
    smaller = preflight(config, summary | {"fit_rows": 10_000}, limit,
                        models_for=lambda algorithm, selector, searcher: 1 if algorithm == "nb" else 6)
    assert smaller.models == 7
    assert smaller.memory_bytes < default.memory_bytes  # fewer rows to fit on
