"""Training on a Dask cluster, end to end: the real engine against a LocalCluster of 2 worker processes.

One cluster serves the module (as a lab's cluster serves many runs). Its workers carry
the worker balloon for knn only (MILO_TEST_BALLOON, engine/worker.py), so the nb and lr
runs train normally (nb: quick; lr: slow enough to lose its node mid-task) and the knn
run drives a node's memory into red.

What must survive: the same models and metrics as on one machine; a node lost mid-task
(its task retried once elsewhere, nothing twice); a runaway child (killed on its node,
retried, then skipped); a SIGTERM'd engine (resumed, every model once, hash-checked).
"""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from milo_tui import events as ev
from milo_tui.cluster import NODE_PRELOAD
from milo_tui.engine.report import read_report
from milo_tui.launcher import start_engine

from drill_checks import assert_run_consistent
from engine_helpers import (EngineResult, run_engine, small_binary_project, validate_events, wait_for,
                            write_config)

distributed = pytest.importorskip("distributed")

METRICS = ("accuracy", "roc_auc", "avg_sn_sp", "sensitivity", "specificity", "f1", "mcc", "brier_score",
           "best_params")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    import dask

    node_dir = tmp_path_factory.mktemp("nodes")
    env = {"MILO_TEST_BALLOON": "knn:1400", "MILO_TEST_BALLOON_SECONDS": "60", "MILO_NODE_DIR": str(node_dir)}
    # Held for the whole module: a nanny reads `daemon` again when it restarts a lost worker.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0, "distributed.worker.daemon": False}):
        # milo's preload warms each worker's forkserver as it starts (as `milo node` does), so the first
        # run does not wait for scikit-learn's imports on the nodes.
        local = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=0,
                                         dashboard_address=None, env=env, preload=[NODE_PRELOAD])
        client = distributed.Client(local)
        try:
            yield client, node_dir
        finally:
            client.close()
            local.close()


def _on_cluster(client) -> dict:
    return {"MILO_SCHEDULER": client.scheduler.address}


def _project(tmp_path, name, algorithms=("nb",), scalers=("std",), workers=2, memory=None):
    folder = tmp_path / name
    folder.mkdir()
    project = small_binary_project(folder, algorithms=list(algorithms), scalers=list(scalers), selectors=["none"])
    write_config(project, {"run": {"workers": workers}, "memory": {"sample_interval": 0.2, **(memory or {})}})
    return project


def _node_tasks_left(node_dir) -> list:
    return list((node_dir / f"milo-node-{os.getuid()}" / "tasks").glob("*"))


def test_a_cluster_run_gives_the_local_run_s_keys_and_metrics(tmp_path, cluster):
    client, node_dir = cluster
    here = _project(tmp_path, "local")
    there = _project(tmp_path, "cluster")
    with ThreadPoolExecutor(2) as both:  # independent runs: side by side, as two users' would be
        local_run = both.submit(run_engine, here)
        remote = run_engine(there, env=_on_cluster(client))
        local = local_run.result()
    assert local.exit_code == 0 and remote.exit_code == 0, (local.finished, remote.finished)
    validate_events(remote.events)
    local_rows = {r["key"]: r for r in read_report(here / "report.csv")}
    remote_rows = {r["key"]: r for r in read_report(there / "report.csv")}
    assert sorted(remote_rows) == sorted(local_rows) and len(local_rows) == 4
    for key, row in local_rows.items():
        assert {m: remote_rows[key][m] for m in METRICS} == {m: row[m] for m in METRICS}, key
    assert_run_consistent(there, 4)
    workers = set(client.run(os.getpid).values())
    for started in remote.of_type(ev.MODEL_STARTED):  # a child of a Dask worker's forkserver
        assert started.data["host"] and started.data["worker_pid"] not in workers
    nodes = [e.data["nodes"] for e in remote.of_type(ev.MEMORY) if e.data.get("nodes")]
    assert nodes and {n["address"] for n in nodes[-1]} == set(client.run(os.getpid))
    assert not _node_tasks_left(node_dir), "a node kept a task's private directory"


def _dask_worker_of(child_pid: int, workers: set[int]) -> int | None:
    try:
        return next(p.pid for p in psutil.Process(child_pid).parents() if p.pid in workers)
    except (psutil.Error, StopIteration):
        return None


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_a_node_lost_mid_task_is_retried_elsewhere_and_nothing_is_lost_or_doubled(tmp_path, cluster):
    client, _ = cluster
    project = _project(tmp_path, "lost", algorithms=("lr", "nb"))
    workers = set(client.run(os.getpid).values())
    engine = start_engine(project, extra_env=_on_cluster(client))
    result, killed, child = EngineResult(exit_code=-1), None, None
    try:
        for batch in ev.read_pipe(engine.event_fd):
            result.events.extend(batch.events)
            for event in batch.events:
                if killed is None and event.type == ev.MODEL_STARTED and "__lr__" in event.data["pipeline"]:
                    child = event.data["worker_pid"]
                    killed = _dask_worker_of(child, workers)
                    os.kill(killed, signal.SIGKILL)  # the whole Dask worker, as a node dying would
    finally:
        result.exit_code = engine.popen.wait(timeout=60)
        engine.close()
    assert killed, "no model_started named a child of a Dask worker"
    assert wait_for(lambda: not _alive(child), timeout=10), "the lost worker's child trains on as an orphan"
    assert result.exit_code == 0, result.finished
    lost = [a.data for a in result.of_type(ev.ALERT) if a.data["message"] == "A cluster node was lost"]
    assert len(lost) == 1
    assert_run_consistent(project, 8)


