"""The training loop: plan, train main models, check resources, train OvR models, archive.

Everything the outside world learns comes from events (milo_tui.events). The
loop never holds a fitted model: workers save them and send back metrics.
"""

from __future__ import annotations

import gc
import os
import queue
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psutil

from milo_tui import __version__
from milo_tui import events as ev
from milo_tui.config import Config, format_size
from milo_tui.engine.data import DataSummary, map_arrays, prepare_data
from milo_tui.engine.executor import (Executor, KillKind, KillReason, LocalExecutor, Outcome, OutcomeKind,
                                      ProcessRole, TaskHandle)
from milo_tui.engine.report import ReportWriter, model_rows, read_report, sort_best_first
from milo_tui.engine.grids import SearchSpace
from milo_tui.engine.space import (PipelineSpec, enumerate_pipelines, min_class_count, model_keys,
                                   models_per_pipeline, ovr_key, search_plan)
from milo_tui.engine.worker import TrainTask
from milo_tui.errors import (EXIT_DISK_FULL, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK,
                             EXIT_STOPPED_MEMORY, BadInputError, DiskFullError)
from milo_tui.memory.cleanup import cleanup as run_cleanup
from milo_tui.memory.estimate import DEFAULT_BASELINE, FOREST_TREES, FootprintEstimator
from milo_tui.memory.governor import Governor, ovr_check
from milo_tui.memory.limits import resolve_limit
from milo_tui.memory.monitor import MemoryMonitor
from milo_tui.memory.sampler import sample_tree
from milo_tui.memory.report import effective_used, memory_event
from milo_tui.memory.status import RED, Thresholds
from milo_tui.project import ProjectPaths, atomic_write_json
from milo_tui.storage.archive import ArchiveWriter
from milo_tui.storage.stats import live_storage_stats, project_storage_stats

STATUS_EXIT = {
    "completed": EXIT_OK, "stopped_memory": EXIT_STOPPED_MEMORY, "interrupted": EXIT_INTERRUPTED,
    "disk_full": EXIT_DISK_FULL, "failed": EXIT_FAILED,
}
ARCHIVES = ("main_models", "ovr_models")


@dataclass
class Unit:
    """One worker task-to-be: a pipeline search (main) or a class's refits (ovr)."""

    phase: str
    spec: PipelineSpec
    keys: list[str]
    class_index: int | None = None
    ovr_params: dict[str, dict] = field(default_factory=dict)
    attempt: int = 1
    estimate: int = 0


class StopRun(Exception):
    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_project_state(paths: ProjectPaths, *, resume: bool, force: bool) -> dict | None:
    """Refuse to overwrite a finished or unfinished run unless told to. Returns old metadata."""
    import json

    live = live_engine_pid(paths)
    if live is not None:
        raise BadInputError(
            f"An engine (pid {live}) is already training {paths.root}. Nothing was changed. "
            "Attach to it with `milo watch PROJECT`, or stop it first (quit its TUI with 'stop', or kill it)."
        )
    if not paths.metadata.exists():
        return None
    try:
        meta = json.loads(paths.metadata.read_text())
    except (OSError, ValueError):
        meta = {"status": "unknown"}
    status = meta.get("status")
    if force:
        return meta
    if status == "completed" and not resume:
        raise BadInputError(
            f"{paths.root} already holds a completed run ({meta.get('counts', {}).get('completed', '?')} models). "
            "Nothing was changed. Browse it with `milo models` or `milo watch`; to train again from scratch, "
            "deleting the old results, run with --force."
        )
    if status not in ("completed",) and not resume:
        raise BadInputError(
            f"{paths.root} holds an unfinished run (status {status}). Nothing was changed. "
            "Continue it with `milo run PROJECT --resume`, or start over with --force (deletes its results)."
        )
    return meta


def refuse(exc: BadInputError, pipe_fd: int | None) -> int:
    """Bad input: say why on the pipe and stderr only; nothing of the project is touched."""
    writer = ev.EventWriter(None, pipe_fd)
    writer.emit(ev.RUN_FINISHED, status="bad_input", exit_code=exc.exit_code, models_completed=0,
                models_failed=0, models_skipped=0, seconds=0.0, best=None, message=str(exc))
    writer.close()
    print(str(exc), file=sys.stderr)
    return exc.exit_code


