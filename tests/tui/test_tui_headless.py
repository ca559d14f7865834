"""`milo run --headless` prints from the same RunState as the TUI: same ETA, same best model."""

from __future__ import annotations

import io
import re

from milo_tui import events as ev
from milo_tui.cli import HeadlessPrinter
from milo_tui.runstate import RunState
from tui_fakes import metrics_for, model_keys, synthetic_run, to_events

MODEL_LINE = re.compile(r"^\[\d+:\d\d:\d\d\] model (\d+)/(\d+) (\S+) avg_sn_sp=(\S+) auc=(\S+) "
                        r"\| ETA (\S+) \| best (\S+) \((\S+)\)$")


def printed(events) -> tuple[HeadlessPrinter, list[str]]:
    out = io.StringIO()
    printer = HeadlessPrinter(out=out)
    for event in events:
        printer.handle(event)
    return printer, out.getvalue().splitlines()


def test_model_lines_keep_their_format_with_eta_and_best_from_runstate():
    events = to_events(synthetic_run(10), step=0.5)
    printer, lines = printed(events)
    model_lines = [MODEL_LINE.match(line) for line in lines if " model " in line and "best model" not in line]
    assert len(model_lines) == 10 and all(model_lines)

    reference = RunState()
    keys = model_keys(10)
    for event in events:
        reference.apply(event)
        if event.type != ev.MODEL_FINISHED:
            continue
        match = model_lines[event.data["completed"] - 1]
        done = int(match.group(1))
        assert (done, int(match.group(2)), match.group(3)) == (event.data["completed"], 10, keys[done - 1])
        eta = reference.eta_seconds
        expected_eta = "-" if not eta else f"{int(eta) // 3600:d}:{int(eta) // 60 % 60:02d}:{int(eta) % 60:02d}"
        assert match.group(6) == expected_eta
        best = max(range(done), key=lambda i: tuple(metrics_for(i)[m] for m in ("avg_sn_sp", "sensitivity", "f1")))
        assert match.group(7) == keys[best]
        assert match.group(8) == f"{metrics_for(best)['avg_sn_sp']:.3f}"
    assert model_lines[-1].group(6) == "-"  # nothing left to train
    assert printer.status == "completed" and printer.exit_code == 0
    assert lines[-1].endswith(f"best model: {keys[best]} (avg_sn_sp {metrics_for(best)['avg_sn_sp']:.3f})")


def test_eta_comes_from_event_time_not_replay_speed():
    """A replayed journal (`milo watch --headless`) is read in milliseconds; its ETA must reflect the run's pace."""
    events = to_events(synthetic_run(4), step=10.0)  # the run really took 10 s per event
    _, lines = printed(events)
    first = next(MODEL_LINE.match(line) for line in lines if MODEL_LINE.match(line))
    hours, minutes, seconds = (int(x) for x in first.group(6).split(":"))
    assert hours * 3600 + minutes * 60 + seconds >= 60  # 3 models left at >= 20 s of event time each


def test_run_lines_failures_and_final_status():
    events = to_events([
        (ev.RUN_STARTED, {"run_id": "r9", "total_models": 4, "phases": {"main": 4, "ovr": 0}, "class_type": "binary",
                          "class_labels": ["a", "b"], "memory_limit_bytes": 2 ** 30, "memory_limit_source": "ram",
                          "resume": True, "already_done": 2}),
        (ev.MODEL_FAILED, {"pipeline": "std__none__lr__grid", "keys": ["k1", "k2"], "reason": "boom",
                           "completed": 4, "total": 4}),
        (ev.RUN_FINISHED, {"status": "failed", "exit_code": 1, "models_completed": 2, "models_failed": 2,
                           "models_skipped": 0, "seconds": 61, "best": None, "message": "see the log"}),
    ])
    printer, lines = printed(events)
    assert "run r9: 4 models (4 main, 0 OvR)" in lines[0] and lines[0].endswith("resuming with 2 done")
    assert lines[1].endswith("failed: std__none__lr__grid (2 models): boom")
    assert lines[2].endswith("run failed: 2 models, 2 failed, 0 skipped in 0:01:01. see the log")
    assert (printer.status, printer.exit_code) == ("failed", 1)
