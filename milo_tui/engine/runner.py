"""One training run, top to bottom: lock the project, prepare, plan, train the phases, close the books.

Everything the outside world learns comes from events (milo_tui.events). The
loop never holds a fitted model: workers save them and send back metrics. The
parts it drives each have one job:

- projectlock.ProjectLock: one engine per project, taken before anything else
- books: may a run start here; metadata.json and run_finished at the end
- resume: on --resume, trust only models the archives prove
- plan: what to train in which order (pure)
- executor: where a task runs (the Executor protocol; LocalExecutor here)
- policer: the memory monitor and governor, and carrying out their actions
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
import sys
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path

from milo_tui import events as ev
from milo_tui.config import Config, format_size
from milo_tui.engine import books, resume
from milo_tui.engine.books import Counts, RunEnd
from milo_tui.engine.data import DataSummary, map_arrays, prepare_data
from milo_tui.engine.foldcache import DIRECTORY_NAME as FOLD_CACHE, remove_cache
from milo_tui.engine.executor import Executor, KillKind, LocalExecutor, Outcome, OutcomeKind, TaskHandle
from milo_tui.engine.hooks import EngineHooks
from milo_tui.engine.plan import Plan, Unit, make_plan, ovr_units
from milo_tui.engine.policer import MemoryPolicer, MemoryStop, Progress
from milo_tui.engine.report import ReportWriter, model_rows, read_report, sort_best_first
from milo_tui.engine.space import min_class_count
from milo_tui.engine.worker import TrainTask, params_from_json
from milo_tui.engine.workmeter import WorkMeter
from milo_tui.errors import EXIT_FAILED, BadInputError, DiskFullError
from milo_tui.keys import METRIC_NAMES, RunStatus
from milo_tui.memory.estimate import DEFAULT_BASELINE, FOREST_TREES, FootprintEstimator
from milo_tui.memory.limits import resolve_limit
from milo_tui.projectlock import ProjectLock
from milo_tui.storage.archive import ArchiveWriter
from milo_tui.storage.stats import live_storage_stats, project_storage_stats

ARCHIVES = ("main_models", "ovr_models")
refuse = books.refuse  # `python -m milo_tui.engine` refuses a bad config with it


@dataclass(frozen=True)
class Prepared:
    """What set-up hands the phases: the data on disk and what an earlier run left."""

    arrays: dict[str, str]
    summary: DataSummary
    previous: list[dict]  # ok rows of report.csv (resume), before they are checked against the archives


class Run:
    def __init__(self, config: Config, *, pipe_fd: int | None = None, resume: bool = False,
                 force: bool = False, executor: Executor[Unit] | None = None) -> None:
        self.config = config
        self.paths = config.project
        self.pipe_fd = pipe_fd
        self.resume = resume
        self.force = force
        self.executor: Executor[Unit] = executor or LocalExecutor()
        self.lock = ProjectLock(self.paths)
        self.hooks = EngineHooks()
        self.events: ev.EventWriter | None = None
        self.stop_request: RunEnd | None = None
        self.counts = Counts()
        self.pending: list[Unit] = []
        self.started = time.time()
        self.run_id = uuid.uuid4().hex[:12]
        self.writers: dict[str, ArchiveWriter] = {}
        self.archived_before: set[str] = set()  # verified in an archive when the run began: never archived twice
        self.summary: DataSummary | None = None
        self.plan: Plan | None = None
        self.meter: WorkMeter | None = None  # worker-seconds done and left, sent with every model event (the ETA)
        self.policer: MemoryPolicer | None = None
        self.stop_alerted = False

    # -- the whole run ------------------------------------------------------------------------

    def execute(self) -> int:
        try:
            self.lock.acquire()  # before anything of the project is read or written
        except BadInputError as exc:
            return books.refuse(exc, self.pipe_fd)
        try:
            self._install_signals()
            try:
                prepared = self._prepare()
            except BadInputError as exc:
                return books.refuse(exc, self.pipe_fd)
            self.events = ev.EventWriter(self.paths.events, self.pipe_fd)
            status, message = self._run_guarded(prepared)
            status, message = self._close_books(status, message)
            return books.STATUS_EXIT.get(status, EXIT_FAILED)
        finally:
            self.lock.release()

    def _run_guarded(self, prepared: Prepared) -> tuple[RunStatus, str]:
        """The phases; whatever ends them becomes a status and a message."""
        try:
            return self._run(prepared)
        except RunEnd as end:
            return end.status, end.message
        except MemoryStop as stop:
            return RunStatus.STOPPED_MEMORY, str(stop)
        except DiskFullError as exc:
            return RunStatus.DISK_FULL, str(exc)
        except Exception as exc:  # an engine bug: its traceback goes to engine.log, the books still close
            traceback.print_exc()
            return RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
        finally:
            self.executor.shutdown()
            if self.policer is not None:
                self.policer.stop()

    def _install_signals(self) -> None:
        def handler(signum, _frame):
            self.stop_request = RunEnd(
                RunStatus.INTERRUPTED, f"Stopped by {signal.Signals(signum).name}. Every finished model is kept; "
                "continue with `milo run PROJECT --resume`.")
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed SSH session must not end training

    # -- set-up: nothing is written to the project before every check passed --------------------

    def _prepare(self) -> Prepared:
        old_meta = books.check_project_state(self.paths, resume=self.resume, force=self.force)
        previous = []
        if self.resume:
            previous = [r for r in read_report(self.paths.report) if r.get("status") == "ok"]
            resume.refuse_without_report(self.paths)
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
            raise
        if self.resume and old_meta and old_meta.get("data", {}).get("fingerprint") not in (None, summary.fingerprint):
            shutil.rmtree(staging, ignore_errors=True)
            raise BadInputError(
                "The train or test CSV changed since this run started, so its finished models no longer "
                "match the data. Nothing was changed. Restore the original files, or start over with --force."
            )
        if self.force:
            books.clear_outputs(self.paths)
            remove_cache(self.paths.state / FOLD_CACHE)  # an optimisation only, but --force means clean
        final = self.paths.state / "data"
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        os.chmod(self.paths.state, 0o700)
        arrays = {name: str(final / Path(path).name) for name, path in array_paths.items()}
        return Prepared(arrays, summary, previous)

    def _open_storage(self, previous: list[dict]) -> list[str]:
        """Open both archives (recovering them); on --resume keep only the report rows they prove.

        Returns what recovery did, one sentence each, for the journal and the screen."""
        self._drop_half_done_files({r["key"] for r in model_rows(previous)})
        st = self.config.storage
        notes: list[str] = []
        for name in ARCHIVES:
            source = self.paths.models_dir(name)
            source.mkdir(parents=True, exist_ok=True)
            writer = ArchiveWriter(self.paths.archive(name), source, batch_models=st["batch_models"],
                                   batch_bytes=st["batch_bytes"], level=st["compression_level"],
                                   on_batch=self._on_batch)
            notes += resume.describe_recovery(writer.recover())
            self.writers[name] = writer
        self.report = ReportWriter(self.paths.report)
        if not self.resume:
            return notes
        proven: set[str] = set()
        for name in ARCHIVES:
            verified = resume.verified_in_archive(self.paths.archive(name))
            self.archived_before |= verified
            proven |= verified | resume.waiting_files(self.paths.models_dir(name))
        check = resume.reconcile(previous, proven)
        self.report.rewrite(check.kept_rows)  # failed and skipped rows are retried, so they go too
        if check.requeued:  # files of pipelines trained again go, and the writers forget them
            self._drop_half_done_files({r["key"] for r in model_rows(check.kept_rows)})
            for writer in self.writers.values():
                writer.recover()
        return notes + check.notes

    def _drop_half_done_files(self, done_keys: set[str]) -> None:
        """Model files without report rows belong to a pipeline that never finished (killed, or
        stopped mid-way): drop them, so a retrain does not archive a second copy."""
        for name in ARCHIVES:
            for stray in self.paths.models_dir(name).glob("*.joblib"):
                if stray.stem not in done_keys:
                    stray.unlink(missing_ok=True)

    # -- the phases --------------------------------------------------------------------------

    def _run(self, prepared: Prepared) -> tuple[RunStatus, str]:
        summary, s = prepared.summary, self.config.search
        self.summary = summary
        self.paths.class_results.mkdir(parents=True, exist_ok=True)
        recovery_notes = self._open_storage(prepared.previous)
        done = {r["key"] for r in model_rows(read_report(self.paths.report))}
        smallest = min_class_count(map_arrays({"y": prepared.arrays["y_fit"]})["y"])  # k-NN's MILO-ML draws
        # Planning counts each search's fits with scikit-learn's samplers and estimators: in a child,
        # so the engine never imports scikit-learn (~80 MiB it would hold for the whole run).
        plan = self.executor.call(make_plan, self.config, summary.n_classes, done, smallest_class=smallest,
                                  fit_rows=summary.fit_rows, features=summary.features)
        self.plan = plan
        self.counts = Counts(completed=plan.already_done, total=plan.total)
        self.meter = WorkMeter.for_plan(plan)
        self.template = dict(
            scorers=s["scorers"], top_k=s["top_k"], cv_folds=s["cv_folds"],
            space=plan.space, seed=s["seed"], class_labels=summary.class_labels,
            class_values=summary.class_values, rest_label=summary.rest_label,
            feature_names=summary.feature_names, arrays=prepared.arrays,
            class_results_dir=str(self.paths.class_results),
            fold_cache=str(self.paths.state / FOLD_CACHE))  # kept across stop/--resume, gone when complete
        self._start_policer(summary, plan)
        self._write_metadata(RunStatus.RUNNING, "")
        self._announce(plan, summary, recovery_notes)
        self.policer.start()

        self.emit(ev.PHASE_CHANGED, phase="main", class_index=None, class_label=None)
        self._train_phase(plan.main_units)
        if plan.ovr:
            self._ovr_phases(plan, summary)

        self.emit(ev.PHASE_CHANGED, phase="archiving", class_index=None, class_label=None)
        self._flush_archives()
        if self.counts.failed or self.counts.skipped:
            return RunStatus.COMPLETED, (f"Finished with {self.counts.failed} failed and {self.counts.skipped} "
                                         "skipped models (reasons in report.csv and the event log).")
        return RunStatus.COMPLETED, "All models trained and archived."

    def _start_policer(self, summary: DataSummary, plan: Plan) -> None:
        s, mem = self.config.search, self.config.memory
        # The same worker baseline `milo estimate` uses; observe() corrects it from real peaks.
        estimator = FootprintEstimator(summary.fit_rows, summary.features, summary.n_classes,
                                       cv_folds=s["cv_folds"], n_jobs=s["n_jobs"], baseline_bytes=DEFAULT_BASELINE,
                                       forest_trees=plan.space.largest("rf", "n_estimators", FOREST_TREES))
        self.policer = MemoryPolicer(mem, resolve_limit(mem["memory_budget"]), self.executor, estimator,
                                     workers=self.config.run["workers"], n_jobs=s["n_jobs"], emit=self.emit,
                                     progress=lambda: Progress(self.counts.completed, self.counts.total, self.pending))

    def _announce(self, plan: Plan, summary: DataSummary, recovery_notes: list[str]) -> None:
        limit = self.policer.limit
        self.emit(ev.RUN_STARTED, project=str(self.paths.root), run_id=self.run_id, resume=self.resume,
                  pid=os.getpid(), class_type=summary.class_type, class_labels=summary.class_labels,
                  pipelines=len(plan.pipelines), total_models=plan.total,
                  phases={"main": plan.main_total, "ovr": plan.ovr_total}, already_done=plan.already_done,
                  work_done=self.meter.done, work_total=self.meter.total,
                  memory_limit_bytes=limit.bytes, memory_limit_source=limit.source, config=self.config.as_dict())
        if recovery_notes:
            self.emit(ev.ALERT, level="warning", message="Resume repaired the project before training",
                      detail="; ".join(recovery_notes))
        dropped = summary.dropped_rows
        if dropped["train"] or dropped["test"]:
            self.emit(ev.LOG, level="warning", message=(
                f"Dropped rows with missing values: {dropped['train']} of the train CSV and "
                f"{dropped['test']} of the test CSV ({summary.train_rows} and {summary.test_rows} remain)."))

    def _ovr_phases(self, plan: Plan, summary: DataSummary) -> None:
        """A resource check, then one binary refit per finished main model, class by class."""
        main_rows = [r for r in model_rows(read_report(self.paths.report)) if r["phase"] == "main"]
        # Only main models that finished get OvR refits: the plan shrinks by the ones that did not.
        ovr_total = len(main_rows) * summary.n_classes
        self.counts.total -= plan.ovr_total - ovr_total
        self.meter.expect_ovr([r["key"] for r in main_rows], summary.n_classes)
        self.emit(ev.PHASE_CHANGED, phase="ovr_check", class_index=None, class_label=None)
        verdict, text, estimate = self.policer.ovr_check(
            [(r["algorithm"], r["feature_selector"], r["searcher"]) for r in main_rows])
        self.emit(ev.ALERT, level="info" if verdict == "proceed" else "warning",
                  message=text, detail=f"projected OvR peak {format_size(estimate)}")
        if verdict == "stop":
            raise RunEnd(RunStatus.STOPPED_MEMORY, text)
        if verdict == "skip":
            self.counts.total -= ovr_total
            self.meter.expect_ovr([], summary.n_classes)
            return
        done = {r["key"] for r in model_rows(read_report(self.paths.report))}
        main_params = {r["key"]: params_from_json(r["best_params"]) for r in main_rows}
        for class_index, label in enumerate(summary.class_labels):
            self.emit(ev.PHASE_CHANGED, phase="ovr", class_index=class_index, class_label=label)
            self._train_phase(ovr_units(plan.pipelines, main_params, class_index, done))

    def _train_phase(self, units: list[Unit]) -> None:
        """Start units as workers and memory allow; take each outcome as it comes."""
        self.pending = list(units)
        workers = self.config.run["workers"]
        while self.pending or self.executor.running():
            if self.stop_request is not None:
                raise self.stop_request
            self._check_journal()
            self.policer.carry_out()
            while self.pending and len(self.executor.running()) < workers:
                if not self._start_next():
                    break
            for handle, outcome in self.executor.wait(timeout=0.2):
                self._finish(handle, outcome)

    def _start_next(self) -> bool:
        """Start the next unit, skip it, or leave it waiting (returns False: nothing more starts now)."""
        unit = self.pending[0]
        verdict, reason = self.policer.admit(unit)
        if verdict == "wait":  # red, or it fits only once the running models have finished
            return False
        self.pending.pop(0)
        if verdict == "skip":
            self._record_failure(unit, "skipped", f"memory: {reason}")
            return True
        task = TrainTask(phase=unit.phase, spec=unit.spec, n_jobs=self.policer.n_jobs_for(unit),
                         models_dir=str(self.paths.models_dir(unit.archive)), archive=unit.archive,
                         class_index=unit.class_index, ovr_params=unit.ovr_params,
                         attempt=unit.attempt, **self.template)
        handle = self.executor.start(task, unit)
        self.emit(ev.MODEL_STARTED, pipeline=unit.spec.name, phase=unit.phase, class_index=unit.class_index,
                  worker_pid=handle.pid, host=handle.host, estimate_bytes=unit.estimate, completed=self.counts.completed,
                  total=self.counts.total, keys=unit.keys, attempt=unit.attempt)
        return True

    def _finish(self, handle: TaskHandle[Unit], outcome: Outcome) -> None:
        unit = handle.unit
        seconds = time.monotonic() - handle.started  # what the work meter learns the estimate's error from
        match outcome.kind:
            case OutcomeKind.OK:
                self.policer.observe(unit, outcome.peak_memory_bytes)
                self._accept(unit, outcome.result["rows"], seconds)
            case OutcomeKind.DISK_FULL:
                raise DiskFullError(outcome.message)
            case OutcomeKind.KILLED if outcome.killed is not None and outcome.killed.kind is KillKind.MEMORY:
                self._killed_for_memory(unit, outcome, seconds)
            case _:
                if outcome.traceback:
                    print(f"{unit.spec.name} failed:\n{outcome.traceback}", file=sys.stderr, flush=True)
                self._record_failure(unit, "failed", outcome.failure_text, seconds)
        gc.collect()
        self.policer.after_model()

    def _killed_for_memory(self, unit: Unit, outcome: Outcome, seconds: float) -> None:
        verdict, how = self.policer.after_kill(unit)
        if verdict == "retry":
            self.meter.finished(unit, 0, seconds)  # time spent, nothing done: it is still to train
            unit.attempt += 1
            self.emit(ev.LOG, level="warning", message=f"{unit.spec.name}: {outcome.failure_text}; {how}")
            self.pending.insert(0, unit)
        else:
            self._record_failure(unit, "skipped", f"{outcome.failure_text}; {how}", seconds)

    def _accept(self, unit: Unit, rows: list[dict], seconds: float) -> None:
        self.meter.finished(unit, len(unit.keys), seconds)
        self.report.append(rows)
        for row in (r for r in rows if r.get("archive")):
            self.counts.completed += 1
            self.emit(ev.MODEL_FINISHED, key=row["key"], pipeline=unit.spec.name, phase=unit.phase,
                      class_type=row["class_type"], class_index=unit.class_index,
                      metrics={name: row.get(name) for name in METRIC_NAMES},
                      train_seconds=row["train_seconds"], peak_memory_mb=row["peak_memory_mb"],
                      model_bytes=row["model_bytes"], completed=self.counts.completed, total=self.counts.total,
                      work_done=self.meter.done, work_total=self.meter.total)
            self._archive(row["archive"], row["key"])
        self.hooks.model_finished(self.counts.completed)

    def _archive(self, archive: str, key: str) -> None:
        if key in self.archived_before:
            # Retrained with its pipeline after a resume; the archive already holds this model, verified.
            (self.paths.models_dir(archive) / f"{key}.joblib").unlink(missing_ok=True)
            return
        self.writers[archive].add(key)

    def _record_failure(self, unit: Unit, what: str, reason: str, seconds: float = 0.0) -> None:
        self.meter.finished(unit, len(unit.keys), seconds)
        if what == "skipped":
            self.counts.skipped += len(unit.keys)
        else:
            self.counts.failed += len(unit.keys)
        self.report.append([{"key": k, "phase": unit.phase, "status": what, "reason": reason,
                             "scaler": unit.spec.scaler, "feature_selector": unit.spec.selector,
                             "algorithm": unit.spec.algorithm, "searcher": unit.spec.searcher,
                             "class_index": unit.class_index if unit.class_index is not None else ""}
                            for k in unit.keys])
        etype = ev.MODEL_SKIPPED if what == "skipped" else ev.MODEL_FAILED
        self.emit(etype, pipeline=unit.spec.name, keys=unit.keys, phase=unit.phase,
                  class_index=unit.class_index, reason=reason, completed=self.counts.completed,
                  total=self.counts.total, work_done=self.meter.done, work_total=self.meter.total)

    def _check_journal(self) -> None:
        error = self.events.journal_error if self.events is not None else None
        if error is not None:
            raise DiskFullError(
                f"events.jsonl could not be written ({error.strerror or error}). Every finished model is "
                "kept. Free some space (df -h shows how much is left) and run `milo run PROJECT --resume`."
            )

    # -- events --------------------------------------------------------------------------------

    def emit(self, etype: str, **data) -> None:
        if etype == ev.ALERT and data.get("message") == ev.MSG_STOPPED:
            self.stop_alerted = True
        if self.events is not None:
            self.events.emit(etype, **data)

    def _on_batch(self, batch) -> None:
        """Every batch appended to an archive: say so, with the storage statistics it changed."""
        self.emit(ev.ARCHIVE_BATCH, **batch.as_event())
        self._storage_event()

    def _storage_event(self) -> None:
        self.emit(ev.STORAGE, **live_storage_stats(self.paths.root, self.writers.values()).as_event())

    # -- closing the books -----------------------------------------------------------------------

    def _flush_archives(self) -> None:
        for writer in self.writers.values():
            writer.flush()
        self._storage_event()

    def _close_books(self, status: RunStatus, message: str) -> tuple[RunStatus, str]:
        """Whatever happened: archive what finished, write metadata, say run_finished."""
        if status is RunStatus.STOPPED_MEMORY and not self.stop_alerted:
            self.emit(ev.ALERT, level="emergency", message=ev.MSG_STOPPED, detail=message)
        if status is not RunStatus.COMPLETED:
            try:
                self._drop_half_done_files({r["key"] for r in model_rows(read_report(self.paths.report))})
                self._flush_archives()
            except DiskFullError as exc:
                status, message = RunStatus.DISK_FULL, str(exc)
            except Exception as exc:  # keep closing the books; the files stay on disk for --resume
                message += f" (archiving failed: {exc})"
        if status is RunStatus.COMPLETED:
            remove_cache(self.paths.state / FOLD_CACHE)
        try:
            self._write_metadata(status, message)
        except Exception as exc:
            message += f" (metadata.json could not be written: {exc})"
        self.emit(ev.RUN_FINISHED, status=status.value, exit_code=books.STATUS_EXIT.get(status, EXIT_FAILED),
                  models_completed=self.counts.completed, models_failed=self.counts.failed,
                  models_skipped=self.counts.skipped, seconds=round(time.time() - self.started, 3),
                  best=self._best(), message=message)
        for writer in self.writers.values():
            writer.close()
        if self.events is not None:
            self.events.close()
        return status, message

    def _best(self) -> dict | None:
        try:
            ranked = sort_best_first(model_rows(read_report(self.paths.report)))
        except Exception:  # noqa: BLE001 - an unreadable report must not stop the books closing
            return None
        return {k: ranked[0].get(k) for k in ("key", "avg_sn_sp", "sensitivity", "f1")} if ranked else None

    def _write_metadata(self, status: RunStatus, message: str) -> None:
        storage = None
        try:
            storage = project_storage_stats(self.paths.root).as_event()
        except Exception:  # noqa: BLE001 - statistics are a nicety; the status is not
            pass
        policer = self.policer
        books.write_metadata(self.paths, books.metadata(
            status=status, message=message, run_id=self.run_id, started=self.started, resumed=self.resume,
            config=self.config.as_dict(), data=self.summary.as_dict(), counts=self.counts,
            limit=policer.limit if policer else None, peak_bytes=policer.peak_used if policer else 0,
            storage=storage, search=self.plan.search if self.plan else None))
