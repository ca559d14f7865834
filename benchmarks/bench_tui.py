"""TUI benchmark: model browser at 10,000 rows, and event-to-screen lag at ~2,000 events/s.

Run: python benchmarks/bench_tui.py [--rows 10000] [--models 3000] [--size 120x40] [--refresh SECONDS ...] [--per-event]
Prints timings measured in this one run, side by side:
  * browser: load / sort / filter / incremental add, against a plain sorted() of the same rows
    (the floor any UI pays), as ratios; then a live run filling the browser 20 rows per tick;
  * lag: seconds from an event's timestamp (stamped by the writer) to the end of the screen update
    that showed it (Textual's call_after_refresh after the refresh tick), with the app's shipped (~6.7 Hz)
    coalesced refresh versus a 100 Hz "repaint nearly every batch" refresh, under the same stream.
    `--refresh SECONDS [SECONDS ...]` replaces those two with the given periods, run in that order
    (e.g. `--skip-browser --refresh 0.2 0.1 0.2 0.1` alternates 5 and 10 Hz).

`--per-event` measures only the per-event work, without a screen: microseconds per event to read
(split the pipe's bytes into lines and decode them) and to fold them into RunState, on the lag
run's own event stream. Seconds to run; fine beside other work, as it measures CPU, not lag.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import shutil
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
WORK = Path(tempfile.mkdtemp(prefix="milo-bench-"))  # every project and the settings; removed at exit
atexit.register(shutil.rmtree, WORK, True)
os.environ.setdefault("XDG_CONFIG_HOME", str(WORK / "config"))

from milo_tui import events as ev  # noqa: E402
from milo_tui.tui.app import REFRESH_SECONDS, MiloApp  # noqa: E402
from milo_tui.runstate import ModelRow, RunState  # noqa: E402
from milo_tui.tui.widgets.browser import best_key  # noqa: E402
from tui_fakes import (FakeStore, encode_halves, fake_engine_starter, metrics_for, split_for_bench,  # noqa: E402
                       synthetic_run)


SIZE = (120, 40)  # the terminal: 120x40 is the wide layout (dashboard, browser, event log); 80x24 shows one tab


async def bench_browser(rows: int) -> dict[str, float]:
    project = Path(tempfile.mkdtemp(dir=WORK)) / "p"
    project.mkdir()
    app = MiloApp(project, "watch", store_factory=FakeStore)
    out: dict[str, float] = {}
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        for row in split_for_bench(rows):
            app.state.add_model(row)
        app.state.drain_pending_rows()
        browser = app.browser
        t = time.perf_counter()
        browser.rebuild()
        out["load (rebuild)"] = time.perf_counter() - t
        await pilot.pause(0.1)
        t = time.perf_counter()
        browser.sort_by("roc_auc")
        out["sort by AUC"] = time.perf_counter() - t
        t = time.perf_counter()
        browser.sort_by("algorithm")
        out["sort by algorithm"] = time.perf_counter() - t
        t = time.perf_counter()
        browser.set_text_filter("knn std", immediate=True)
        out["filter 'knn std'"] = time.perf_counter() - t
        t = time.perf_counter()
        browser.set_text_filter("", immediate=True)
        out["clear filter"] = time.perf_counter() - t
        extra = [ModelRow(key=f"std__none__lr__grid__f1__{rows + i}", algorithm="lr", metrics=metrics_for(i))
                 for i in range(50)]
        for row in extra:
            app.state.add_model(row)
        t = time.perf_counter()
        browser.add_changed(app.state.drain_pending_rows())
        out["add 50 rows in order"] = time.perf_counter() - t
        t = time.perf_counter()
        await pilot.pause(0)  # the repaint that shows them
        out["  ...and its repaint"] = time.perf_counter() - t
        t = time.perf_counter()
        await pilot.press("down", "pagedown", "end", "home")
        out["4 cursor keys (incl. repaint)"] = time.perf_counter() - t
        assert browser.table.row_count == rows + 50
    all_rows = list(app.state.models.values())
    t = time.perf_counter()
    sorted(all_rows, key=best_key)
    out["floor: sorted() of the rows"] = time.perf_counter() - t
    return out


async def bench_live_ticks(rows: int, per_tick: int) -> dict[str, float]:
    """A live run filling the browser: `per_tick` models finish per refresh tick until `rows` are shown.

    Times the browser's work per tick (add + place in order) and the repaint
    that follows, with the Models tab in front, sorted best first.
    """
    project = Path(tempfile.mkdtemp(dir=WORK)) / "p"
    project.mkdir()
    app = MiloApp(project, "watch", store_factory=FakeStore)
    all_rows = split_for_bench(rows)
    add_times: list[float] = []
    paint_times: list[float] = []
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        browser = app.browser
        for start in range(0, rows, per_tick):
            for row in all_rows[start:start + per_tick]:
                app.state.add_model(row)
            t = time.perf_counter()
            browser.add_changed(app.state.drain_pending_rows())
            add_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            await pilot.pause(0)
            paint_times.append(time.perf_counter() - t)
        assert browser.table.row_count == rows and browser.full_sorts == 0
    last = add_times[-len(add_times) // 10:]  # the last tenth: the table is nearly full
    return {"ticks": float(len(add_times)),
            "add+place p50 (last 10%)": statistics.median(last),
            "add+place max": max(add_times),
            "repaint p50 (last 10%)": statistics.median(paint_times[-len(paint_times) // 10:]),
            "total seconds": sum(add_times) + sum(paint_times)}


WRITER_LINE = re.compile(r"paced writer: (\d+) events in ([\d.]+) s = (\d+) events/s")


async def bench_lag(models: int, rate: float, refresh_seconds: float) -> dict[str, float]:
    """The app reading a fake engine that writes `rate` events/s (pre-encoded lines in 10 ms bursts)."""
    project = Path(tempfile.mkdtemp(dir=WORK)) / "p"
    project.mkdir()
    app = MiloApp(project, "run", store_factory=FakeStore, refresh_seconds=refresh_seconds, record_lag=True,
                  engine_starter=fake_engine_starter(models=models, rate=rate))
    started = time.monotonic()
    cpu_started = time.process_time()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")  # the model browser is the costliest pane to keep up to date
        while app.state.status != "completed" and time.monotonic() - started < 300:
            # A plain sleep, not pilot.pause: that pokes every widget and forces a screen update 20
            # times a second, work a real terminal does not add. The app's own timers paint.
            await asyncio.sleep(0.05)
        cpu = time.process_time() - cpu_started
        wall = time.monotonic() - started
        await pilot.pause(0.1)
        rows_shown = app.browser.table.row_count
    app.engine.popen.wait(10)
    app.engine.close()
    writer = WRITER_LINE.search(app.paths.engine_log.read_text(errors="replace"))
    samples = sorted(app.lag_samples or [])
    final_lag = app.lag_samples[-1] if app.lag_samples else float("nan")  # the run_finished event
    return {
        "writer events/s": float(writer.group(3)) if writer else float("nan"),
        "events shown": float(len(samples)),
        "rows in browser": float(rows_shown),
        "lag p50 s": statistics.median(samples) if samples else float("nan"),
        "lag p95 s": samples[int(0.95 * (len(samples) - 1))] if samples else float("nan"),
        "lag max s": samples[-1] if samples else float("nan"),
        "catch-up s": final_lag,
        "UI CPU share": cpu / wall if wall else float("nan"),
    }


async def bench_first_open(project: Path, warm: bool, look_seconds: float) -> list[float]:
    """Seconds to open (extract, verify, unpickle) the first three models, in a fresh process.

    The user looks at the dashboard for `look_seconds` before pressing x, with
    or without the background warm-up of scikit-learn's imports.
    """
    from milo_tui.tui.screens.detail import DetailScreen

    app = MiloApp(project, "watch", warm_imports=warm)
    times: list[float] = []
    async with app.run_test(size=(80, 24)) as pilot:
        while len(app.state.models) == 0:
            await pilot.pause(0.05)
        await pilot.pause(look_seconds)
        await pilot.press("2")
        for _ in range(3):
            await pilot.press("x")
            while not (isinstance(app.screen, DetailScreen) and app.screen.details is not None):
                await pilot.pause(0.01)
            times.append(app.screen.details.seconds)
            await pilot.press("escape", "down")
    return times


def first_open_in_fresh_processes(project: Path, look_seconds: float) -> None:
    import json
    import subprocess

    print(f"\nFirst model opened after start ({project}, user looks {look_seconds:.0f} s at the dashboard first), "
          f"each variant in a fresh interpreter:")
    for warm in (False, True):
        code = (f"import asyncio, json, sys; sys.path[:0] = {[str(ROOT), str(ROOT / 'benchmarks')]!r}; "
                f"import bench_tui; from pathlib import Path; "
                f"print(json.dumps(asyncio.run(bench_tui.bench_first_open(Path({str(project)!r}), {warm}, "
                f"{look_seconds}))))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        first, second, third = json.loads(out.stdout.strip().splitlines()[-1])
        label = "with warm-up" if warm else "no warm-up"
        print(f"  {label:<14} 1st {first * 1000:7.1f} ms   2nd {second * 1000:7.1f} ms   3rd {third * 1000:7.1f} ms")


PIPE_CHUNK = 1 << 16  # what events.read_pipe asks os.read for
PER_EVENT_REPEATS = 7


def bench_per_event(models: int, repeats: int = PER_EVENT_REPEATS) -> dict[str, float]:
    """CPU microseconds per event to read (split + decode) and to apply, best of `repeats`.

    The bytes are the lag run's: the fake engine's stream for `models` models,
    encoded as it writes them, cut in the pipe reader's chunk size.
    """
    stamp = repr(round(time.time(), 3)).encode()
    data = b"".join(before + stamp + after for before, after in encode_halves(list(synthetic_run(models))))
    chunks = [data[start:start + PIPE_CHUNK] for start in range(0, len(data), PIPE_CHUNK)]

    def read() -> list[ev.DecodedLines]:
        splitter = ev.LineSplitter()
        return [ev.decode_lines(splitter.feed(chunk)) for chunk in chunks]

    def apply(batches: list[ev.DecodedLines]) -> RunState:
        state = RunState()
        for batch in batches:
            state.apply_batch(batch.events, batch.errors)
        return state

    def best_seconds(work, *args) -> float:
        """CPU seconds of this thread, not wall time: a busy machine preempts us, it does not slow the work."""
        times = []
        for _ in range(repeats):
            started = time.thread_time()
            work(*args)
            times.append(time.thread_time() - started)
        return min(times)

    batches = read()
    count = sum(len(batch.events) for batch in batches)
    assert count and not any(batch.errors for batch in batches)
    return {"events": float(count), "bytes per event": len(data) / count,
            "read (split + decode) us/event": best_seconds(read) / count * 1e6,
            "apply (RunState) us/event": best_seconds(apply, batches) / count * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=3_000, help="models of the lag run (~3 events each)")
    parser.add_argument("--rate", type=float, default=2_000.0, help="events per second of the lag run")
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--size", default="120x40", help="terminal COLUMNSxROWS (120x40: wide layout; 80x24: tabs)")
    parser.add_argument("--first-open", type=Path, metavar="PROJECT",
                        help="only measure the first model opened after start, on this trained project")
    parser.add_argument("--look", type=float, default=3.0, help="seconds before the first open (--first-open)")
    parser.add_argument("--refresh", type=float, nargs="+", default=[REFRESH_SECONDS, 0.01], metavar="SECONDS",
                        help=f"the app's refresh period of each lag run, in this order, one column each "
                             f"(default: {REFRESH_SECONDS} as shipped, then 0.01, nearly every batch); "
                             f"e.g. --refresh 0.2 0.1 0.2 0.1 alternates 5 and 10 Hz")
    parser.add_argument("--per-event", action="store_true",
                        help="only the per-event work (read and apply), no screen")
    args = parser.parse_args()
    if args.first_open:
        first_open_in_fresh_processes(args.first_open, args.look)
        return
    if args.per_event:
        print(f"Per-event work on the lag run's stream ({args.models} models), CPU time, "
              f"best of {PER_EVENT_REPEATS}:")
        for name, value in bench_per_event(args.models).items():
            print(f"  {name:<32} {value:9.2f}")
        return

    global SIZE
    columns, rows = (int(n) for n in args.size.lower().split("x"))
    SIZE = (columns, rows)
    print(f"Terminal {columns}x{rows}")
    if not args.skip_browser:
        browser = asyncio.run(bench_browser(args.rows))
        floor = browser["floor: sorted() of the rows"]
        print(f"Model browser, {args.rows} rows (+50 added live):")
        for name, seconds in browser.items():
            print(f"  {name:<32} {seconds * 1000:9.1f} ms   {seconds / floor:8.1f}x the sorted() floor")
        live = asyncio.run(bench_live_ticks(args.rows, 20))
        print(f"\nLive run filling the browser to {args.rows} rows, 20 models per refresh tick:")
        for name, value in live.items():
            shown = f"{value:9.0f}" if name in ("ticks",) else f"{value * 1000:9.1f} ms"
            print(f"  {name:<32} {shown}")

    print(f"\nEvent-to-screen lag, fake engine writing {args.rate:.0f} events/s ({args.models} models), "
          f"Models tab shown:")
    runs = [asyncio.run(bench_lag(args.models, args.rate, seconds)) for seconds in args.refresh]
    rates = [f"{1 / seconds:g}Hz" for seconds in args.refresh]
    labels = [rate + (" (shipped)" if seconds == REFRESH_SECONDS else "") for rate, seconds in zip(rates, args.refresh)]
    print(f"  {'':<18}" + "".join(f"{label:>16}" for label in labels) + f"   ratio {rates[-1]}/{rates[0]}")
    for name in runs[0]:
        values = [run[name] for run in runs]
        ratio = values[-1] / values[0] if values[0] else float("nan")
        print(f"  {name:<18}" + "".join(f"{value:16.3f}" for value in values) + f"   {ratio:6.2f}")


if __name__ == "__main__":
    main()
