"""RunState: the events of one run folded into plain Python state.

Shared by both front ends: the TUI repaints from it, and `milo run --headless`
takes its ETA and "best so far" from it. No textual here (an import-linter
contract checks that); it is unit-tested on its own. The app applies event
batches to it and repaints from it at a fixed rate; `version` and the pending-row queue tell the screen
what changed since the last repaint, so widgets update only what moved.
"""

from __future__ import annotations

import math

from collections import deque
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable

from milo_tui import events as ev
from milo_tui.keys import FINAL_STATUSES, METRIC_NAMES, RunStatus, best_order_key, key_parts

MEMORY_HISTORY = 600  # samples kept for the graph (5 minutes at 2 Hz)
LOG_HISTORY = 2000
NOTABLE_LOG_LEVELS = ("warning", "error")


@dataclass
class ModelRow:
    """One row of the model browser: a model (or a per-class row of a multi-class model)."""

    key: str
    phase: str = "main"
    class_type: str = "binary"
    class_index: int | None = None
    class_label: str = ""
    scaler: str = ""
    selector: str = ""
    algorithm: str = ""
    searcher: str = ""
    scorer: str = ""
    rank: str = ""
    archive: str | None = None  # None: unknown (live event); "": owns no model file
    metrics: dict[str, float | None] = field(default_factory=dict)
    report: dict[str, str] = field(default_factory=dict)  # the full report.csv row, when read

    @property
    def is_per_class(self) -> bool:
        """A per-class row of a multi-class main model: it shares the main model's key."""
        return self.class_type == "ovr" and (self.phase == "main" or self.archive == "")

    @property
    def row_id(self) -> str:
        return f"{self.key}@{self.class_index}" if self.is_per_class else self.key

    @property
    def kind(self) -> str:
        """What the phase filter matches: "main", "per-class" or "ovr"."""
        if self.is_per_class:
            return "per-class"
        return "ovr" if self.phase == "ovr" else "main"

    @property
    def model_key(self) -> str:
        """The key of the stored model that this row describes (extraction target)."""
        return self.key

    def metric(self, name: str) -> float | None:
        value = self.metrics.get(name)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def best_order_key(self) -> tuple[float, ...]:
        """The best-model order (milo_tui.keys.BEST_ORDER; higher is better)."""
        return self._best_order

    @cached_property
    def _best_order(self) -> tuple[float, ...]:
        # Computed once per row: RunState compares every new row with the best one, and the browser
        # sorts by it. Rows are not changed once built (a newer event or report.csv row is a new row).
        return best_order_key(self.metrics)

    def search_text(self) -> str:
        return f"{self.key} {self.class_label} {self.kind}".lower()


split_key = key_parts  # `std__select-50__lr__grid__roc_auc__0[_ovr_class_2]` -> its parts, as text


def row_from_event(data: dict[str, Any], class_labels: list[str]) -> ModelRow | None:
    key = data.get("key")
    if not isinstance(key, str) or not key:
        return None
    class_index = data.get("class_index") if isinstance(data.get("class_index"), int) else None
    label = class_labels[class_index] if class_index is not None and 0 <= class_index < len(class_labels) else ""
    metrics = data.get("metrics") if isinstance(data.get("metrics"), dict) else {}
    return ModelRow(
        key=key, phase=str(data.get("phase") or "main"), class_type=str(data.get("class_type") or "binary"),
        class_index=class_index, class_label=label,
        metrics={n: _number(metrics.get(n)) for n in METRIC_NAMES}, **split_key(key),
    )


def _positive(value: Any) -> float | None:
    number = _number(value)
    return number if number is not None and number > 0 else None


def _number(value: Any) -> float | None:
    """A finite float, or None: a hostile 1e999 in an event must not crash a repaint."""
    if type(value) is float:  # the usual case, thousands of times a second during a run
        return value if math.isfinite(value) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip():
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float
            return None
        return number if math.isfinite(number) else None
    return None


_EXACT_FLOAT_INT = 2 ** 53  # up to here an int survives the float round trip below unchanged


def _int_or_none(value: Any) -> int | None:
    if type(value) is int and -_EXACT_FLOAT_INT <= value <= _EXACT_FLOAT_INT:
        return value  # the usual case (counts, bytes), several per event: no round trip through float
    number = _number(value)
    return int(number) if number is not None else None


@dataclass(frozen=True)
class LogEntry:
    ts: float
    level: str  # info / warning / critical / emergency / predictive / error
    source: str  # alert / log / run / model / cleanup / engine / reader
    message: str
    detail: str = ""


@dataclass(frozen=True)
class MemorySample:
    ts: float
    used_bytes: int
    limit_bytes: int
    percent: float


