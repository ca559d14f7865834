"""The runner's parts on their own, without processes: the plan, the key type, the resume
reconciliation, the project lock and the memory policer's dispatch of governor actions."""

from __future__ import annotations

import socket

import pytest

from milo_tui import config as cfg
from milo_tui import events as ev
from milo_tui.engine.executor import (KillKind, KillReason, Outcome, OutcomeKind, ProcessInfo, ProcessRole,
                                      ResourceView, TaskHandle)
from milo_tui.engine.plan import make_plan, ovr_units
from milo_tui.engine.policer import MemoryPolicer, MemoryStop, Progress
from milo_tui.engine.resume import reconcile
from milo_tui.engine.space import PipelineSpec
from milo_tui.keys import FINAL_STATUSES, ModelKey, RunStatus, best_order_key, sort_best_first
from milo_tui.memory.estimate import FootprintEstimator, pipeline_seconds
from milo_tui.memory.governor import Alert, Cleanup, PauseStarts, ResumeStarts, SetInnerJobs, StopRun
from milo_tui.memory.limits import resolve_limit
from milo_tui.project import ProjectPaths
from milo_tui.projectlock import ProjectBusyError, ProjectLock, engine_holding


def _config(tmp_path, **search):
    raw = cfg.defaults()
    raw["data"].update(train="train.csv", test="test.csv", target="y")
    raw["search"].update({"algorithms": ["lr", "knn"], "scalers": ["none", "std"], "selectors": ["none"],
                          "searchers": ["grid"], "scorers": ["accuracy", "roc_auc"], "top_k": 2, **search})
    return cfg.validate(raw, ProjectPaths.of(tmp_path))


# -- model keys --------------------------------------------------------------------------------

def test_a_model_key_round_trips_and_names_its_parts():
    key = ModelKey.parse("std__select-50__lr__grid__roc_auc__1_ovr_class_2")
    assert (key.pipeline, key.scorer, key.rank, key.ovr_class) == ("std__select-50__lr__grid", "roc_auc", 1, 2)
    assert key.format() == "std__select-50__lr__grid__roc_auc__1_ovr_class_2"
    assert key.main.format() == "std__select-50__lr__grid__roc_auc__1"
    assert key.main.for_class(0).format().endswith("_ovr_class_0")
    assert PipelineSpec("std", "select-50", "lr", "grid").model_key("roc_auc", 1) == key.main.format()


@pytest.mark.parametrize("bad", ["", "a__b", "std__none__lr__grid__auc__x", "std__none__lr__grid__auc__0_ovr_class_",
                                 "std____lr__grid__auc__0"])
def test_anything_else_is_not_a_model_key(bad):
    with pytest.raises(ValueError, match="not a model key"):
        ModelKey.parse(bad)


def test_best_order_is_avg_sn_sp_then_sensitivity_then_f1_with_missing_last():
    rows = [{"k": "a", "avg_sn_sp": 0.9, "sensitivity": 0.8, "f1": 0.1},
            {"k": "b", "avg_sn_sp": 0.9, "sensitivity": 0.9, "f1": 0.0},
            {"k": "c", "avg_sn_sp": None, "sensitivity": 1.0, "f1": 1.0},
            {"k": "d", "avg_sn_sp": float("nan"), "sensitivity": 1.0, "f1": 1.0},
            {"k": "e", "avg_sn_sp": 0.95, "sensitivity": 0.0, "f1": 0.0}]
    assert [r["k"] for r in sort_best_first(rows, lambda r: r)] == ["e", "b", "a", "c", "d"]
    assert best_order_key({"avg_sn_sp": True})[0] == float("-inf")


def test_run_statuses_are_their_text():
    assert RunStatus.COMPLETED == "completed" and f"{RunStatus.STOPPED_MEMORY}" == "stopped_memory"
    assert RunStatus("disk_full").is_final and not RunStatus.RUNNING.is_final
    assert RunStatus.ENGINE_DIED not in FINAL_STATUSES


# -- the plan ----------------------------------------------------------------------------------

