"""The cluster's parts that need no cluster: settings, the node command, data and model transfer checks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from milo_tui import config as cfg
from milo_tui.cluster import make_executor, scheduler_for
from milo_tui.cluster.command import node_command
from milo_tui.cluster.wire import ModelBytes, data_fingerprint
from milo_tui.errors import BadInputError


@pytest.mark.parametrize("value", ["local", "tcp://10.0.0.5:8786", "tls://head:8786", "/shared/scheduler.json"])
def test_scheduler_setting_accepts_local_an_address_or_a_scheduler_file(value):
    assert cfg.check_scheduler(value) == value


@pytest.mark.parametrize("value", ["head:8786", "yes"])
def test_scheduler_setting_refuses_anything_else_with_what_is_allowed(value):
    with pytest.raises(BadInputError, match="tcp://host:8786"):
        cfg.check_scheduler(value)


def test_the_command_line_wins_over_the_environment_over_milo_toml(monkeypatch):
    monkeypatch.delenv("MILO_SCHEDULER", raising=False)
    assert scheduler_for(None) is None
    assert scheduler_for("tcp://a:1") == "tcp://a:1"
    monkeypatch.setenv("MILO_SCHEDULER", "local")
    assert scheduler_for("tcp://a:1") == "local"
    assert scheduler_for("tcp://a:1", "tcp://b:2") == "tcp://b:2"


def test_without_the_cluster_extra_a_scheduler_is_refused_with_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(BadInputError, match=r"pip install 'milo_tui\[cluster\]'"):
        make_executor(None, "tcp://head:8786")


def test_no_scheduler_means_the_local_executor_and_no_dask_import(monkeypatch):
    from milo_tui.engine.executor import LocalExecutor

    monkeypatch.setitem(sys.modules, "distributed", None)
    assert isinstance(make_executor(None, None), LocalExecutor)


def test_a_node_is_one_dask_worker_without_a_memory_limit_and_with_milo_preloaded():
    command = node_command("tcp://head:8786", nthreads=3, name="gpu1")
    assert command[1:3] == ["-m", "distributed.cli.dask_worker"]
    joined = " ".join(command)
    for part in ("tcp://head:8786", "--nworkers 1", "--nthreads 3", "--memory-limit 0",
                 "--preload milo_tui.cluster.node", "--name gpu1"):
        assert part in joined
    assert "--scheduler-file /s/sched.json" in " ".join(node_command("/s/sched.json", nthreads=1))


def test_data_fingerprint_changes_with_any_byte_or_name():
    base = {"X_fit.npy": b"abc", "y_fit.npy": b"de"}
    assert data_fingerprint(base) == data_fingerprint(dict(reversed(base.items())))
    assert data_fingerprint(base) != data_fingerprint({"X_fit.npy": b"abd", "y_fit.npy": b"de"})
    assert data_fingerprint(base) != data_fingerprint({"X_fit.npy": b"ab", "y_fit.npy": b"cde"})


def test_a_model_damaged_in_transfer_fails_its_hash_check():
    import hashlib

    data = b"model bytes"
    assert ModelBytes("k", data, hashlib.sha256(data).hexdigest()).intact()
    assert not ModelBytes("k", data + b"!", hashlib.sha256(data).hexdigest()).intact()


distributed = pytest.importorskip("distributed")


def test_node_data_is_installed_once_and_checked(tmp_path, monkeypatch):
    from milo_tui.cluster.node import install_data, node_root

    monkeypatch.setenv("MILO_NODE_DIR", str(tmp_path))
    root = node_root()
    arrays = {"X_fit.npy": b"123", "y_fit.npy": b"4"}
    fingerprint = data_fingerprint(arrays)
    target = install_data(root, fingerprint, arrays)
    assert (target / "X_fit.npy").read_bytes() == b"123"
    assert install_data(root, fingerprint, {}) == target  # cached: nothing sent is needed again
    with pytest.raises(RuntimeError, match="damaged"):
        install_data(root, data_fingerprint({"a": b"1"}), arrays)
    assert [p.name for p in (root / "data").iterdir()] == [fingerprint]  # no staging left behind


def test_a_node_directory_that_is_a_link_or_open_to_others_is_refused(tmp_path, monkeypatch):
    from milo_tui.cluster.node import node_root

    monkeypatch.setenv("MILO_NODE_DIR", str(tmp_path))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    os.symlink(elsewhere, tmp_path / f"milo-node-{os.getuid()}")
    with pytest.raises(RuntimeError, match="not a private directory"):
        node_root()
    (tmp_path / f"milo-node-{os.getuid()}").unlink()
    Path(tmp_path / f"milo-node-{os.getuid()}").mkdir(mode=0o755)
    os.chmod(tmp_path / f"milo-node-{os.getuid()}", 0o755)
    with pytest.raises(RuntimeError, match="not a private directory"):
        node_root()


def test_task_directories_of_dead_workers_are_removed_and_live_ones_kept(tmp_path, monkeypatch):
    from milo_tui.cluster.node import node_root, remove_orphaned_tasks

    monkeypatch.setenv("MILO_NODE_DIR", str(tmp_path))
    root = node_root()
    live = root / "tasks" / f"task-{os.getpid()}-abc"
    dead = root / "tasks" / "task-999999999-abc"
    live.mkdir()
    dead.mkdir()
    remove_orphaned_tasks(root)
    assert live.exists() and not dead.exists()


def test_milo_node_and_run_refuse_a_bad_scheduler_with_one_paragraph(capsys):
    from milo_tui.cli import main
    from milo_tui.errors import EXIT_BAD_INPUT

    assert main(["node", "local"]) == EXIT_BAD_INPUT
    assert "joins a running scheduler" in capsys.readouterr().err
    assert main(["run", "nowhere", "--scheduler", "head:8786"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "tcp://host:8786" in err and "Traceback" not in err


class _FakeClient:
    def __init__(self, worker_sklearn: str) -> None:
        self.worker_sklearn = worker_sklearn
        self.closed = False

    def get_versions(self, packages):
        mine = {"python": "3.11.7", "dask": "2026.8.0", "distributed": "2026.8.0", "sklearn": "1.9.0"}
        node = {**mine, "sklearn": self.worker_sklearn}
        return {"scheduler": {"packages": mine}, "client": {"packages": mine},
                "workers": {"tcp://n1:1": {"packages": node}}}

    def close(self):
        self.closed = True


def test_a_node_with_another_scikit_learn_refuses_the_run_with_the_table():
    from milo_tui.cluster.executor import _check_versions

    _check_versions(_FakeClient("1.9.0"))  # all alike: accepted
    client = _FakeClient("1.8.1")
    with pytest.raises(BadInputError, match="different versions") as refused:
        _check_versions(client)
    assert "1.8.1" in str(refused.value) and "sklearn" in str(refused.value) and client.closed


def test_headless_lines_say_which_node_trained_a_model_and_which_node_alerted():
    import io

    from milo_tui import events as ev
    from milo_tui.cli import HeadlessPrinter

    out = io.StringIO()
    printer = HeadlessPrinter(out)
    printer.handle(ev.Event(type=ev.MODEL_STARTED, seq=1, ts=1.0, data={
        "pipeline": "std__none__nb__grid", "phase": "main", "class_index": None, "worker_pid": 7,
        "host": "node-b.lab", "estimate_bytes": 1, "completed": 0, "total": 4}))
    printer.handle(ev.Event(type=ev.MODEL_FINISHED, seq=2, ts=2.0, data={
        "key": "std__none__nb__grid__accuracy__0", "pipeline": "std__none__nb__grid", "phase": "main",
        "class_type": "binary", "class_index": None, "metrics": {}, "completed": 1, "total": 4}))
    printer.handle(ev.Event(type=ev.ALERT, seq=3, ts=3.0, data={
        "level": "warning", "message": "A cluster node was lost", "detail": "", "host": "node-c.lab"}))
    text = out.getvalue()
    assert "std__none__nb__grid__accuracy__0 on node-b.lab" in text
    assert "A cluster node was lost (node-c.lab)" in text


# -- a node's memory: admission through the nodes, and every governor action carried out there ----

MB = 1024 * 1024


def _dask_executor():
    from milo_tui.cluster.executor import DaskExecutor
    from milo_tui.memory.status import Thresholds

    return DaskExecutor("tcp://head:8786", memory_budget=None, thresholds=Thresholds(0.75, 0.85),
                        critical_grace=1.0, forecast_horizon=60.0, sample_interval=1.0)


def _reading(address: str, *, capacity: int = 1000 * MB, slots: int = 1, pss: int = 300 * MB):
    from milo_tui.cluster.wire import NodeMemory
    from milo_tui.memory.limits import MemoryLimit

    limit = MemoryLimit(2000 * MB, "budget", 24000 * MB, None, 2000 * MB)
    return NodeMemory(address=address, host=f"host-{address[6]}", worker_pid=1, pss=pss, rss=pss,
                      system_available=20000 * MB, limit=limit, slots=slots, capacity=capacity)


def _with_nodes(executor, *readings):
    from milo_tui.cluster.executor import _NodeState
    from milo_tui.memory.governor import Governor

    executor._fingerprint = "installed"
    for reading in readings:
        executor._nodes[reading.address] = _NodeState(
            Governor(reading.limit, executor.thresholds, critical_grace=1.0, forecast_horizon=60.0), reading)
    return executor


def _running_on(executor, address: str, estimate: int):
    from milo_tui.cluster.executor import _Submission
    from milo_tui.engine.executor import TaskHandle

    executor._submissions.append(_Submission(TaskHandle(len(executor._submissions) + 1, None, "p"), None, None,
                                             "k", estimate=estimate, address=address))


def test_admission_starts_where_a_node_has_room_waits_while_none_has_and_skips_what_no_node_holds():
    executor = _with_nodes(_dask_executor(), _reading("tcp://a:1", capacity=1000 * MB),
                           _reading("tcp://b:1", capacity=400 * MB))
    assert executor.admit(900 * MB, others_running=False)[0] == "start"
    verdict, reason = executor.admit(1200 * MB, others_running=False)
    assert verdict == "skip" and "largest node" in reason
    _running_on(executor, "tcp://a:1", 700 * MB)  # a: 300 MB left, and its one slot taken
    assert executor.admit(350 * MB, others_running=True)[0] == "start"  # b has room and a free slot
    _running_on(executor, "tcp://b:1", 100 * MB)
    verdict, reason = executor.admit(100 * MB, others_running=True)
    assert verdict == "wait" and "busy" in reason


def test_a_red_node_gets_no_new_pipelines_while_the_others_go_on():
    executor = _with_nodes(_dask_executor(), _reading("tcp://a:1"), _reading("tcp://b:1", capacity=200 * MB))
    executor._nodes["tcp://a:1"].paused = True
    verdict, reason = executor.admit(300 * MB, others_running=False)
    assert verdict == "wait" and "roomiest open node" in reason  # a could hold it, but a is red: b is too small
    assert executor.admit(150 * MB, others_running=False)[0] == "start"
    executor._nodes["tcp://b:1"].paused = True
    verdict, reason = executor.admit(150 * MB, others_running=False)
    assert verdict == "wait" and "critical on every cluster node" in reason


class _RecordingClient:
    """Stands in for a Dask client: records what ran on which node, answers like the node would."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, list]] = []

    def run(self, function, *args, workers=None, on_error=None, wait=True):
        from milo_tui.memory.cleanup import CleanupReport

        self.calls.append((function.__name__, args, workers))
        if function.__name__ == "clean_up_on_node":
            return {workers[0]: CleanupReport(args[0], 5 * MB, 2, host="host-a")}
        return {workers[0]: True}