class RunState:
    """Everything the UI shows about a run, built only from events (and project files)."""

    def __init__(self, warning_share: float = 0.75, critical_share: float = 0.85) -> None:
        self.warning_share = warning_share
        self.critical_share = critical_share
        self.version = 0  # bumped by every change; the UI repaints when it moved
        self.run_id = ""
        self.project = ""
        self.engine_pid: int | None = None
        self.status: str = RunStatus.WAITING  # a RunStatus, or an unknown final status an engine sent
        self.class_type = ""
        self.class_labels: list[str] = []
        self.pipelines = 0
        self.total_models = 0
        self.already_done = 0
        self.work_total: float | None = None  # the engine's weights of models (docs/EVENTS.md, "Work")
        self.work_done = self.work_at_start = 0.0
        self.phases: dict[str, int] = {}
        self.phase = ""
        self.phase_class_label: str | None = None
        self.completed = 0
        self.failed = 0
        self.skipped = 0
        self.running: dict[str, dict[str, Any]] = {}  # pipeline -> model_started data
        self.started_ts: float | None = None
        self.first_finish_ts: float | None = None
        self.finished_in_run = 0  # model_finished events since run_started (for the rate)
        self.last_ts: float | None = None
        self.memory: dict[str, Any] = {}
        self.memory_series: deque[MemorySample] = deque(maxlen=MEMORY_HISTORY)
        self.peak_bytes = 0
        self.storage: dict[str, Any] = {}
        self.predictive_alert: LogEntry | None = None
        self.log: deque[LogEntry] = deque(maxlen=LOG_HISTORY)
        self.log_added = 0  # total entries ever appended (the log widget tails from here)
        self.models: dict[str, ModelRow] = {}
        self.pending_rows: list[str] = []  # row ids added or changed since the UI last drained
        self.best: ModelRow | None = None
        self.finished: dict[str, Any] | None = None
        self.exit_code: int | None = None
        self.engine_stderr = ""
        self.decode_errors = 0
        self.events_applied = 0

    # ----- applying events -------------------------------------------------
    def apply_batch(self, events: Iterable[ev.Event], errors: Iterable[str] = ()) -> None:
        for event in events:
            self.apply(event)
        for error in errors:
            self.decode_errors += 1
            self._add_log(self.last_ts or 0.0, "warning", "reader", f"Skipped a garbled event line: {error}")

    def apply(self, event: ev.Event) -> None:
        handler = _HANDLERS.get(event.type)
        self.events_applied += 1
        if handler is None:
            return  # forward compatible: unknown types are ignored
        self.last_ts = event.ts if self.last_ts is None else max(self.last_ts, event.ts)
        try:
            handler(self, event)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            # A payload of the right type but the wrong shape: say so, keep going.
            self._add_log(event.ts, "warning", "reader", f"Ignored a malformed {event.type} event ({exc})")
        self.version += 1

    def _on_run_started(self, event: ev.Event) -> None:
        d = event.data
        self.run_id = str(d.get("run_id", ""))
        self.project = str(d.get("project", ""))
        self.engine_pid = _int_or_none(d.get("pid"))
        self.class_type = str(d.get("class_type", ""))
        self.class_labels = [str(x) for x in d.get("class_labels") or []]
        self.pipelines = _int_or_none(d.get("pipelines")) or 0
        self.total_models = _int_or_none(d.get("total_models")) or 0
        self.phases = {str(k): int(v) for k, v in (d.get("phases") or {}).items() if _int_or_none(v) is not None}
        self.already_done = _int_or_none(d.get("already_done")) or 0
        self.work_total = _positive(d.get("work_total"))
        self.work_done = self.work_at_start = _positive(d.get("work_done")) or 0.0
        self.completed = max(self.completed, self.already_done) if d.get("resume") else self.already_done
        self.status = RunStatus.RUNNING
        self.finished = None
        self.exit_code = None
        self.started_ts = event.ts
        self.first_finish_ts = None
        self.finished_in_run = 0
        self.running.clear()
        memory = d.get("config", {}).get("memory", {}) if isinstance(d.get("config"), dict) else {}
        self.warning_share = _number(memory.get("warning")) or self.warning_share
        self.critical_share = _number(memory.get("critical")) or self.critical_share
        limit = _int_or_none(d.get("memory_limit_bytes"))
        if limit:
            self.memory.setdefault("limit_bytes", limit)
            self.memory.setdefault("limit_source", d.get("memory_limit_source", ""))
        verb = "Resumed" if d.get("resume") else "Started"
        self._add_log(event.ts, "info", "run", f"{verb} run {self.run_id}: {self.total_models} models "
                      f"({self.pipelines} pipelines, {self.class_type or 'unknown'})")

    def _on_phase_changed(self, event: ev.Event) -> None:
        self.phase = str(event.data.get("phase", ""))
        label = event.data.get("class_label")
        self.phase_class_label = str(label) if label is not None else None
        suffix = f" (class {label})" if label is not None else ""
        self._add_log(event.ts, "info", "run", f"Phase: {self.phase}{suffix}")

    def _on_model_started(self, event: ev.Event) -> None:
        d = event.data
        self.running[str(d.get("pipeline", ""))] = d
        self._update_counts(d)

    def _on_model_finished(self, event: ev.Event) -> None:
        d = event.data
        self.running.pop(str(d.get("pipeline", "")), None)
        self._update_counts(d)
        self.finished_in_run += 1
        if self.first_finish_ts is None:
            self.first_finish_ts = event.ts
        row = row_from_event(d, self.class_labels)
        if row is not None:
            self.add_model(row, prefer_existing=True)

    def _on_model_failed(self, event: ev.Event) -> None:
        self._on_model_problem(event, "failed", "warning")

    def _on_model_skipped(self, event: ev.Event) -> None:
        self._on_model_problem(event, "skipped", "info")

    def _on_model_problem(self, event: ev.Event, what: str, level: str) -> None:
        d = event.data
        self.running.pop(str(d.get("pipeline", "")), None)
        self._update_counts(d)
        keys = d.get("keys") or []
        if what == "failed":
            self.failed += max(1, len(keys))
        else:
            self.skipped += max(1, len(keys))
        self._add_log(event.ts, level, "model", f"{d.get('pipeline', '?')} {what}: {d.get('reason', '')}")

    def _update_counts(self, d: dict[str, Any]) -> None:
        completed, total = _int_or_none(d.get("completed")), _int_or_none(d.get("total"))
        if completed is not None:
            self.completed = max(self.completed, completed)
        if total:
            self.total_models = total
        work_done, work_total = _positive(d.get("work_done")), _positive(d.get("work_total"))
        if work_done is not None:
            self.work_done = max(self.work_done, work_done)
        if work_total is not None:
            self.work_total = work_total

    def _on_memory(self, event: ev.Event) -> None:
        d = event.data
        self.memory = dict(d)
        used, limit = _int_or_none(d.get("used_bytes")) or 0, _int_or_none(d.get("limit_bytes")) or 0
        percent = _number(d.get("percent"))
        if percent is None:
            percent = 100.0 * used / limit if limit else 0.0
        self.memory_series.append(MemorySample(event.ts, used, limit, percent))
        self.peak_bytes = max(self.peak_bytes, _int_or_none(d.get("peak_bytes")) or 0, used)
        total = _int_or_none(d.get("models_total"))
        if total:
            self.total_models = total
        done = _int_or_none(d.get("models_completed"))
        if done is not None:
            self.completed = max(self.completed, done)
        if d.get("seconds_to_critical") is None and d.get("seconds_to_limit") is None:
            self.predictive_alert = None  # the trend no longer points at exhaustion

    def _on_alert(self, event: ev.Event) -> None:
        d = event.data
        entry = self._add_log(event.ts, str(d.get("level", "info")), "alert", str(d.get("message", "")),
                              str(d.get("detail", "")))
        if entry.level == "predictive":
            self.predictive_alert = entry

    def _on_cleanup(self, event: ev.Event) -> None:
        d = event.data
        actions = ", ".join(str(a) for a in d.get("actions") or [])
        freed = _int_or_none(d.get("freed_bytes")) or 0
        self._add_log(event.ts, "info", "cleanup", f"Cleanup ({d.get('level', '?')}): freed {freed} bytes",
                      actions)

    def _on_storage(self, event: ev.Event) -> None:
        self.storage = dict(event.data)

    def _on_archive_batch(self, event: ev.Event) -> None:
        d = event.data
        keys = d.get("keys") or []
        self.storage.setdefault("last_batch", {})
        self.storage["last_batch"] = {"archive": d.get("archive"), "batch": d.get("batch"), "models": len(keys)}

    def _on_log(self, event: ev.Event) -> None:
        level = str(event.data.get("level", "info"))
        self._add_log(event.ts, level, "log", str(event.data.get("message", "")))

    def _on_run_finished(self, event: ev.Event) -> None:
        d = event.data
        self.finished = dict(d)
        self.status = str(d.get("status", "completed"))
        self.exit_code = _int_or_none(d.get("exit_code"))
        self.running.clear()
        self.phase = "finished"
        for name, attr in (("models_completed", "completed"), ("models_failed", "failed"),
                           ("models_skipped", "skipped")):
            value = _int_or_none(d.get(name))
            if value is not None:
                setattr(self, attr, value)
        level = "info" if self.status == "completed" else "critical"
        self._add_log(event.ts, level, "run", f"Run {self.status}: {d.get('message', '')}".rstrip(": "))

    # ----- other inputs ----------------------------------------------------
    def add_model(self, row: ModelRow, prefer_existing: bool = False) -> None:
        """Add or replace a browser row; a report.csv row beats a live event's."""
        row_id = row.row_id
        existing = self.models.get(row_id)
        if existing is not None and prefer_existing and existing.report:
            return
        self.models[row_id] = row
        self.pending_rows.append(row_id)
        if not row.is_per_class and (self.best is None or row.best_order_key() > self.best.best_order_key()):
            self.best = row
        self.version += 1

    def fill_storage(self, stats: dict[str, Any]) -> bool:
        """Storage statistics read from the project itself, for a journal that carries none
        (a run from before storage events, or a journal cut short). A storage event always
        wins: this only fills an empty panel. Returns whether it did."""
        if self.storage or not stats:
            return False
        self.storage = {**stats, "source": "project"}
        self.version += 1
        return True

    def drain_pending_rows(self) -> list[str]:
        pending, self.pending_rows = self.pending_rows, []
        return pending

    def engine_exited(self, returncode: int | None, stderr_tail: str, ts: float) -> None:
        """The engine process is gone. Unless it said goodbye cleanly, that is news."""
        self.engine_stderr = stderr_tail
        if self.finished is None:
            self.status = RunStatus.ENGINE_DIED
            self.exit_code = returncode
            self.running.clear()
            self._add_log(ts, "critical", "engine",
                          f"The engine exited with code {returncode} before the run finished.", stderr_tail)
        elif returncode not in (None, self.exit_code):
            self._add_log(ts, "warning", "engine",
                          f"The engine exited with code {returncode} (run said {self.exit_code}).", stderr_tail)
        self.version += 1

    def note(self, ts: float, level: str, message: str, detail: str = "") -> None:
        """A message from the UI itself (export done, detach, ...)."""
        self._add_log(ts, level, "ui", message, detail)
        self.version += 1

    def _add_log(self, ts: float, level: str, source: str, message: str, detail: str = "") -> LogEntry:
        entry = LogEntry(ts, level, source, message, detail)
        self.log.append(entry)
        self.log_added += 1
        return entry

    # ----- derived ---------------------------------------------------------
    @property
    def is_live(self) -> bool:
        return self.status == RunStatus.RUNNING

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES or self.status == RunStatus.ENGINE_DIED

    @property
    def progress(self) -> float:
        """Share of models done (finished, failed or skipped), 0..1."""
        if not self.total_models:
            return 0.0
        return min(1.0, self.completed / self.total_models)

    @property
    def eta_seconds(self) -> float | None:
        """Remaining time at this run's rate so far; None until it is known.

        The rate is of work (each model weighed by its pipeline's rough cost) when the engine sends
        it, else of models: a run that starts with its slowest algorithm would otherwise promise
        many times its real length."""
        if not self.is_live or self.started_ts is None or self.last_ts is None or not self.total_models:
            return None
        if self.completed >= self.total_models:
            return 0.0
        elapsed = self.last_ts - self.started_ts
        if self.work_total:
            remaining, done_here = self.work_total - self.work_done, self.work_done - self.work_at_start
        else:
            remaining, done_here = self.total_models - self.completed, self.completed - self.already_done
        if done_here <= 0 or elapsed <= 0:
            return None
        return elapsed / done_here * max(0.0, remaining)

    @property
    def best_model(self) -> ModelRow | None:
        return self.best

    @property
    def memory_status(self) -> str:
        status = self.memory.get("status")
        return status if status in ("green", "yellow", "red") else "unknown"

    @property
    def limit_bytes(self) -> int:
        return _int_or_none(self.memory.get("limit_bytes")) or 0

    @property
    def used_bytes(self) -> int:
        return _int_or_none(self.memory.get("used_bytes")) or 0

    @property
    def percent(self) -> float:
        percent = _number(self.memory.get("percent"))
        if percent is not None:
            return percent
        return 100.0 * self.used_bytes / self.limit_bytes if self.limit_bytes else 0.0

    @property
    def notable_log(self) -> list[LogEntry]:
        return [e for e in self.log if e.level != "info" or e.source in ("alert", "run", "engine", "ui")]


_HANDLERS = {
    ev.RUN_STARTED: RunState._on_run_started,
    ev.PHASE_CHANGED: RunState._on_phase_changed,
    ev.MODEL_STARTED: RunState._on_model_started,
    ev.MODEL_FINISHED: RunState._on_model_finished,
    ev.MODEL_FAILED: RunState._on_model_failed,
    ev.MODEL_SKIPPED: RunState._on_model_skipped,
    ev.MEMORY: RunState._on_memory,
    ev.ALERT: RunState._on_alert,
    ev.CLEANUP: RunState._on_cleanup,
    ev.STORAGE: RunState._on_storage,
    ev.ARCHIVE_BATCH: RunState._on_archive_batch,
    ev.LOG: RunState._on_log,
    ev.RUN_FINISHED: RunState._on_run_finished,
}