def test_pipelines_that_share_fold_scores_are_a_whole_scaler_apart(tmp_path):
    """Two workers run neighbouring pipelines together, and then both compute what they could share
    (engine/foldcache.py): the scaler is the outermost loop, so same-search pipelines are far apart."""
    config = _config(tmp_path, algorithms=["gb", "lr"], scalers=["none", "std", "minmax"],
                     selectors=["none", "rf-50"], searchers=["grid", "random"])
    names = [u.spec.name for u in make_plan(config, n_classes=2, done_keys=set()).main_units]
    assert names[:3] == ["none__none__gb__grid", "none__none__gb__random", "none__rf-50__gb__grid"]
    per_scaler = len(names) // 3
    assert names.index("std__none__gb__grid") - names.index("none__none__gb__grid") == per_scaler == 8
    plan = make_plan(config, n_classes=2, done_keys=set()).search
    assert plan["pipelines"]["std__none__gb__grid"]["scores_from"] == "none__none__gb__grid"
    assert plan["pipelines"]["std__none__gb__grid"]["shared_fits"] == 0
    assert "scores_from" not in plan["pipelines"]["std__none__lr__grid"]
    pca = make_plan(_config(tmp_path, algorithms=["gb"], scalers=["none", "std"], selectors=["pca-80"]), 2, set())
    assert pca.search["scores_reused"] == 0  # PCA's columns depend on the scaler: nothing to share
    assert plan["scores_reused"] == 8  # gb x 2 selectors x 2 searchers x (std, minmax)


def test_the_plan_trains_every_pipeline_and_counts_ovr_per_class(tmp_path):
    config = _config(tmp_path, reoptimize_ovr=True)
    plan = make_plan(config, n_classes=3, done_keys=set())
    assert [u.spec.name for u in plan.main_units] == [p.name for p in plan.pipelines]
    assert plan.main_total == 4 * 4 and plan.ovr and plan.ovr_total == 16 * 3 and plan.total == 64
    assert all(len(u.keys) == 4 and u.phase == "main" for u in plan.main_units)
    assert not make_plan(config, n_classes=2, done_keys=set()).ovr
    assert not make_plan(_config(tmp_path, reoptimize_ovr=False), n_classes=3, done_keys=set()).ovr


def test_resume_skips_only_pipelines_whose_every_model_is_done(tmp_path):
    config = _config(tmp_path)
    first = make_plan(config, 2, set())
    whole = set(first.main_units[0].keys)
    half = set(first.main_units[1].keys[:2])
    plan = make_plan(config, 2, whole | half)
    assert [u.spec.name for u in plan.main_units] == [u.spec.name for u in first.main_units[1:]]
    assert plan.already_done == 6 and plan.total == first.total


def test_the_eta_weighs_a_model_by_its_pipeline_s_rough_cost(tmp_path):
    """Boosting's 1,000-stage searches ahead are not counted like naive Bayes' one candidate: the plan
    weighs each model by `milo estimate`'s seconds for its pipeline, and a resume starts from the
    work its finished models did."""
    config = _config(tmp_path, algorithms=["gb", "nb"], scalers=["none"], selectors=["none", "select-50"],
                     reoptimize_ovr=True)
    plan = make_plan(config, 3, set(), fit_rows=300, features=30)
    gb, nb = (plan.work.of(f"none__none__{a}__grid") for a in ("gb", "nb"))
    assert gb > 10 * nb > 0
    assert plan.work.of("none__none__gb__grid", "ovr") == gb / 2  # an OvR refit: half a main model
    for unit in plan.main_units:  # a pipeline's models together weigh what `milo estimate` gives it
        expected = pipeline_seconds(unit.spec.algorithm, unit.spec.selector, plan.search["pipelines"][unit.spec.name],
                                    300, 30, config.search["cv_folds"])
        assert plan.work.of(unit.spec.name) * len(unit.keys) == pytest.approx(expected)
    assert plan.work.done == 0
    done = set(plan.main_units[0].keys) | {f"{plan.main_units[0].keys[0]}_ovr_class_1", "not a model key"}
    resumed = make_plan(config, 3, done, fit_rows=300, features=30)
    unit = plan.main_units[0]
    assert resumed.work.done == pytest.approx(plan.work.of(unit.spec.name) * (len(unit.keys) + 0.5))
    # Without the data's size (a test's plan) every model weighs 1: the ETA is the rate of models.
    unsized = make_plan(config, 3, set())
    assert all(unsized.work.of(name) == 1 for name in unsized.work.models)
    assert sum(unsized.work.models.values()) == unsized.main_total


def test_ovr_units_refit_each_finished_main_model_for_one_class_skipping_done_ones(tmp_path):
    config = _config(tmp_path)
    plan = make_plan(config, 3, set())
    a, b = plan.main_units[0].keys[:2]
    units = ovr_units(plan.pipelines, {a: {"clf__C": 1.0}, b: {"clf__C": 2.0}}, 2, done_keys={f"{b}_ovr_class_2"})
    assert len(units) == 1 and units[0].class_index == 2 and units[0].phase == "ovr"
    assert units[0].ovr_params == {f"{a}_ovr_class_2": {"clf__C": 1.0}}
    assert units[0].unit_id.endswith("@class2")


# -- resume: report rows against what the archives prove ------------------------------------------

def _row(key, archive="main_models"):
    return {"key": key, "archive": archive, "status": "ok"}