def _busy_joblib_in_a_node_child(record_dir: str) -> dict:
    """A Dask task: a node's training child whose two joblib helpers stay busy for a minute."""
    from joblib_probe import joblib_pids

    from milo_tui.cluster.node import _plugin

    return _plugin().executor.call(joblib_pids, 2, 2, 60.0, record_dir)


def test_joblib_helpers_of_a_lost_node_s_child_are_ended_with_its_worker(tmp_path, cluster):
    """What must survive a Dask worker's sudden death: nothing of its training goes on, not even the
    joblib helpers of its children (their parent-death signal cannot reach them; milo's reaper does)."""
    from milo_tui.cluster.node import MiloNode
    from milo_tui.cluster.wire import PLUGIN_NAME, data_fingerprint

    client, _ = cluster
    client.wait_for_workers(2, timeout=60)
    workers = set(client.run(os.getpid).values())
    arrays = {"X_fit.npy": b"x", "y_fit.npy": b"y"}
    client.register_plugin(MiloNode(data_fingerprint(arrays), arrays, None), name=PLUGIN_NAME)
    record = tmp_path / "helpers"
    record.mkdir()
    busy = client.submit(_busy_joblib_in_a_node_child, str(record), pure=False)
    try:
        assert wait_for(lambda: len(list(record.iterdir())) == 2, timeout=60), "joblib's helpers did not start"
        helpers = [int(p.name) for p in record.iterdir()]
        worker = _dask_worker_of(helpers[0], workers)
        assert worker and helpers[0] != worker
        os.kill(worker, signal.SIGKILL)
        assert wait_for(lambda: not any(_alive(p) for p in helpers), timeout=10), \
            "a lost worker's joblib helpers train on"
    finally:
        busy.release()
        client.unregister_worker_plugin(PLUGIN_NAME)


def test_a_ballooning_task_is_killed_on_its_node_retried_with_one_job_then_skipped(tmp_path, cluster):
    client, _ = cluster
    project = _project(tmp_path, "balloon", algorithms=("knn",), scalers=("none",), workers=1,
                       memory={"memory_budget": "2GB", "warning": 0.3, "critical": 0.5})
    result = run_engine(project, env=_on_cluster(client))
    assert result.exit_code == 0, result.finished
    validate_events(result.events)
    starts = [e.data["attempt"] for e in result.of_type(ev.MODEL_STARTED)]
    assert starts == [1, 2]
    retry = [e.data["message"] for e in result.of_type(ev.LOG) if "retrying once with n_jobs=1" in e.data["message"]]
    assert len(retry) == 1 and "over its allowance" in retry[0] and "limit of that node" in retry[0]
    skipped = result.of_type(ev.MODEL_SKIPPED)
    assert len(skipped) == 1 and "killed twice" in skipped[0].data["reason"]
    assert result.finished["models_skipped"] == 4 and result.finished["models_completed"] == 0
    red = [n for e in result.of_type(ev.MEMORY) for n in e.data.get("nodes", []) if n["status"] == "red"]
    assert red, "no node reported red"


def test_sigterm_then_resume_on_the_cluster_gives_every_model_once(tmp_path, cluster):
    client, node_dir = cluster
    project = _project(tmp_path, "resume", scalers=("none", "minmax", "std"), workers=1)  # three nb pipelines
    engine = start_engine(project, extra_env=_on_cluster(client))
    first, stopped = EngineResult(exit_code=-1), False
    try:
        for batch in ev.read_pipe(engine.event_fd):
            first.events.extend(batch.events)
            if first.of_type(ev.MODEL_FINISHED) and not stopped:
                engine.popen.send_signal(signal.SIGTERM)
                stopped = True
    finally:
        first.exit_code = engine.popen.wait(timeout=60)
        engine.close()
    assert first.finished["status"] == "interrupted", first.finished
    done_before = {e.data["key"] for e in first.of_type(ev.MODEL_FINISHED)}
    resumed = run_engine(project, resume=True, env=_on_cluster(client))
    assert resumed.exit_code == 0, resumed.finished
    assert not done_before & {e.data["key"] for e in resumed.of_type(ev.MODEL_FINISHED)}
    assert_run_consistent(project, 12)
    assert not _node_tasks_left(node_dir)


