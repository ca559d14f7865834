"""`milo`: the one console script.

    milo init DIR --train FILE --test FILE --target COLUMN
    milo run PROJECT [--headless] [--resume] [--force]
    milo watch PROJECT
    milo models PROJECT [--sort COLUMN] [--json] [--limit N]
    milo extract PROJECT KEY [-o PATH] [--bundle]
    milo estimate PROJECT
    milo stats PROJECT
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from milo_tui import __version__
from milo_tui.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, MiloError


def _fail(exc: MiloError) -> int:
    print(f"milo: {exc}", file=sys.stderr)
    return exc.exit_code


# -- init ------------------------------------------------------------------------

def cmd_init(args) -> int:
    from milo_tui import config as cfg
    from milo_tui.errors import BadInputError

    root = Path(args.dir)
    if (root / "milo.toml").exists() and not args.force:
        raise BadInputError(f"{root / 'milo.toml'} already exists; nothing was changed. Use --force to replace it.")
    values = cfg.defaults()
    root.mkdir(parents=True, exist_ok=True)
    for role, source in (("train", args.train), ("test", args.test)):
        path = Path(source)
        if not path.is_file():
            raise BadInputError(f"The {role} CSV {path} does not exist. Give the path of an existing file.")
        values["data"][role] = os.path.relpath(path.resolve(), root.resolve())
    values["data"]["target"] = args.target
    text = cfg.render_toml(values)
    cfg.validate(cfg.tomllib.loads(text), cfg.ProjectPaths.of(root))  # what we write must load
    (root / "milo.toml").write_text(text, encoding="utf-8")
    print(f"Created {root / 'milo.toml'}. Check the search space in it, then `milo estimate {root}` "
          f"and `milo run {root}`.")
    return 0


# -- run / watch -------------------------------------------------------------------

class HeadlessPrinter:
    """Plain progress lines from engine events: model n/N, elapsed, ETA, best so far.

    The events are folded into the same RunState the TUI shows, so both front
    ends agree on the ETA (from the events' own timestamps, which also makes a
    replayed journal's ETA right) and on the best model (avg_sn_sp, then
    sensitivity, then f1; per-class rows of a multi-class model never count).
    """

    def __init__(self, out=sys.stdout) -> None:
        from milo_tui.runstate import RunState

        self.out = out
        self.started = time.monotonic()
        self.state = RunState()
        self.exit_code: int | None = None
        self.status: str | None = None

    def _line(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{_clock(elapsed)}] {text}", file=self.out, flush=True)

    def handle(self, event) -> None:
        from milo_tui import events as ev

        self.state.apply(event)
        d = event.data
        if event.type == ev.RUN_STARTED:
            phases = d.get("phases", {})
            self._line(f"run {d.get('run_id')}: {d.get('total_models')} models "
                       f"({phases.get('main', 0)} main, {phases.get('ovr', 0)} OvR), "
                       f"{d.get('class_type')} {d.get('class_labels')}; memory limit "
                       f"{_size(d.get('memory_limit_bytes'))} ({d.get('memory_limit_source')})"
                       + (f"; resuming with {self.state.already_done} done" if d.get("resume") else ""))
        elif event.type == ev.PHASE_CHANGED:
            label = f" class {d.get('class_label')}" if d.get("class_label") is not None else ""
            self._line(f"phase {d.get('phase')}{label}")
        elif event.type == ev.MODEL_FINISHED:
            m = d.get("metrics", {})
            done, total = d.get("completed", 0), d.get("total", 0)
            self._line(f"model {done}/{total} {d.get('key')} avg_sn_sp={_num(m.get('avg_sn_sp'))} "
                       f"auc={_num(m.get('roc_auc'))} | ETA {self._eta()} | {self._best()}")
        elif event.type in (ev.MODEL_FAILED, ev.MODEL_SKIPPED):
            word = "failed" if event.type == ev.MODEL_FAILED else "skipped"
            self._line(f"{word}: {d.get('pipeline')} ({len(d.get('keys', []))} models): {d.get('reason')}")
        elif event.type == ev.ALERT:
            self._line(f"{d.get('level', 'info').upper()}: {d.get('message')}")
        elif event.type == ev.ARCHIVE_BATCH:
            self._line(f"archived batch {d.get('batch')} of {d.get('archive')}: {len(d.get('keys', []))} models, "
                       f"{_size(d.get('raw_bytes'))} -> {_size(d.get('compressed_bytes'))}")
        elif event.type == ev.LOG and d.get("level") in ("warning", "error"):
            self._line(f"{d.get('level')}: {d.get('message')}")
        elif event.type == ev.RUN_FINISHED:
            self.status = d.get("status")
            self.exit_code = d.get("exit_code")
            self._line(f"run {d.get('status')}: {d.get('models_completed')} models, "
                       f"{d.get('models_failed')} failed, {d.get('models_skipped')} skipped "
                       f"in {_clock(d.get('seconds') or 0)}. {d.get('message', '')}")
            best = d.get("best")
            if best:
                self._line(f"best model: {best.get('key')} (avg_sn_sp {_num(best.get('avg_sn_sp'))})")

    def _eta(self) -> str:
        """"-" until a model of this run finished, and once none remain."""
        seconds = self.state.eta_seconds
        return _clock(seconds) if seconds else "-"

    def _best(self) -> str:
        best = self.state.best_model
        return f"best {best.key} ({_num(best.metric('avg_sn_sp'))})" if best is not None else "best -"


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _num(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


def _size(value) -> str:
    from milo_tui.config import format_size

    return format_size(value) if isinstance(value, (int, float)) else "-"


def run_headless(project: Path, *, resume: bool, force: bool) -> int:
    from milo_tui import events as ev
    from milo_tui.launcher import start_engine

    engine = start_engine(project, resume=resume, force=force)
    printer = HeadlessPrinter()
    bad_lines = 0
    try:
        for batch in ev.read_pipe(engine.event_fd):
            for event in batch.events:
                printer.handle(event)
            bad_lines += len(batch.errors)
    except KeyboardInterrupt:
        print("milo: stopping the run cleanly (finished models are kept)...", file=sys.stderr, flush=True)
        engine.stop()
        try:
            for batch in ev.read_pipe(engine.event_fd):
                for event in batch.events:
                    printer.handle(event)
        except KeyboardInterrupt:
            pass
    finally:
        code = engine.popen.wait()
        engine.close()
    if bad_lines:
        print(f"milo: {bad_lines} garbled event lines were ignored", file=sys.stderr)
    if printer.status == "bad_input":
        return EXIT_BAD_INPUT
    if printer.status is None:
        tail = engine.stderr_tail()
        print(f"milo: the engine exited with code {code} before finishing the run. The last lines of "
              f"{engine.paths.engine_log}:\n{tail}\nFinished models are kept; continue with "
              f"`milo run {project} --resume`.", file=sys.stderr)
        return code if code not in (0, None) else EXIT_FAILED
    return printer.exit_code if printer.exit_code is not None else code


def cmd_run(args) -> int:
    project = Path(args.project)
    headless = args.headless or not sys.stdout.isatty()
    if headless:
        return run_headless(project, resume=args.resume, force=args.force)
    from milo_tui.tui.app import run_app

    return run_app(project, mode="run", resume=args.resume, force=args.force)


def cmd_watch(args) -> int:
    project = Path(args.project)
    if not (project / "events.jsonl").exists() and not (project / "milo.toml").exists():
        from milo_tui.errors import BadInputError

        raise BadInputError(f"{project} is not a milo project (no milo.toml, no events.jsonl).")
    if args.headless or not sys.stdout.isatty():
        return watch_headless(project, follow=not args.no_follow)
    from milo_tui.tui.app import run_app

    return run_app(project, mode="watch")


def watch_headless(project: Path, *, follow: bool) -> int:
    import threading

    from milo_tui import events as ev

    printer = HeadlessPrinter()
    stop = threading.Event()
    if not follow:
        for event in ev.read_journal(project / "events.jsonl").events:
            printer.handle(event)
        return 0
    try:
        for batch in ev.follow_journal(project / "events.jsonl", stop):
            for event in batch.events:
                printer.handle(event)
                if event.type == ev.RUN_FINISHED:
                    stop.set()
    except KeyboardInterrupt:
        return 0
    return 0


# -- models / extract / stats / estimate ---------------------------------------------

MODEL_COLUMNS = ["key", "phase", "class_type", "avg_sn_sp", "sensitivity", "specificity", "f1", "roc_auc", "accuracy"]


def cmd_models(args) -> int:
    from milo_tui.engine.report import model_rows, read_report, sort_best_first
    from milo_tui.errors import BadInputError
    from milo_tui.project import ProjectPaths

    paths = ProjectPaths.of(args.project)
    if not paths.report.exists():
        raise BadInputError(f"{paths.root} has no report.csv yet: no model has finished. Start with `milo run`.")
    rows = model_rows(read_report(paths.report))
    if args.sort and rows and args.sort not in rows[0]:
        raise BadInputError(f"There is no column {args.sort!r}. Columns: {', '.join(rows[0])}.")
    rows = sort_best_first(rows, args.sort, descending=not args.ascending)
    if args.limit:
        rows = rows[: args.limit]
    if args.json:
        json.dump(rows, sys.stdout, indent=1, default=str)
        print()
        return 0
    width = max([len(r["key"]) for r in rows] + [3])
    print(f"{'key':<{width}}  " + "  ".join(f"{c:>11}" for c in MODEL_COLUMNS[1:]))
    for row in rows:
        cells = [f"{row.get(c, ''):>11}" if isinstance(row.get(c), str) else f"{_num(row.get(c)):>11}"
                 for c in MODEL_COLUMNS[1:]]
        print(f"{row['key']:<{width}}  " + "  ".join(cells))
    print(f"{len(rows)} models", file=sys.stderr)
    return 0


def _store(project: Path):
    from milo_tui import config as cfg
    from milo_tui.storage.store import ModelStore

    try:
        st = cfg.load(project).storage
        return ModelStore(Path(project), cache_models=st["cache_models"], cache_bytes=st["cache_bytes"],
                          cache_ttl=st["cache_ttl"])
    except MiloError:
        return ModelStore(Path(project))


def cmd_extract(args) -> int:
    from milo_tui.engine.report import read_report

    store = _store(Path(args.project))
    row = next((r for r in read_report(Path(args.project) / "report.csv") if r.get("key") == args.key
                and r.get("archive")), None)
    dest = Path(args.output) if args.output else Path.cwd()
    path = store.export(args.key, dest, bundle=args.bundle, report_row=row)
    print(f"Extracted {args.key} to {path} (hash verified against the archive index).")
    return 0


def cmd_stats(args) -> int:
    from milo_tui.storage.stats import project_storage_stats

    stats = project_storage_stats(Path(args.project)).as_event()
    if args.json:
        print(json.dumps(stats, indent=1))
        return 0
    ratio = stats.get("compression_ratio")
    print("Storage Statistics:")
    print(f"├── Models Saved: {stats['models_saved']}")
    print(f"├── Disk Usage: {_size(stats['bytes_before_compression'])} (before compression)")
    print(f"├── In Archives: {_size(stats['bytes_in_archives'])}")
    print(f"├── Compression Ratio: {ratio * 100:.0f}% reduction achieved" if ratio is not None else "├── Compression Ratio: -")
    print(f"├── Archive Status: {stats['archives']} archives, {stats['batches']} batches")
    print(f"├── Files waiting to be archived: {stats.get('files_pending', 0)}")
    print(f"├── Cleanup Status: {stats['temp_files_removed']} temporary files removed")
    print(f"└── Disk Free: {_size(stats['disk_free_bytes'])}")
    return 0


def cmd_estimate(args) -> int:
    from milo_tui import config as cfg
    from milo_tui.engine.data import load_data
    from milo_tui.memory.estimate import preflight
    from milo_tui.memory.limits import resolve_limit

    config = cfg.load(args.project)
    s = config.search
    _, summary = load_data(config.train_path, config.test_path, config.target, cv_folds=s["cv_folds"],
                           test_size=s["test_size"], seed=s["seed"])
    limit = resolve_limit(config.memory["memory_budget"])
    from milo_tui.engine.space import PipelineSpec, models_per_pipeline

    def models_for(algorithm: str, selector: str, searcher: str) -> int:
        spec = PipelineSpec("none", selector, algorithm, searcher)
        return models_per_pipeline(spec, s["scorers"], s["top_k"], s["random_iterations"])

    result = preflight(config, {"n_rows": summary.train_rows, "fit_rows": summary.fit_rows,
                                "n_features": summary.features, "n_classes": summary.n_classes},
                       limit, models_for=models_for)
    print(result.render())
    return 0 if result.fits else 1


# -- entry ---------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="milo", description="AutoML training that keeps headless servers alive.")
    parser.add_argument("--version", action="version", version=f"milo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="create a project folder with a documented milo.toml")
    p.add_argument("dir")
    p.add_argument("--train", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--force", action="store_true", help="replace an existing milo.toml")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("run", help="train (the TUI on a terminal, progress lines otherwise)")
    p.add_argument("project")
    p.add_argument("--headless", action="store_true", help="print progress lines instead of the TUI")
    p.add_argument("--resume", action="store_true", help="continue a stopped or killed run")
    p.add_argument("--force", action="store_true", help="retrain from scratch, deleting earlier results")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("watch", help="attach to a running or finished project (replay, then follow)")
    p.add_argument("project")
    p.add_argument("--headless", action="store_true")
    p.add_argument("--no-follow", action="store_true", help="headless: replay and exit")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("models", help="list models, best first")
    p.add_argument("project")
    p.add_argument("--sort", help="column to sort by (default: avg_sn_sp, sensitivity, f1)")
    p.add_argument("--ascending", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=0)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("extract", help="pull one model out of the archives (hash-verified)")
    p.add_argument("project")
    p.add_argument("key")
    p.add_argument("-o", "--output", help="file or folder (default: current folder)")
    p.add_argument("--bundle", action="store_true", help="a folder with the model, its metrics and parameters")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("estimate", help="pre-flight estimate: memory, disk, models, time")
    p.add_argument("project")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("stats", help="storage statistics of a project")
    p.add_argument("project")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MiloError as exc:
        return _fail(exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `milo models | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