def test_reconcile_requeues_the_whole_pipeline_of_a_model_the_archives_do_not_prove():
    p1 = ["none__none__lr__grid__accuracy__0", "none__none__lr__grid__accuracy__1"]
    p2 = ["std__none__lr__grid__accuracy__0"]
    ovr = "std__none__lr__grid__accuracy__0_ovr_class_1"
    rows = [_row(p1[0]), _row(p1[0], archive=""), _row(p1[1]), _row(p2[0]), _row(ovr, "ovr_models")]
    check = reconcile(rows, proven={p1[0], p2[0]})  # p1[1] and the OvR refit were lost
    assert [r["key"] for r in check.kept_rows] == [p2[0]]  # p1's rows all go (incl. its per-class row)
    assert check.requeued == sorted([p1[1], ovr]) and "trained again" in check.notes[0]
    assert reconcile(rows, proven={p1[0], p1[1], p2[0], ovr}).kept_rows == rows


# -- the project lock ---------------------------------------------------------------------------

def test_one_lock_per_project_and_the_second_is_refused_with_the_holders_pid(tmp_path):
    paths = ProjectPaths.of(tmp_path)
    assert engine_holding(paths) is None
    first = ProjectLock(paths)
    first.acquire()
    import os

    assert engine_holding(paths) == os.getpid()
    with pytest.raises(ProjectBusyError, match=f"pid {os.getpid()}") as refused:
        ProjectLock(paths).acquire(patience=0.1)
    assert refused.value.exit_code == 2
    first.release()
    assert engine_holding(paths) is None
    again = ProjectLock(paths)
    again.acquire(patience=0)
    again.release()


