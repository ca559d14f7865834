"""Realistic synthetic event streams, projects, engines and stores for the TUI tests and benchmark.

Run as a script it is a fake engine: `python tests/tui_fakes.py PROJECT --event-fd N [options]`
emits a run's events through milo_tui.events.EventWriter (pipe + journal), like the real engine.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from milo_tui import events as ev  # noqa: E402
from milo_tui.launcher import EngineProcess  # noqa: E402
from milo_tui.project import ProjectPaths  # noqa: E402

GB = 1_000_000_000
ALGS = ("lr", "rf", "knn", "gb", "svm", "nb", "mlp")
SCALERS = ("none", "std", "minmax")
SELECTORS = ("none", "select-50", "pca-80", "rf-25")
REPORT_COLUMNS = (
    "key class_type class_index class_label phase archive scaler feature_selector algorithm searcher scorer rank "
    "status accuracy acc_95_ci_low acc_95_ci_high mcc avg_sn_sp roc_auc roc_auc_95_ci_low roc_auc_95_ci_high f1 "
    "sensitivity sn_95_ci_low sn_95_ci_high specificity sp_95_ci_low sp_95_ci_high prevalence ppv npv tn tp fn fp "
    "brier_score best_params training_roc_auc roc_delta train_seconds peak_memory_mb model_bytes"
).split()


def model_keys(count: int) -> list[str]:
    keys = []
    for i in range(count):
        alg = ALGS[i % len(ALGS)]
        scaler = SCALERS[(i // len(ALGS)) % len(SCALERS)]
        selector = SELECTORS[(i // (len(ALGS) * len(SCALERS))) % len(SELECTORS)]
        searcher = ("grid", "random")[(i // 84) % 2]
        scorer = ("roc_auc", "accuracy", "f1_macro")[(i // 168) % 3]
        rank = (i // 504)
        keys.append(f"{scaler}__{selector}__{alg}__{searcher}__{scorer}__{rank}")
    return keys


def metrics_for(index: int) -> dict[str, float]:
    """Deterministic, varied, plausible metrics."""
    rng = random.Random(index)
    sens, spec = 0.7 + 0.29 * rng.random(), 0.7 + 0.29 * rng.random()
    return {"accuracy": round((sens + spec) / 2 + 0.01, 4), "roc_auc": round(min(0.999, (sens + spec) / 2 + 0.05), 4),
            "avg_sn_sp": round((sens + spec) / 2, 4), "sensitivity": round(sens, 4), "specificity": round(spec, 4),
            "f1": round(0.6 + 0.38 * rng.random(), 4), "mcc": round(0.4 + 0.5 * rng.random(), 4),
            "brier_score": round(0.05 + 0.1 * rng.random(), 4)}


def synthetic_run(n_models: int, *, class_labels: tuple[str, ...] = ("benign", "malignant"),
                  limit: int = 8 * GB, memory_every: int = 1, status: str = "completed",
                  alerts: bool = True) -> Iterator[tuple[str, dict[str, Any]]]:
    """(type, data) of a whole run: start, models with memory samples, alerts, storage, finish."""
    keys = model_keys(n_models)
    class_type = "binary" if len(class_labels) == 2 else "multiclass"
    yield ev.RUN_STARTED, {"project": "demo", "run_id": "r1", "resume": False, "pid": os.getpid(),
                           "class_type": class_type, "class_labels": list(class_labels), "pipelines": n_models,
                           "total_models": n_models, "phases": {"main": n_models, "ovr": 0}, "already_done": 0,
                           "memory_limit_bytes": limit, "memory_limit_source": "memory_budget",
                           "config": {"memory": {"warning": 0.75, "critical": 0.85}}}
    yield ev.PHASE_CHANGED, {"phase": "main", "class_index": None, "class_label": None}
    peak = 0
    for i, key in enumerate(keys):
        pipeline = key.rsplit("__", 2)[0]
        yield ev.MODEL_STARTED, {"pipeline": pipeline, "phase": "main", "class_index": None, "worker_pid": 1000 + i,
                                 "estimate_bytes": 200_000_000, "completed": i, "total": n_models}
        share = 0.30 + 0.5 * (0.5 + 0.5 * math.sin(i / 7.0)) if n_models > 1 else 0.3
        used = int(limit * share)
        peak = max(peak, used)
        status_color = "red" if share >= 0.85 else ("yellow" if share >= 0.75 else "green")
        if alerts and status_color == "yellow" and i % 11 == 0:
            yield ev.ALERT, {"level": "warning", "message": ev.MSG_WARNING, "detail": f"{share:.0%} of the limit"}
        if i % memory_every == 0:
            yield ev.MEMORY, {"status": status_color, "used_bytes": used, "limit_bytes": limit,
                              "limit_source": "memory_budget", "percent": round(100 * share, 1), "peak_bytes": peak,
                              "system_available_bytes": 10 * GB, "system_used_bytes": 6 * GB, "swap_used_bytes": 0,
                              "system_total_bytes": 16 * GB, "tree_pss_bytes": used,
                              "other_used_bytes": 6 * GB - used, "used_basis": "milo",
                              "processes": [{"pid": 100, "role": "engine", "name": "python", "pss_bytes": used // 3,
                                             "cpu_percent": 2.0},
                                            {"pid": 101, "role": "forkserver", "name": "python",
                                             "pss_bytes": 40_000_000, "cpu_percent": 0.0},
                                            {"pid": 102, "role": "tracker", "name": "python",
                                             "pss_bytes": 9_000_000, "cpu_percent": None},
                                            {"pid": 1000 + i, "role": "worker", "name": "python",
                                             "pss_bytes": used - used // 3 - 49_000_000, "cpu_percent": 97.5}],
                              "models_completed": i, "models_total": n_models,
                              "estimated_remaining_peak_bytes": int(limit * 0.6),
                              "seconds_to_critical": None, "seconds_to_limit": None}
        yield ev.MODEL_FINISHED, {"key": key, "pipeline": pipeline, "phase": "main", "class_type": class_type,
                                  "class_index": None, "metrics": metrics_for(i), "train_seconds": 1.5,
                                  "peak_memory_mb": 300.0, "model_bytes": 40_000, "completed": i + 1,
                                  "total": n_models}
        if (i + 1) % 50 == 0 or i + 1 == n_models:
            yield ev.STORAGE, {"models_saved": i + 1, "bytes_before_compression": 40_000 * (i + 1),
                               "bytes_in_archives": 12_000 * (i + 1), "compression_ratio": 0.7, "archives": 1,
                               "batches": (i + 1) // 50 + 1, "temp_files_removed": i + 1,
                               "disk_free_bytes": 200 * GB, "files_pending": 0}
    if alerts:
        yield ev.ALERT, {"level": "predictive", "message": "Memory will reach the critical level in about 90 s",
                         "detail": "trend +12 MB/s"}
    yield ev.PHASE_CHANGED, {"phase": "archiving", "class_index": None, "class_label": None}
    if status is not None:
        best = max(range(n_models), key=lambda j: tuple(metrics_for(j)[m] for m in ("avg_sn_sp", "sensitivity", "f1")))
        yield ev.RUN_FINISHED, {"status": status, "exit_code": 0 if status == "completed" else 3,
                                "models_completed": n_models, "models_failed": 0, "models_skipped": 0,
                                "seconds": 10.0, "best": {"key": keys[best], **{m: metrics_for(best)[m] for m in
                                                                                ("avg_sn_sp", "sensitivity", "f1")}},
                                "message": "done" if status == "completed" else ev.MSG_STOPPED}


def to_events(stream, start_ts: float = 1_700_000_000.0, step: float = 0.5) -> list[ev.Event]:
    return [ev.Event(type=t, data=d, seq=i, ts=start_ts + i * step) for i, (t, d) in enumerate(stream)]


def write_journal(path: Path, stream, start_ts: float = 1_700_000_000.0, step: float = 0.5) -> int:
    ticks = iter(range(10**9))
    writer = ev.EventWriter(path, clock=lambda: start_ts + next(ticks) * step, start_seq=0)
    count = 0
    for etype, data in stream:
        writer.emit(etype, **data)
        count += 1
    writer.close()
    return count


def report_record(key: str, index: int, class_type: str = "binary") -> dict[str, Any]:
    m = metrics_for(index)
    parts = key.split("__")
    rec = {c: "" for c in REPORT_COLUMNS}
    rec.update(key=key, class_type=class_type, class_index="", class_label="", phase="main", archive="main_models",
               scaler=parts[0], feature_selector=parts[1], algorithm=parts[2], searcher=parts[3], scorer=parts[4],
               rank=parts[5], status="ok", **m, acc_95_ci_low=m["accuracy"] - 0.04, acc_95_ci_high=m["accuracy"] + 0.03,
               roc_auc_95_ci_low=m["roc_auc"] - 0.03, roc_auc_95_ci_high=min(1, m["roc_auc"] + 0.02),
               sn_95_ci_low=m["sensitivity"] - 0.06, sn_95_ci_high=min(1, m["sensitivity"] + 0.05),
               sp_95_ci_low=m["specificity"] - 0.05, sp_95_ci_high=min(1, m["specificity"] + 0.04),
               prevalence=0.37, ppv=0.9, npv=0.91, tn=40, tp=25, fn=3, fp=2,
               best_params=json.dumps({"C": 1.0}), training_roc_auc=0.99, roc_delta=0.02,
               train_seconds=1.5, peak_memory_mb=300.0, model_bytes=40000)
    return rec


def make_finished_project(root: Path, n_models: int = 30, class_labels=("benign", "malignant"),
                          status: str = "completed") -> ProjectPaths:
    """A project folder as a finished run leaves it: journal, report, metadata, class results."""
    paths = ProjectPaths.of(root)
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.config.write_text('[data]\ntrain = "train.csv"\ntest = "test.csv"\ntarget = "y"\n')
    write_journal(paths.events, synthetic_run(n_models, class_labels=class_labels, status=status))
    keys = model_keys(n_models)
    multiclass = len(class_labels) > 2
    with open(paths.report, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=REPORT_COLUMNS)
        writer.writeheader()
        for i, key in enumerate(keys):
            writer.writerow(report_record(key, i, "multiclass" if multiclass else "binary"))
            if multiclass:
                for c, label in enumerate(class_labels):
                    rec = report_record(key, i * 10 + c, "ovr")
                    rec.update(class_index=c, class_label=label, archive="")
                    writer.writerow(rec)
    paths.metadata.write_text(json.dumps({"status": status, "config": {"memory": {"warning": 0.75, "critical": 0.85}},
                                          "counts": {"completed": n_models, "failed": 0, "skipped": 0,
                                                     "total": n_models}}))
    paths.class_results.mkdir(exist_ok=True)
    roc = {"fpr": [0, 0.05, 0.1, 0.2, 0.4, 1.0], "tpr": [0, 0.6, 0.8, 0.9, 0.97, 1.0], "thresholds": [2, .9, .7, .5, .3, 0]}
    for key in keys[:5]:
        if multiclass:
            n = len(class_labels)
            data = {"key": key, "class_type": "multiclass", "class_labels": list(class_labels),
                    "confusion_matrix": [[10 if r == c else 1 for c in range(n)] for r in range(n)],
                    "per_class": [{"class_index": c, "class_label": label, "metrics": metrics_for(c),
                                   "curves": {"roc": roc}} for c, label in enumerate(class_labels)]}
        else:
            data = {"key": key, "class_type": "binary", "class_labels": list(class_labels),
                    "confusion_matrix": [[40, 2], [3, 25]], "curves": {"roc": roc}}
        (paths.class_results / f"{key}.json").write_text(json.dumps(data))
    return paths


class FakeStore:
    """Stands in for milo_tui.storage.store.ModelStore (same read API)."""

    def __init__(self, root: Path, fail_keys: set[str] | None = None, delay: float = 0.0,
                 stats_result: Any = None) -> None:
        self.root = Path(root)
        self.fail_keys = fail_keys or set()
        self.delay = delay
        self.stats_result = stats_result
        self.stats_threads: list[str] = []
        self.opened: list[str] = []
        self.exported: list[tuple[str, Path, bool]] = []

    def list_models(self) -> list[Any]:
        return []

    def open_model(self, key: str):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        from milo_tui.errors import IntegrityError

        time.sleep(self.delay)
        self.opened.append(key)
        if key in self.fail_keys:
            raise IntegrityError(f"The stored model {key} does not match its recorded hash.")
        return Pipeline([("scaler", StandardScaler()), ("model", LogisticRegression(C=0.5, max_iter=500))])

    def export(self, key: str, dest: Path, bundle: bool = False, report_row: dict | None = None) -> Path:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(b"fake model " + key.encode())
        self.exported.append((key, dest, bundle))
        return dest

    def stats(self):
        import threading

        self.stats_threads.append(threading.current_thread().name)
        return self.stats_result


def fake_engine_starter(**script_options: Any):
    """An engine_starter for MiloApp that launches this file as a fake engine (same fd plumbing as launcher)."""

    def start(project: Path, *, resume: bool = False, force: bool = False) -> EngineProcess:
        paths = ProjectPaths.of(project)
        paths.state.mkdir(parents=True, exist_ok=True)
        read_fd, write_fd = os.pipe()
        cmd = [sys.executable, str(Path(__file__).resolve()), str(paths.root), "--event-fd", str(write_fd)]
        for name, value in script_options.items():
            cmd += [f"--{name.replace('_', '-')}", str(value)]
        log = open(paths.engine_log, "ab")
        try:
            popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     pass_fds=(write_fd,), start_new_session=True)
        finally:
            log.close()
            os.close(write_fd)
        return EngineProcess(popen=popen, event_fd=read_fd, paths=paths)

    return start


def _main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("project")
    parser.add_argument("--event-fd", type=int, required=True)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between events")
    parser.add_argument("--hold", type=float, default=0.0, help="seconds to wait before finishing")
    parser.add_argument("--die-after", type=int, default=-1, help="crash (exit 9) after this many events")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="events per second, written in timed bursts of pre-encoded lines (benchmark)")
    args = parser.parse_args()
    paths = ProjectPaths.of(args.project)
    if args.rate > 0:
        return _write_at_rate(paths, args.event_fd, list(synthetic_run(args.models)), args.rate)
    writer = ev.EventWriter(paths.events, pipe_fd=args.event_fd)
    stopped = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stopped.__setitem__("flag", True))
    stream = list(synthetic_run(args.models, status=None))
    for count, (etype, data) in enumerate(stream):
        if stopped["flag"]:
            writer.emit(ev.RUN_FINISHED, status="interrupted", exit_code=4, models_completed=0, models_failed=0,
                        models_skipped=0, seconds=1.0, best=None, message="stopped by the user")
            writer.close()
            return 4
        if count == args.die_after:
            print("Traceback (most recent call last):\nRuntimeError: fake engine crash", file=sys.stderr)
            os._exit(9)
        writer.emit(etype, **data)
        time.sleep(args.delay)
    deadline = time.time() + args.hold
    while time.time() < deadline and not stopped["flag"]:
        time.sleep(0.02)
    status, code = ("interrupted", 4) if stopped["flag"] else ("completed", 0)
    writer.emit(ev.RUN_FINISHED, status=status, exit_code=code, models_completed=args.models, models_failed=0,
                models_skipped=0, seconds=1.0, best=None, message="done")
    writer.close()
    return code


BURST_SECONDS = 0.01  # the paced writer wakes 100 times a second


def encode_halves(stream: list[tuple[str, dict[str, Any]]]) -> list[tuple[bytes, bytes]]:
    """Each event as the bytes before and after its timestamp, so a burst only formats one ts.

    Same bytes as EventWriter (Event.to_json), which costs ~0.5 ms an event in
    json.dumps: at 2,000 events/s that alone would use the writer's whole core.
    """
    halves = []
    for seq, (etype, data) in enumerate(stream):
        line = ev.Event(type=etype, data=ev.json_safe(data), seq=seq, ts=0.125).to_json()
        before, _, after = line.partition('"ts":0.125')
        halves.append(((before + '"ts":').encode(), (after + "\n").encode()))
    return halves


def _write_at_rate(paths: ProjectPaths, event_fd: int, stream: list, rate: float) -> int:
    """Write the stream at `rate` events/s: every BURST_SECONDS, all lines that are due, stamped now.

    The pipe is blocking: if the reader falls behind, the writer slows down
    and the achieved rate (printed to stderr, i.e. the engine log) shows it.
    """
    halves = encode_halves(stream)
    journal = open(paths.events, "ab", buffering=0)
    started = time.perf_counter()
    sent = 0
    last_write = started
    while sent < len(halves):
        due = min(len(halves), int((time.perf_counter() - started) * rate) + 1)
        if due > sent:
            stamp = repr(round(time.time(), 3)).encode()
            burst = b"".join(before + stamp + after for before, after in halves[sent:due])
            journal.write(burst)
            _write_all(event_fd, burst)
            sent = due
            last_write = time.perf_counter()
        time.sleep(BURST_SECONDS)  # lines due meanwhile go in the next burst: the rate holds
    seconds = max(last_write - started, 1e-9)  # from the first burst to the last one
    print(f"paced writer: {sent} events in {seconds:.3f} s = {sent / seconds:.0f} events/s", file=sys.stderr)
    journal.close()
    os.close(event_fd)
    return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


if __name__ == "__main__":
    raise SystemExit(_main())


def sync(test):
    """Run an async test with asyncio.run (no async pytest plugin is installed)."""
    import asyncio
    import functools

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return wrapper


def split_for_bench(count: int) -> list:
    """`count` browser rows with realistic keys and metrics (benchmarks, scale tests)."""
    from milo_tui.runstate import ModelRow, split_key

    return [ModelRow(key=key, metrics=metrics_for(i), **split_key(key)) for i, key in enumerate(model_keys_unique(count))]


def model_keys_unique(count: int) -> list[str]:
    """Like model_keys, with the rank part made unique so any count has distinct keys."""
    return [f"{key.rsplit('__', 1)[0]}__{i}" for i, key in enumerate(model_keys(count))]