def test_every_action_of_a_node_s_governor_is_carried_out_on_that_node():
    from milo_tui.memory.cleanup import CRITICAL, CleanupReport
    from milo_tui.memory.governor import Alert, Cleanup, PauseStarts, ResumeStarts, SetInnerJobs, StopRun

    executor = _with_nodes(_dask_executor(), _reading("tcp://a:1"), _reading("tcp://b:1"))
    executor.client = client = _RecordingClient()
    node = executor._nodes["tcp://a:1"]
    for action in (Alert("critical", "Memory critical", "1.9 GB in use"), Cleanup(CRITICAL), PauseStarts("red"),
                   SetInnerJobs(1), ResumeStarts(), SetInnerJobs(None)):
        executor._carry_out(node, action)
    assert client.calls == [("clean_up_on_node", (CRITICAL,), ["tcp://a:1"]), ("open_node", (False,), ["tcp://a:1"]),
                            ("cap_jobs_on_node", (1,), ["tcp://a:1"]), ("open_node", (True,), ["tcp://a:1"]),
                            ("cap_jobs_on_node", (None,), ["tcp://a:1"])]
    alert, cleanup = executor.drain_actions()
    assert alert.data["host"] == "host-a" and alert.detail.startswith("host-a: ")
    assert isinstance(cleanup, CleanupReport) and cleanup.as_event()["host"] == "host-a"
    assert not node.paused
    # Stuck red on one node: that node is retired, the run goes on; on the last node: the run stops.
    executor._carry_out(node, StopRun("memory stayed critical"))
    (retired,) = executor.drain_actions()
    assert isinstance(retired, Alert) and "no more pipelines" in retired.message and node.retired
    assert executor.admit(100 * MB, others_running=False)[0] == "start"  # on b
    executor._carry_out(executor._nodes["tcp://b:1"], StopRun("memory stayed critical"))
    (stop,) = executor.drain_actions()
    assert isinstance(stop, StopRun) and "no cluster node is left" in stop.reason