def _joblib_in_a_node_child(n_jobs: int) -> dict:
    """A Dask task: run joblib in a child of this node's milo forkserver, as a search would."""
    from joblib_probe import joblib_pids

    from milo_tui.cluster.node import _plugin

    return _plugin().executor.call(joblib_pids, n_jobs)


def test_a_node_s_training_child_runs_joblib_with_the_jobs_it_was_given(cluster):
    from milo_tui.cluster.node import MiloNode
    from milo_tui.cluster.wire import PLUGIN_NAME, data_fingerprint

    client, _ = cluster
    arrays = {"X_fit.npy": b"x", "y_fit.npy": b"y"}
    client.register_plugin(MiloNode(data_fingerprint(arrays), arrays, None), name=PLUGIN_NAME)
    try:
        seen = client.submit(_joblib_in_a_node_child, 2, pure=False).result(timeout=60)
    finally:
        client.unregister_worker_plugin(PLUGIN_NAME)
    assert not [w for w in seen["warnings"] if "n_jobs=1" in w], seen["warnings"]
    assert len(seen["job_pids"]) == 2 and seen["child"] not in seen["job_pids"], seen
    assert wait_for(lambda: not any(_alive(p) for p in seen["job_pids"]), timeout=5), seen


def _hold_in_worker(megabytes: int) -> int:
    """A Dask task: the worker process itself holds this much (touched, so it is resident)."""
    import numpy as np
    from distributed import get_worker

    get_worker()._milo_test_ballast = np.ones(megabytes * 1024 * 1024 // 8)
    return os.getpid()


def _drop_ballast(dask_worker=None) -> None:
    dask_worker.__dict__.pop("_milo_test_ballast", None)


def test_a_red_node_gets_no_new_pipelines_its_governor_cleans_up_there_and_the_other_node_trains_all(
        tmp_path, cluster):
    client, _ = cluster
    client.wait_for_workers(2, timeout=60)  # a worker killed by an earlier test is back
    red_address, green_address = sorted(client.run(os.getpid))
    client.submit(_hold_in_worker, 1100, workers=[red_address], pure=False).result(timeout=60)
    project = _project(tmp_path, "red", scalers=("none", "minmax", "std"),
                       memory={"memory_budget": "2GB", "warning": 0.3, "critical": 0.5, "critical_grace": 1})
    try:
        result = run_engine(project, env=_on_cluster(client))
    finally:
        client.run(_drop_ballast, workers=[red_address])
    assert result.exit_code == 0, result.finished
    validate_events(result.events)
    readings = [n for e in result.of_type(ev.MEMORY) for n in e.data.get("nodes", [])]
    assert not [n for n in readings if n["address"] == red_address and n["running"]], \
        "a pipeline ran on the node whose memory was red"
    assert [n for n in readings if n["address"] == green_address and n["running"]]
    assert_run_consistent(project, 12)
    nodes = {n["address"]: n for n in readings}
    assert nodes[red_address]["status"] == "red" and nodes[red_address]["paused"]
    assert nodes[green_address]["status"] != "red" and not nodes[green_address]["paused"]
    assert [c for c in result.of_type(ev.CLEANUP) if c.data.get("host") and c.data["level"] == "critical"], \
        "the red node's cleanup was not carried out there"
    retired = [a.data for a in result.of_type(ev.ALERT) if a.data["message"].startswith("A cluster node gets no more")]
    assert retired and retired[0]["address"] == red_address
    assert not [a for a in result.of_type(ev.ALERT) if a.data["message"] == ev.MSG_STOPPED]  # the run went on


def test_a_nanny_s_memory_restart_of_its_worker_is_an_alert(tmp_path):
    import dask

    from milo_tui.cluster.executor import DaskExecutor
    from milo_tui.memory.status import Thresholds

    with dask.config.set({"distributed.worker.daemon": False}):
        backstop = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                            memory_limit="400MB", dashboard_address=None)
    executor = DaskExecutor(backstop.scheduler_address, memory_budget=None, thresholds=Thresholds(0.75, 0.85),
                            critical_grace=5, forecast_horizon=60, sample_interval=1)
    try:
        executor.connect()  # the engine's own forkserver (for data preparation) is not needed here
        executor.client.submit(_hold_in_worker, 600, pure=False)  # the worker itself passes the nanny's limit
        alerts: list = []
        assert wait_for(lambda: alerts.extend(executor.drain_actions()) or alerts, timeout=60)
    finally:
        executor.shutdown()
        backstop.close()
    (alert,) = alerts
    assert alert.level == "critical" and "restarted for memory" in alert.message
    assert alert.data["rss_bytes"] > 0.95 * 400e6 and "--memory-limit 0" in alert.detail  # the nanny acts past 95 %
    # The event it becomes is what the TUI's alert line shows.
    from milo_tui.runstate import RunState
    from milo_tui.tui.widgets.memory import memory_summary

    state = RunState()
    state.apply(ev.Event(type=ev.ALERT, seq=1, ts=1.0, data=alert.as_event()))
    assert "Last alert: A cluster node's Dask worker was restarted for memory" in memory_summary(state, {}, 100).plain