def live_engine_pid(paths: ProjectPaths) -> int | None:
    """The pid of an engine still training this project, if any (its pid file names a live engine)."""
    try:
        pid = int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if pid == os.getpid():
        return None
    try:
        cmdline = " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return None
    return pid if "milo_tui.engine" in cmdline else None


def _remove_if_empty(directory: Path) -> None:
    try:
        directory.rmdir()
    except OSError:
        pass


def clear_outputs(paths: ProjectPaths) -> None:
    for path in (paths.report, paths.metadata, paths.events):
        path.unlink(missing_ok=True)
    for directory in (paths.models, paths.class_results):
        shutil.rmtree(directory, ignore_errors=True)


class Run:
    def __init__(self, config: Config, *, pipe_fd: int | None = None, resume: bool = False,
                 force: bool = False, executor: Executor[Unit] | None = None) -> None:
        self.config = config
        self.paths = config.project
        self.pipe_fd = pipe_fd
        self.resume = resume
        self.force = force
        self.executor: Executor[Unit] = executor or LocalExecutor()
        self.events: ev.EventWriter | None = None
        self.stop_request: StopRun | None = None
        self.inner_jobs = config.search["n_jobs"]
        self.completed = 0
        self.failed = 0
        self.skipped = 0
        self.total = 0
        self.actions: "queue.Queue[tuple]" = queue.Queue()
        self.started = time.time()
        self.monitor: MemoryMonitor | None = None
        self.last_used = 0
        self.peak_used = 0
        self.writers: dict[str, ArchiveWriter] = {}
        self.run_id = uuid.uuid4().hex[:12]
        self.stop_alerted = False
        self._test_engine_balloon: bytearray | None = None

    # -- set-up ----------------------------------------------------------------

    def _prepare(self) -> tuple[dict[str, str], DataSummary, list[dict]]:
        old_meta = check_project_state(self.paths, resume=self.resume, force=self.force)
        s = self.config.search
        # One BLAS thread per worker: parallelism comes from workers and n_jobs. On a loaded
        # shared server, spinning BLAS pools turned a 1 s logistic regression into minutes.
        self.executor.warm_up(threads_per_worker=1)
        staging = self.paths.state / "data.new"
        try:
            summary, array_paths = self.executor.call(
                prepare_data, self.config.train_path, self.config.test_path, self.config.target,
                cv_folds=s["cv_folds"], test_size=s["test_size"], seed=s["seed"], directory=staging)
        except BadInputError:
            shutil.rmtree(staging, ignore_errors=True)
            _remove_if_empty(self.paths.state)
            raise
        if self.resume and old_meta and old_meta.get("data", {}).get("fingerprint") not in (None, summary.fingerprint):
            shutil.rmtree(staging, ignore_errors=True)
            raise BadInputError(
                "The train or test CSV changed since this run started, so its finished models no longer "
                "match the data. Nothing was changed. Restore the original files, or start over with --force."
            )
        if self.force:
            clear_outputs(self.paths)
        final = self.paths.state / "data"
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        array_paths = {name: str(final / Path(path).name) for name, path in array_paths.items()}
        previous: list[dict] = []
        if self.resume:
            previous = [r for r in read_report(self.paths.report) if r.get("status") == "ok"]
        return array_paths, summary, previous

    def _drop_half_done_files(self, done_keys: set[str]) -> None:
        """Model files without report rows belong to a pipeline that never finished (killed, or
        stopped mid-way): drop them, so a retrain does not archive a second copy."""
        for name in ARCHIVES:
            for stray in self.paths.models_dir(name).glob("*.joblib"):
                if stray.stem not in done_keys:
                    stray.unlink(missing_ok=True)

    def _open_storage(self, done_keys: set[str]) -> None:
        self._drop_half_done_files(done_keys)
        st = self.config.storage
        for name in ARCHIVES:
            source = self.paths.models_dir(name)
            source.mkdir(parents=True, exist_ok=True)
            writer = ArchiveWriter(self.paths.archive(name), source, batch_models=st["batch_models"],
                                   batch_bytes=st["batch_bytes"], level=st["compression_level"],
                                   on_batch=self._on_batch)
            writer.recover()
            self.writers[name] = writer

    # -- events ------------------------------------------------------------------

    def emit(self, etype: str, **data) -> None:
        if etype == ev.ALERT and data.get("message") == ev.MSG_STOPPED:
            self.stop_alerted = True
        if self.events is not None:
            self.events.emit(etype, **data)

    def _on_sample(self, sample) -> None:
        """Called from the monitor thread: decide, then hand actions to the loop."""
        used = effective_used(sample, self.limit)
        self.last_used = used
        self.peak_used = max(self.peak_used, sample.pss)
        actions = self.governor.on_sample(used, training=len(self.executor.running()))
        for action in actions:
            self.actions.put(("action", action))
        self.actions.put(("sample", sample))

    def _memory_event(self, sample) -> None:
        remaining = self.estimator.remaining_peak(
            [(u.spec.algorithm, u.spec.selector, u.spec.searcher) for u in self.pending], self.config.run["workers"])
        forecast = getattr(self.governor, "forecast", None)
        data = memory_event(sample, self.limit, self.governor.status, self.governor.peak, forecast,
                            self.completed, self.total, remaining, used=effective_used(sample, self.limit))
        nodes = getattr(self.executor, "nodes", None)  # a cluster executor: one governor per node
        if nodes is not None:
            data["nodes"] = nodes()
        self.emit(ev.MEMORY, **data)

    def _on_batch(self, batch) -> None:
        """Every batch appended to an archive: say so, with the storage statistics it changed."""
        self.emit(ev.ARCHIVE_BATCH, **batch.as_event())
        self._storage_event()

    def _storage_event(self) -> None:
        self.emit(ev.STORAGE, **live_storage_stats(self.paths.root, self.writers.values()).as_event())

    # -- the loop ----------------------------------------------------------------

    def execute(self) -> int:
        self._install_signals()
        try:
            array_paths, summary, previous = self._prepare()
        except BadInputError as exc:
            return refuse(exc, self.pipe_fd)
        self.summary = summary
        self.paths.state.mkdir(parents=True, exist_ok=True)
        os.chmod(self.paths.state, 0o700)
        self.paths.pid_file.write_text(f"{os.getpid()}\n")
        self.events = ev.EventWriter(self.paths.events, self.pipe_fd)
        status, message = "failed", ""
        try:
            status, message = self._run(array_paths, summary, previous)
        except StopRun as stop:
            status, message = stop.status, stop.message
        except DiskFullError as exc:
            status, message = "disk_full", str(exc)
        except Exception as exc:  # an engine bug: recorded with its traceback in engine.log, books closed
            import traceback

            status, message = "failed", f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        finally:
            self.executor.shutdown()
            if self.monitor is not None:
                self.monitor.stop()
        status, message = self._close_books(status, message)
        return STATUS_EXIT.get(status, EXIT_FAILED)

    def _install_signals(self) -> None:
        def handler(signum, _frame):
            self.stop_request = StopRun(
                "interrupted", f"Stopped by {signal.Signals(signum).name}. Every finished model is kept; "
                "continue with `milo run PROJECT --resume`.")
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed SSH session must not end training

    def _run(self, array_paths: dict[str, str], summary: DataSummary, previous: list[dict]) -> tuple[str, str]:
        cfg, s, mem = self.config, self.config.search, self.config.memory
        self.paths.class_results.mkdir(parents=True, exist_ok=True)
        self.report = ReportWriter(self.paths.report)
        if self.resume:
            self.report.rewrite(previous)  # failed and skipped rows are retried, so they go
        done_rows = {r["key"]: r for r in model_rows(previous)}
        self._open_storage(set(done_rows))

        self.limit = resolve_limit(mem["memory_budget"])
        self.thresholds = Thresholds(mem["warning"], mem["critical"])
        self.governor = Governor(self.limit, self.thresholds, critical_grace=mem["critical_grace"],
                                 forecast_horizon=mem["forecast_horizon"])
        space = SearchSpace.from_config(cfg)
        # The same worker baseline `milo estimate` uses; observe() corrects it from real peaks.
        self.estimator = FootprintEstimator(summary.fit_rows, summary.features, summary.n_classes,
                                            cv_folds=s["cv_folds"], n_jobs=s["n_jobs"],
                                            baseline_bytes=DEFAULT_BASELINE,
                                            forest_trees=space.largest("rf", "n_estimators", FOREST_TREES))

        pipelines = enumerate_pipelines(cfg)
        smallest = min_class_count(map_arrays({"y": array_paths["y_fit"]})["y"])  # k-NN's MILO-ML draws
        per_pipeline = {p.name: models_per_pipeline(p, s["scorers"], s["top_k"], space, smallest)
                        for p in pipelines}
        main_total = sum(per_pipeline.values())
        self.search_plan = search_plan(pipelines, space, s["scorers"], s["top_k"], s["cv_folds"], smallest)
        do_ovr = summary.n_classes > 2 and s["reoptimize_ovr"]
        ovr_total = main_total * summary.n_classes if do_ovr else 0
        self.total = main_total + ovr_total
        self.completed = sum(1 for r in done_rows.values())
        self.pending: list[Unit] = []
        self.template = dict(
            scorers=s["scorers"], top_k=s["top_k"], cv_folds=s["cv_folds"],
            space=space, seed=s["seed"], class_labels=summary.class_labels,
            class_values=summary.class_values, rest_label=summary.rest_label,
            feature_names=summary.feature_names, arrays=array_paths, class_results_dir=str(self.paths.class_results))
        self._write_metadata("running", "")
        self.emit(ev.RUN_STARTED, project=str(self.paths.root), run_id=self.run_id, resume=self.resume,
                  pid=os.getpid(), class_type=summary.class_type, class_labels=summary.class_labels,
                  pipelines=len(pipelines), total_models=self.total,
                  phases={"main": main_total, "ovr": ovr_total}, already_done=self.completed,
                  memory_limit_bytes=self.limit.bytes, memory_limit_source=self.limit.source,
                  config=cfg.as_dict())
        dropped = summary.dropped_rows
        if dropped["train"] or dropped["test"]:
            self.emit(ev.LOG, level="warning", message=(
                f"Dropped rows with missing values: {dropped['train']} of the train CSV and "
                f"{dropped['test']} of the test CSV ({summary.train_rows} and {summary.test_rows} remain)."))
        self.monitor = MemoryMonitor(os.getpid(), mem["sample_interval"], self._on_sample,
                                     roles=self._roles)
        self.monitor.start()
        deadline = time.monotonic() + 10
        while self.monitor.samples == 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # no admission decision before the first reading of memory

        # Phase 1: every main model.
        self.emit(ev.PHASE_CHANGED, phase="main", class_index=None, class_label=None)
        self.pending = [Unit("main", p, model_keys(p, s["scorers"], s["top_k"])[: per_pipeline[p.name]])
                        for p in pipelines]
        self.pending = [u for u in self.pending if not all(k in done_rows for k in u.keys)]
        self._train_all()

        # Phase 2: resource check, then OvR models class by class.
        if do_ovr:
            main_rows = [r for r in model_rows(read_report(self.paths.report)) if r["phase"] == "main"]
            # Only main models that finished get OvR refits: the plan shrinks by the ones that did not.
            self.total -= ovr_total - len(main_rows) * summary.n_classes
            ovr_total = len(main_rows) * summary.n_classes
            self.emit(ev.PHASE_CHANGED, phase="ovr_check", class_index=None, class_label=None)
            # The phase's projected peak: its heaviest pipelines running on every worker at once.
            estimate = self.estimator.remaining_peak(
                [(r["algorithm"], r["feature_selector"], r["searcher"]) for r in main_rows], cfg.run["workers"])
            self.last_used = effective_used(sample_tree(os.getpid(), self._roles()), self.limit)  # fresh, not the last tick
            verdict, text = ovr_check(estimate, self.last_used, self.limit, self.thresholds, mem["ovr_policy"])
            self.emit(ev.ALERT, level="info" if verdict == "proceed" else "warning",
                      message=text, detail=f"projected OvR peak {format_size(estimate)}")
            if verdict == "stop":
                raise StopRun("stopped_memory", text)
            if verdict == "skip":
                self.total -= ovr_total
                do_ovr = False
        if do_ovr:
            done_now = {r["key"] for r in model_rows(read_report(self.paths.report))}
            by_pipeline: dict[str, list[dict]] = {}
            for row in main_rows:
                by_pipeline.setdefault(row["key"].rsplit("__", 2)[0], []).append(row)
            from milo_tui.engine.worker import params_from_json

            for class_index, label in enumerate(summary.class_labels):
                self.emit(ev.PHASE_CHANGED, phase="ovr", class_index=class_index, class_label=label)
                self.pending = []
                for spec in pipelines:
                    params = {ovr_key(r["key"], class_index): params_from_json(r["best_params"])
                              for r in by_pipeline.get(spec.name, [])}
                    todo = {k: v for k, v in params.items() if k not in done_now}
                    if todo:
                        self.pending.append(Unit("ovr", spec, list(todo), class_index, todo))
                self._train_all()

        self.emit(ev.PHASE_CHANGED, phase="archiving", class_index=None, class_label=None)
        self._flush_archives()
        if self.failed or self.skipped:
            return "completed", (f"Finished with {self.failed} failed and {self.skipped} skipped models "
                                 "(reasons in report.csv and the event log).")
        return "completed", "All models trained and archived."

    def _roles(self) -> dict[int, str]:
        return {os.getpid(): ProcessRole.ENGINE.value, **self.executor.resources().roles()}

    def _check_journal(self) -> None:
        error = self.events.journal_error if self.events is not None else None
        if error is not None:
            raise DiskFullError(
                f"events.jsonl could not be written ({error.strerror or error}). Every finished model is "
                "kept. Free some space (df -h shows how much is left) and run `milo run PROJECT --resume`."
            )

    def _train_all(self) -> None:
        workers = self.config.run["workers"]
        while self.pending or self.executor.running():
            if self.stop_request is not None:
                raise self.stop_request
            self._check_journal()
            self._handle_actions()
            while self.pending and len(self.executor.running()) < workers:
                if not self._start_next():
                    break
            for handle, outcome in self.executor.wait(timeout=0.2):
                self._finish(handle, outcome)

    def _start_next(self) -> bool:
        unit = self.pending[0]
        unit.estimate = self.estimator.estimate(unit.spec.algorithm, unit.spec.selector, unit.spec.searcher)
        verdict, reason = self.governor.decide(unit.estimate, self.last_used,
                                               others_running=bool(self.executor.running()))
        if verdict == "wait":  # red, or it fits only once the running models have finished
            return False
        self.pending.pop(0)
        if verdict == "skip":
            self._record_failure(unit, "skipped", f"memory: {reason}")
            return True
        archive = "main_models" if unit.phase == "main" else "ovr_models"
        n_jobs = 1 if unit.attempt > 1 else self.inner_jobs
        task = TrainTask(phase=unit.phase, spec=unit.spec, n_jobs=n_jobs,
                         models_dir=str(self.paths.models_dir(archive)), archive=archive,
                         class_index=unit.class_index, ovr_params=unit.ovr_params,
                         attempt=unit.attempt, **self.template)
        handle = self.executor.start(task, unit)
        self.emit(ev.MODEL_STARTED, pipeline=unit.spec.name, phase=unit.phase, class_index=unit.class_index,
                  worker_pid=handle.pid, host=handle.host, estimate_bytes=unit.estimate, completed=self.completed,
                  total=self.total, keys=unit.keys, attempt=unit.attempt)
        return True

    def _finish(self, handle: TaskHandle[Unit], outcome: Outcome) -> None:
        unit = handle.unit
        if outcome.kind is OutcomeKind.OK:
            self._accept(unit, outcome)
        elif outcome.kind is OutcomeKind.DISK_FULL:
            raise DiskFullError(outcome.message)
        elif outcome.kind is OutcomeKind.KILLED and outcome.killed and outcome.killed.kind is KillKind.MEMORY:
            verdict, how = self.governor.after_kill(self._unit_id(unit), unit.estimate)
            if verdict == "retry":
                unit.attempt += 1
                self.emit(ev.LOG, level="warning", message=f"{unit.spec.name}: {outcome.failure_text}; {how}")
                self.pending.insert(0, unit)
            else:
                self._record_failure(unit, "skipped", f"{outcome.failure_text}; {how}")
        else:
            if outcome.traceback:
                print(f"{unit.spec.name} failed:\n{outcome.traceback}", file=sys.stderr, flush=True)
            self._record_failure(unit, "failed", outcome.failure_text)
        gc.collect()
        for action in self.governor.after_model():
            self.actions.put(("action", action))

    def _accept(self, unit: Unit, outcome: Outcome) -> None:
        rows = outcome.result["rows"]
        self.report.append(rows)
        models = [r for r in rows if r.get("archive")]
        if outcome.peak_memory_bytes is not None:
            self.estimator.observe(unit.spec.algorithm, outcome.peak_memory_bytes)
        for row in models:
            self.completed += 1
            self.emit(ev.MODEL_FINISHED, key=row["key"], pipeline=unit.spec.name, phase=unit.phase,
                      class_type=row["class_type"], class_index=unit.class_index,
                      metrics={k: row.get(k) for k in ("accuracy", "roc_auc", "avg_sn_sp", "sensitivity",
                                                       "specificity", "f1", "mcc", "brier_score")},
                      train_seconds=row["train_seconds"], peak_memory_mb=row["peak_memory_mb"],
                      model_bytes=row["model_bytes"], completed=self.completed, total=self.total)
            self.writers[row["archive"]].add(row["key"])
        self._maybe_test_balloon()

    def _maybe_test_balloon(self) -> None:
        """Test hook: MILO_TEST_ENGINE_BALLOON="N:MB" makes the engine itself hold MB once N models
        have finished, like a leak no cleanup can recover: drives the OvR check and the safe stop."""
        spec = os.environ.get("MILO_TEST_ENGINE_BALLOON")
        if not spec or self._test_engine_balloon is not None:
            return
        after, _, megabytes = spec.partition(":")
        if self.completed >= int(after):
            balloon = bytearray(int(megabytes) * 1024 * 1024)
            for i in range(0, len(balloon), 4096):
                balloon[i] = 1
            self._test_engine_balloon = balloon

    def _record_failure(self, unit: Unit, status: str, reason: str) -> None:
        if status == "skipped":
            self.skipped += len(unit.keys)
        else:
            self.failed += len(unit.keys)
        self.report.append([{"key": k, "phase": unit.phase, "status": status, "reason": reason,
                             "scaler": unit.spec.scaler, "feature_selector": unit.spec.selector,
                             "algorithm": unit.spec.algorithm, "searcher": unit.spec.searcher,
                             "class_index": unit.class_index if unit.class_index is not None else ""}
                            for k in unit.keys])
        etype = ev.MODEL_SKIPPED if status == "skipped" else ev.MODEL_FAILED
        self.emit(etype, pipeline=unit.spec.name, keys=unit.keys, phase=unit.phase,
                  class_index=unit.class_index, reason=reason, completed=self.completed, total=self.total)

    def _handle_actions(self) -> None:
        # A cluster executor's node governors decide too (alerts naming the node, a safe stop).
        for action in getattr(self.executor, "drain_actions", list)():
            self.actions.put(("action", action))
        while True:
            try:
                kind, item = self.actions.get_nowait()
            except queue.Empty:
                return
            if kind == "sample":
                self._memory_event(item)
                if self.governor.status == RED:
                    self._police_workers(item)
                continue
            name = type(item).__name__
            if name == "Alert":
                self.emit(ev.ALERT, **item.as_event())
            elif name == "Cleanup":
                report = run_cleanup(item.level, temp_roots=self._temp_roots())
                self.emit(ev.CLEANUP, **report.as_event())
            elif name == "SetInnerJobs":
                self.inner_jobs = item.n_jobs if item.n_jobs else self.config.search["n_jobs"]
            elif name == "StopRun":
                raise StopRun("stopped_memory", f"{ev.MSG_STOPPED}: {item.reason}. Every finished model is "
                              "archived; free memory or raise memory_budget, then `milo run PROJECT --resume`.")

    def _temp_roots(self) -> list[Path]:
        roots = [Path(tempfile.gettempdir())]
        shm = Path("/dev/shm")
        if shm.is_dir():
            roots.append(shm)
        return roots

    @staticmethod
    def _unit_id(unit: Unit) -> str:
        return unit.spec.name if unit.class_index is None else f"{unit.spec.name}@class{unit.class_index}"

    def _police_workers(self, sample) -> None:
        """Red: kill the largest worker once the tree passes the kill line."""
        by_pid = {p.pid: p.pss for p in sample.processes}
        trees: dict[int, int] = {}
        host = socket.gethostname()  # pids are per machine: a cluster node's workers are its own governor's
        handles = {pid: h for pid, h in self.executor.resources().workers().items() if h.host == host}
        for pid in handles:
            try:
                members = [pid] + [c.pid for c in psutil.Process(pid).children(recursive=True)]
            except psutil.Error:
                continue
            trees[pid] = sum(by_pid.get(member, 0) for member in members)
        used = effective_used(sample, self.limit)
        victim = self.governor.runaway(used, trees)
        if victim is None:
            return
        unit = handles[victim].unit
        allowance = self.governor.worker_allowance(used, trees[victim])
        self.executor.kill(handles[victim], KillReason(KillKind.MEMORY, (
            f"the worker used {format_size(trees[victim])}, over its allowance of "
            f"{format_size(allowance)} (estimate {format_size(unit.estimate)}, "
            f"{format_size(self.limit.bytes)} {self.limit.source} limit)")))

    # -- closing -------------------------------------------------------------------

    def _flush_archives(self) -> None:
        for writer in self.writers.values():
            writer.flush()
        self._storage_event()

    def _close_books(self, status: str, message: str) -> tuple[str, str]:
        """Whatever happened: archive what finished, write metadata, say run_finished."""
        if status == "stopped_memory" and not self.stop_alerted:
            self.emit(ev.ALERT, level="emergency", message=ev.MSG_STOPPED, detail=message)
        if status != "completed":
            try:
                self._drop_half_done_files({r["key"] for r in model_rows(read_report(self.paths.report))})
                self._flush_archives()
            except DiskFullError as exc:
                status, message = "disk_full", str(exc)
            except Exception as exc:  # keep closing the books; the files stay on disk for --resume
                message += f" (archiving failed: {exc})"
        best = None
        try:
            ranked = sort_best_first(model_rows(read_report(self.paths.report)))
            if ranked:
                top = ranked[0]
                best = {k: top.get(k) for k in ("key", "avg_sn_sp", "sensitivity", "f1")}
        except Exception:
            pass
        try:
            self._write_metadata(status, message)
        except Exception as exc:
            message += f" (metadata.json could not be written: {exc})"
        self.emit(ev.RUN_FINISHED, status=status, exit_code=STATUS_EXIT.get(status, EXIT_FAILED),
                  models_completed=self.completed, models_failed=self.failed, models_skipped=self.skipped,
                  seconds=round(time.time() - self.started, 3), best=best, message=message)
        for writer in self.writers.values():
            writer.close()
        if self.events is not None:
            self.events.close()
        self.paths.pid_file.unlink(missing_ok=True)
        return status, message

    def _write_metadata(self, status: str, message: str) -> None:
        import platform
        from importlib.metadata import PackageNotFoundError, version

        def installed(name: str) -> str | None:  # without importing it into the engine
            try:
                return version(name)
            except PackageNotFoundError:
                return None

        summary = self.summary
        storage = None
        try:
            storage = project_storage_stats(self.paths.root).as_event()
        except Exception:
            pass
        meta = {
            "status": status, "message": message, "run_id": self.run_id,
            "started": datetime.fromtimestamp(self.started, timezone.utc).isoformat(),
            "finished": None if status == "running" else datetime.now(timezone.utc).isoformat(),
            "resumed": self.resume, "host": socket.gethostname(),
            "config": self.config.as_dict(),
            "data": summary.as_dict(),
            "versions": {"milo_tui": __version__, "python": platform.python_version(),
                         **{name: installed(name) for name in ("scikit-learn", "numpy", "scipy", "pandas", "joblib")}},
            "counts": {"completed": self.completed, "failed": self.failed, "skipped": self.skipped,
                       "total": self.total},
            "memory": {"limit_bytes": getattr(getattr(self, "limit", None), "bytes", None),
                       "limit_source": getattr(getattr(self, "limit", None), "source", None),
                       "peak_bytes": self.peak_used},
            "storage": storage,
            "search": getattr(self, "search_plan", None),  # candidates and CV fits per pipeline
        }
        atomic_write_json(self.paths.metadata, meta)