# -- a red node turns new pipelines away while its running tasks hold its memory --------------
# An in-process cluster (no worker processes): the tasks below wait on events of this process.
_GATES: dict[str, tuple] = {}


def _hold_memory(name: str) -> str:
    started, release = _GATES[name]
    started.set()
    release.wait(30)
    return name


def _install_node(capacity: int, dask_worker=None) -> None:
    """milo's plugin as far as admission goes (no forkserver, no data): its capacity and its gate."""
    from milo_tui.cluster.node import MiloNode
    from milo_tui.cluster.wire import PLUGIN_NAME

    node = MiloNode("fingerprint", {}, None)
    node.worker, node.capacity = dask_worker, capacity
    node._take_over_pausing(dask_worker)  # this worker has Dask's memory monitor, which would resume it
    dask_worker.plugins[PLUGIN_NAME] = node


def _worker_view(dask_worker=None) -> tuple[float, dict]:
    from milo_tui.cluster.wire import MEMORY_RESOURCE

    return (dask_worker.state.available_resources.get(MEMORY_RESOURCE),
            {key: task.state for key, task in dask_worker.state.tasks.items()})


def _scheduler_state(key: str, dask_scheduler=None) -> str | None:
    task = dask_scheduler.tasks.get(key)
    return task.state if task else None