def test_a_planted_link_as_lock_file_is_refused(tmp_path):
    paths = ProjectPaths.of(tmp_path)
    paths.state.mkdir()
    (paths.state / "engine.lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(Exception, match="symbolic link"):
        ProjectLock(paths).acquire(patience=0)
    assert not (tmp_path / "elsewhere").exists()


# -- outcomes -----------------------------------------------------------------------------------

def test_outcome_failure_text_is_built_from_typed_fields():
    assert Outcome(OutcomeKind.ERROR, error_type="ValueError", message="bad C\nmore").failure_text == "ValueError: bad C"
    killed = Outcome(OutcomeKind.KILLED, killed=KillReason(KillKind.MEMORY, "the worker used 2 GB"))
    assert killed.failure_text == "memory: the worker used 2 GB"
    assert Outcome(OutcomeKind.CRASHED, message="the worker process was killed by SIGKILL").failure_text.startswith("the worker")


# -- the memory policer: every governor action does something -----------------------------------

class FakeExecutor:
    def __init__(self):
        self.handle = TaskHandle(task_id=1, unit=None, name="w", pid=4242, host=socket.gethostname())

    def running(self):
        return [self.handle]

    def resources(self):
        return ResourceView((ProcessInfo(4242, ProcessRole.WORKER, socket.gethostname(), self.handle),))


def _policer():
    emitted = []
    settings = cfg.defaults()["memory"]
    estimator = FootprintEstimator(100, 10, 2, cv_folds=3, n_jobs=1, baseline_bytes=1000)
    policer = MemoryPolicer(settings, resolve_limit(10**9, physical=10**10, cgroup=None), FakeExecutor(), estimator,
                            workers=2, n_jobs=4, emit=lambda t, **d: emitted.append((t, d)),
                            progress=lambda: Progress(0, 0, []))
    return policer, emitted


def test_policer_carries_out_each_governor_action():
    policer, emitted = _policer()
    policer._dispatch(Alert("warning", "hi", "detail"))
    assert emitted[-1][0] == ev.ALERT
    policer._dispatch(PauseStarts("memory at 90%"))
    assert policer.starts_paused
    plan_unit = make_plan(_config_for_policer(), 2, set()).main_units[0]
    assert policer.admit(plan_unit)[0] == "wait"  # paused: nothing starts
    policer._dispatch(ResumeStarts())
    assert not policer.starts_paused
    policer._dispatch(SetInnerJobs(1))
    assert policer.inner_jobs == 1
    policer._dispatch(SetInnerJobs(None))
    assert policer.inner_jobs == 4
    policer._dispatch(Cleanup("normal"))
    assert emitted[-1][0] == ev.CLEANUP
    with pytest.raises(MemoryStop, match="resume"):
        policer._dispatch(StopRun("red for 30 s"))
    with pytest.raises(TypeError):
        policer._dispatch(object())
    assert policer.roles()[4242] == "worker"


def _config_for_policer():
    import tempfile

    return _config(tempfile.mkdtemp())


# -- the work meter: what the ETA reads --------------------------------------------------------

def test_the_work_meter_learns_each_algorithm_s_error_from_the_pipelines_that_finished(tmp_path):
    """An estimate 10x too low for gb must not stay so, nor spread to an algorithm that proved right."""
    from milo_tui.engine.workmeter import WorkMeter

    config = _config(tmp_path, algorithms=["gb", "nb"], scalers=["none", "std"], selectors=["none"])
    plan = make_plan(config, 2, set(), fit_rows=300, features=30)
    meter = WorkMeter.for_plan(plan)
    estimate = {u.spec.name: plan.work.of(u.spec.name) * len(u.keys) for u in plan.main_units}
    assert meter.done == 0 and meter.total == pytest.approx(sum(estimate.values()))
    gb = [u for u in plan.main_units if u.spec.algorithm == "gb"]
    nb = [u for u in plan.main_units if u.spec.algorithm == "nb"]
    meter.finished(gb[0], len(gb[0].keys), 10 * estimate[gb[0].spec.name])
    # gb is 10x its estimate; nb, which has not run yet, takes that shrunk towards 1 (one algorithm's
    # error is mostly its own): the geometric mean of 10 and two pseudo-algorithms at 1
    assert meter.ratio("gb") == pytest.approx(10) and meter.ratio("nb") == pytest.approx(10 ** (1 / 3))
    gb_estimate = sum(v for k, v in estimate.items() if "__gb__" in k)
    nb_estimate = sum(v for k, v in estimate.items() if "__nb__" in k)
    assert meter.total == pytest.approx(10 * gb_estimate + 10 ** (1 / 3) * nb_estimate)
    meter.finished(nb[0], len(nb[0].keys), estimate[nb[0].spec.name])
    assert meter.ratio("nb") == pytest.approx(1)
    left = meter.total - meter.done
    assert left == pytest.approx(10 * estimate[gb[1].spec.name] + estimate[nb[1].spec.name])
    # a worker killed for memory and retried: time spent, nothing done, the same left (a little dearer)
    before = meter.total - meter.done
    meter.finished(gb[1], 0, 1.0)
    assert meter.total - meter.done >= before
    # a model skipped before it started teaches nothing, but is no longer left
    meter.finished(nb[1], len(nb[1].keys), 0.0)
    assert meter.ratio("nb") == pytest.approx(1) and meter.remaining["main", "nb"] == 0


def test_one_algorithm_s_error_stays_its_own_while_a_slow_machine_shows_in_all(tmp_path):
    """The class of the full run's 4.4 h ETA: gb's first pipelines must not scale mlp's estimate."""
    from milo_tui.engine.workmeter import WorkMeter

    config = _config(tmp_path, algorithms=["gb", "lr", "nb", "mlp"], scalers=["none"], selectors=["none"])
    plan = make_plan(config, 2, set(), fit_rows=300, features=30)
    meter = WorkMeter.for_plan(plan)
    units = {u.spec.algorithm: [v for v in plan.main_units if v.spec.algorithm == u.spec.algorithm]
             for u in plan.main_units}
    first = {algorithm: us[0] for algorithm, us in units.items()}
    meter.finished(first["gb"], len(first["gb"].keys), 8 * plan.work.of(first["gb"].spec.name) * len(first["gb"].keys))
    assert meter.ratio("mlp") < 2.1  # not 8: gb's error is gb's
    for algorithm in ("lr", "nb"):  # three algorithms agree the machine is slow: unseen ones follow
        unit = first[algorithm]
        meter.finished(unit, len(unit.keys), 8 * plan.work.of(unit.spec.name) * len(unit.keys))
    assert meter.ratio("mlp") == pytest.approx(8 ** (3 / 5))
    assert meter.ratio("gb") == pytest.approx(8)


def test_the_work_meter_counts_the_ovr_phase_it_will_run(tmp_path):
    from milo_tui.engine.workmeter import WorkMeter

    config = _config(tmp_path, algorithms=["lr"], scalers=["none"], reoptimize_ovr=True)
    plan = make_plan(config, 3, set(), fit_rows=300, features=30)
    meter = WorkMeter.for_plan(plan)
    main = sum(plan.work.of(name) * count for name, count in plan.work.models.items())
    assert meter.total == pytest.approx(main * (1 + 3 / 2))  # + half of each main model per class
    unit = plan.main_units[0]
    meter.expect_ovr(unit.keys[:1], 3)  # one main model finished: only its three refits are left of the OvR phase
    assert meter.remaining["ovr", "lr"] == pytest.approx(3 * plan.work.of(unit.spec.name, "ovr"))
    meter.expect_ovr([], 3)  # the OvR phase skipped
    assert meter.total == pytest.approx(main)