def test_a_node_red_then_green_while_tasks_run_still_holds_exactly_its_capacity():
    """Red, then green again, while two tasks hold 80 of its 100 milo-memory.

    What must survive: a pipeline submitted while the node was red is placed there once it is
    green (withdrawing the resource, the earlier gate, left it waiting for good), and the node
    still counts what its running tasks hold: that pipeline waits there until one ends (an
    upward drift would start it at once), a fourth waits again, and once all ended the node
    offers its whole capacity (a downward drift would keep pipelines waiting forever).
    """
    import threading

    from milo_tui.cluster.node import open_node
    from milo_tui.cluster.wire import MEMORY_RESOURCE

    from engine_helpers import wait_for

    with distributed.LocalCluster(n_workers=1, threads_per_worker=4, processes=False, dashboard_address=None,
                                  resources={MEMORY_RESOURCE: 100}) as local, distributed.Client(local) as client:
        (address,) = client.run(lambda: None)
        client.run(_install_node, 100)

        def submit(name: str):
            _GATES[name] = (threading.Event(), threading.Event())
            return client.submit(_hold_memory, name, key=name, resources={MEMORY_RESOURCE: 40})

        def state_on_node(name: str) -> str | None:
            return client.run(_worker_view)[address][1].get(name)

        futures = {name: submit(name) for name in ("a", "b")}
        assert wait_for(lambda: all(_GATES[n][0].is_set() for n in ("a", "b")), timeout=10)

        assert client.run(open_node, False)[address]  # red: nothing new is placed here
        futures["c"] = submit("c")
        assert wait_for(lambda: client.run_on_scheduler(_scheduler_state, "c") == "no-worker", timeout=10)

        client.run(open_node, True)  # green again, with a and b still running
        assert wait_for(lambda: state_on_node("c") == "constrained", timeout=10), \
            "c must be placed on the node and wait there: a and b still hold 80 of its 100"
        assert client.run(_worker_view)[address][0] == 100 - 80

        _GATES["a"][1].set()  # a ends: c fits now, and only c
        assert wait_for(lambda: _GATES["c"][0].is_set(), timeout=10)
        futures["d"] = submit("d")
        assert wait_for(lambda: state_on_node("d") == "constrained", timeout=10)
        assert not _GATES["d"][0].is_set()

        for name in ("b", "c", "d"):
            _GATES[name][1].set()
        assert client.gather(list(futures.values())) == ["a", "b", "c", "d"]
        assert wait_for(lambda: client.run(_worker_view)[address][0] == 100, timeout=10)
        client.run(_remove_node)


def _remove_node(dask_worker=None) -> None:
    from milo_tui.cluster.wire import PLUGIN_NAME

    dask_worker.plugins.pop(PLUGIN_NAME)  # it has no forkserver for a teardown to stop


@pytest.mark.parametrize("preload, child_imports_again", [("node", False), ("engine", True)])
def test_a_node_s_training_children_find_its_main_module_s_imports_loaded(tmp_path, preload, child_imports_again):
    """multiprocessing re-runs a worker's main module in each child; on a `milo node` worker its
    imports (Dask) cost 1.6 s per pipeline unless the forkserver already holds them. What must
    hold: with the node's preload a child imports nothing its forkserver had not; the engine's
    plain list shows the cost (the case the test would miss if the probe were broken)."""
    import subprocess

    marker = tmp_path / "imports"
    tests_dir = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, MILO_IMPORT_MARKER=str(marker),
               PYTHONPATH=os.pathsep.join(filter(None, [tests_dir, os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "probes.node_main", preload], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    child = done.stdout.split()[-1]
    importers = marker.read_text().split()
    assert (child in importers) == child_imports_again, (child, importers)
