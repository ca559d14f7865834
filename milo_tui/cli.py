"""`milo`: the one console script.

Each command handler is thin: it reads its arguments, calls the part that does
the work (config, engine launcher, storage, memory) and prints. Errors are not
handled per command: `main` is the single boundary that turns anything raised
into one paragraph on stderr and a documented exit code (milo_tui.errors).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from milo_tui import __version__
from milo_tui.errors import (EXIT_BAD_INPUT, EXIT_CODES, EXIT_DOES_NOT_FIT, EXIT_FAILED, EXIT_INTERRUPTED,
                             BadInputError, MiloError, UsageArgumentParser, user_error)


# -- init ------------------------------------------------------------------------

def cmd_init(args) -> int:
    from milo_tui import config as cfg
    from milo_tui.csvpeek import class_labels, shown

    root = Path(args.project)
    if (root / "milo.toml").exists() and not args.force:
        raise BadInputError(f"{root / 'milo.toml'} already exists; nothing was changed. Use --force to replace it.")
    values = cfg.preset_values(args.preset)
    labels = {}
    for role, source in (("train", args.train), ("test", args.test)):
        path = Path(source)
        if not path.is_file():
            state = "is not a file" if path.exists() else "does not exist"
            raise BadInputError(f"The {role} CSV {path} {state}. Give the path of an existing CSV file.")
        labels[role] = class_labels(path, args.target)
    root.mkdir(parents=True, exist_ok=True)
    for role, source in (("train", args.train), ("test", args.test)):
        values["data"][role] = os.path.relpath(Path(source).resolve(), root.resolve())
    values["data"]["target"] = args.target
    text = cfg.render_toml(values)
    cfg.validate(cfg.tomllib.loads(text), cfg.ProjectPaths.of(root))  # what we write must load
    (root / "milo.toml").write_text(text, encoding="utf-8")
    found = labels["train"]
    print(f"Created {root / 'milo.toml'} with the {args.preset!r} search space "
          f"({cfg.PRESETS[args.preset].summary}).")
    print(f"Target column {args.target!r}: {len(found)} classes in the training CSV: "
          + shown(f"{label!r} ({count} rows)" for label, count in found.items()) + ".")
    unseen = sorted(set(labels["test"]) - set(found))
    if unseen:
        print(f"Warning: the test CSV has classes the training CSV lacks: {shown(map(repr, unseen))}.")
    print(f"Next: check the search space in it, then `milo estimate {root}` and `milo run {root}`.")
    return 0


# -- run / watch -------------------------------------------------------------------

class HeadlessPrinter:
    """Plain progress lines from engine events: model n/N, elapsed, ETA, best so far.

    The events are folded into the same RunState the TUI shows, so both front
    ends agree on the ETA (from the events' own timestamps, which also makes a
    replayed journal's ETA right) and on the best model (avg_sn_sp, then
    sensitivity, then f1; per-class rows of a multi-class model never count).
    """

    def __init__(self, out=None) -> None:
        from milo_tui.runstate import RunState

        self.out = out if out is not None else sys.stdout  # looked up now: tests and pipes replace it
        self.started = time.monotonic()
        self.state = RunState()
        self.exit_code: int | None = None
        self.status: str | None = None
        self.hosts: dict[str, str] = {}  # pipeline -> the cluster node training it (other machines only)

    def _line(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{_clock(elapsed)}] {text}", file=self.out, flush=True)

    def handle(self, event) -> None:
        """One event -> at most a line or two. A payload of the wrong shape is said, never fatal."""
        self.state.apply(event)
        try:
            self._print(event)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            self._line(f"warning: ignored a malformed {event.type} event #{event.seq} ({exc})")

    def _print(self, event) -> None:
        from milo_tui import events as ev

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
        elif event.type == ev.MODEL_STARTED:
            import socket

            if d.get("host") and d["host"] != socket.gethostname():
                self.hosts[d.get("pipeline")] = d["host"]
        elif event.type == ev.MODEL_FINISHED:
            m = d.get("metrics", {})
            done, total = d.get("completed", 0), d.get("total", 0)
            where = f" on {self.hosts[d.get('pipeline')]}" if d.get("pipeline") in self.hosts else ""
            self._line(f"model {done}/{total} {d.get('key')}{where} avg_sn_sp={_num(m.get('avg_sn_sp'))} "
                       f"auc={_num(m.get('roc_auc'))} | ETA {self._eta()} | {self._best()}")
        elif event.type in (ev.MODEL_FAILED, ev.MODEL_SKIPPED):
            word = "failed" if event.type == ev.MODEL_FAILED else "skipped"
            self._line(f"{word}: {d.get('pipeline')} ({len(d.get('keys', []))} models): {d.get('reason')}")
        elif event.type == ev.ALERT:
            node = f" ({d['host']})" if d.get("host") else ""  # a cluster node's governor, or a lost node
            self._line(f"{d.get('level', 'info').upper()}: {d.get('message')}{node}")
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
    _print_summary(project)
    return printer.exit_code if printer.exit_code is not None else code


def _print_summary(project: Path) -> None:
    """The run summary after a headless run; a summary that cannot be read never changes the exit code."""
    from milo_tui.results.summary import render, run_summary

    try:
        lines = render(run_summary(project), with_message=False)
    except MiloError as exc:
        print(f"milo: no run summary: {exc}", file=sys.stderr)
        return
    print("\n".join(lines), flush=True)


def cmd_summary(args) -> int:
    from milo_tui.project import require_project
    from milo_tui.results.summary import render, run_summary

    paths = require_project(args.project)
    summary = run_summary(paths.root)
    if args.json:
        import dataclasses

        print(json.dumps(dataclasses.asdict(summary), indent=1, default=str))
    else:
        print("\n".join(render(summary)))
    return 0


def cmd_run(args) -> int:
    from milo_tui import config as cfg

    project = Path(args.project)
    if args.scheduler:  # the engine, started by the headless printer or the TUI, reads it from there
        from milo_tui.cluster import SCHEDULER_VARIABLE
        from milo_tui.config import check_scheduler

        os.environ[SCHEDULER_VARIABLE] = check_scheduler(args.scheduler)
    # Checked here too (the engine checks again) so a typo in the path or in milo.toml is one
    # paragraph on stderr before anything starts, and no PROJECT/.milo appears for a mistyped path.
    cfg.load(project)
    from milo_tui.project import ProjectPaths
    from milo_tui.projectlock import refuse_if_busy

    refuse_if_busy(ProjectPaths.of(project))  # the engine takes the lock itself, atomically; this answers sooner
    headless = args.headless or not sys.stdout.isatty()
    if headless:
        return run_headless(project, resume=args.resume, force=args.force)
    from milo_tui.tui.app import run_app

    return run_app(project, mode="run", resume=args.resume, force=args.force)


def _cmd_node(args) -> int:
    from milo_tui.cluster.command import cmd_node

    return cmd_node(args)


def cmd_watch(args) -> int:
    paths = _watchable(Path(args.project))
    if args.headless or not sys.stdout.isatty():
        return watch_headless(paths.root, follow=not args.no_follow)
    from milo_tui.tui.app import run_app

    return run_app(paths.root, mode="watch")


def _watchable(project: Path):
    """A project with a journal to replay; a never-run project is said to be one."""
    from milo_tui.project import ProjectPaths, require_project

    paths = ProjectPaths.of(project)
    if paths.events.is_file():
        return paths
    require_project(project)
    raise BadInputError(f"{paths.root} has never run: there is no events.jsonl to watch yet. Start a run with "
                        f"`milo run {project}` (or `milo run {project} --headless &` to leave it in the background).")


def watch_headless(project: Path, *, follow: bool) -> int:
    import threading

    from milo_tui import events as ev

    printer = HeadlessPrinter()
    stop = threading.Event()
    garbled = 0
    batches = ev.follow_journal(project / "events.jsonl", stop) if follow else [ev.read_journal(project / "events.jsonl")]
    try:
        for batch in batches:
            garbled += len(batch.errors)
            for event in batch.events:
                printer.handle(event)
                if event.type == ev.RUN_FINISHED:
                    stop.set()
    except KeyboardInterrupt:
        pass
    if garbled:
        print(f"milo: {garbled} garbled journal lines were skipped", file=sys.stderr)
    return 0


# -- models / extract / stats / estimate ---------------------------------------------

def _report_rows(paths) -> list[dict]:
    """report.csv's rows, or one clear error saying why they cannot be read."""
    import csv

    from milo_tui.engine.report import read_report

    try:
        return read_report(paths.report)
    except UnicodeDecodeError:
        raise BadInputError(f"{paths.report} is not UTF-8 text, so it is not a report milo wrote. Restore it, "
                            f"or retrain with `milo run {paths.root} --force`.") from None
    except (csv.Error, ValueError, TypeError) as exc:
        raise BadInputError(f"{paths.report} cannot be read as milo's report ({exc}).") from None


def cmd_models(args) -> int:
    from milo_tui.project import require_project
    from milo_tui.results import leaderboard as lb

    paths = require_project(args.project)
    if not paths.report.exists():
        raise BadInputError(f"{paths.root} has no report.csv yet: no model has finished. Start with `milo run`.")
    rows = lb.ranked(_report_rows(paths), args.sort, args.ascending, args.limit)
    fmt = lb.Format.JSON if args.json else lb.Format(args.format)
    columns = lb.parse_columns(args.columns, rows) if args.columns else lb.default_columns(rows, fmt, args.width)
    sys.stdout.write(lb.render(rows, columns, fmt))
    print(f"{len(rows)} models", file=sys.stderr)
    return 0


def cmd_extract(args) -> int:
    from milo_tui.project import require_project
    from milo_tui.storage.store import open_store

    paths = require_project(args.project)
    store = open_store(paths.root, trust_archive=args.trust_archive)
    entry = store.find(args.key)
    row = next((r for r in _report_rows(paths) if r.get("key") == args.key and r.get("archive")), None)
    # -o as typed (a str): the store reads a trailing "/" or an existing folder as "into this folder"
    path = store.export(args.key, args.output or Path.cwd(), bundle=args.bundle, report_row=row)
    if args.bundle:  # the model card and usage note travel with the model
        from milo_tui.results.card import model_card, write_card

        write_card(path, model_card(paths.root, args.key, path / "model.joblib", report_row=row, store=store))
    if entry.location == "file":
        how = "copied from its model file: not archived yet"
    elif entry.trusted:
        how = "hash verified against the archive index"
    else:
        how = "NOT verified: no trusted index, extracted because of --trust-archive"
    if args.json:
        print(json.dumps({"key": args.key, "path": str(path), "bundle": args.bundle,
                          "verified": entry.location == "archive" and entry.trusted}))
    else:
        print(f"Extracted {args.key} to {path} ({how}).")
    return 0


def cmd_predict(args) -> int:
    from milo_tui.project import require_project
    from milo_tui.results.predict import predict_csv
    from milo_tui.storage.store import open_store

    paths = require_project(args.project)
    result = predict_csv(paths.root, Path(args.data), Path(args.output) if args.output else None,
                         key=args.model, store=open_store(paths.root))
    for note in result.notes:
        print(f"milo: note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps({"key": result.key, "rows": result.rows, "output": str(result.output),
                          "seconds": round(result.seconds, 3), "predicted_counts": result.predicted_counts,
                          "columns_added": result.columns_added}))
        return 0
    counts = ", ".join(f"{label} {n}" for label, n in sorted(result.predicted_counts.items()))
    print(f"Predicted {result.rows} rows with {result.key} in {result.seconds:.1f} s and wrote {result.output} "
          f"(added {', '.join(result.columns_added)}). Predicted classes: {counts}.")
    return 0


def cmd_compare(args) -> int:
    from milo_tui.project import require_project
    from milo_tui.results.compare import compare_models
    from milo_tui.storage.store import open_store

    paths = require_project(args.project)
    result = compare_models(paths.root, args.key_a, args.key_b, store=open_store(paths.root))
    for note in result.notes:
        print(f"milo: note: {note}", file=sys.stderr)
    if args.json:
        import dataclasses

        print(json.dumps(dataclasses.asdict(result), indent=1, default=str))
        return 0

    def cell(value, ci) -> str:
        text = _num(value)
        return text + (f" [{_num(ci[0])}, {_num(ci[1])}]" if ci else "")

    print(f"A = {result.key_a}\nB = {result.key_b}\n{result.rows} generalization rows (test CSV); 95 % CIs in brackets\n")
    print(f"{'metric':<13} {'A':<22} {'B':<22}")
    for pair in result.metrics:
        print(f"{pair.name:<13} {cell(pair.a, pair.a_ci):<22} {cell(pair.b, pair.b_ci):<22}")
    print()
    for test, stat in ((result.accuracy_test, "chi2"), (result.auc_test, "z")):
        print(f"{test.name}: A {_num(test.a)}, B {_num(test.b)}, A - B = {_num(test.difference)}; "
              f"{stat} = {_num(test.statistic)}, p = {_p(test.p_value)} ({test.detail})")
    return 0


def _p(value) -> str:
    if not isinstance(value, (int, float)) or value != value:
        return "-"
    return "< 0.0001" if value < 1e-4 else f"{value:.4f}"


def cmd_stats(args) -> int:
    from milo_tui.project import require_project
    from milo_tui.storage.stats import project_storage_stats

    paths = require_project(args.project)
    stats = project_storage_stats(paths.root).as_event()
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
    from milo_tui.engine.space import PipelineSpec, min_class_count, models_per_pipeline
    from milo_tui.memory.estimate import preflight
    from milo_tui.memory.limits import resolve_limit

    config = cfg.load(args.project)
    s = config.search
    arrays, summary = load_data(config.train_path, config.test_path, config.target, cv_folds=s["cv_folds"],
                           test_size=s["test_size"], seed=s["seed"])
    limit = resolve_limit(config.memory["memory_budget"])
    from milo_tui.engine.grids import SearchSpace

    space, smallest = SearchSpace.from_config(config), min_class_count(arrays["y_fit"])

    def models_for(algorithm: str, selector: str, searcher: str) -> int:
        spec = PipelineSpec("none", selector, algorithm, searcher)
        return models_per_pipeline(spec, s["scorers"], s["top_k"], space, smallest)

    result = preflight(config, {"n_rows": summary.train_rows, "fit_rows": summary.fit_rows,
                                "n_features": summary.features, "n_classes": summary.n_classes,
                                "smallest_class": smallest},
                       limit, models_for=models_for)
    print(json.dumps(result.as_dict(), indent=1) if args.json else result.render())
    return 0 if result.fits else EXIT_DOES_NOT_FIT


def cmd_completion(args) -> int:
    import shtab

    print(shtab.complete(build_parser(), shell=args.shell))
    return 0


def cmd_settings(args) -> int:
    from milo_tui import config as cfg

    print(cfg.render_markdown())
    return 0


# -- entry ---------------------------------------------------------------------------

def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative; give 0 (all) or more")
    return value


def _exit_code_table() -> str:
    return "exit codes:\n" + "\n".join(f"  {code:<3} {meaning}" for code, meaning in EXIT_CODES)


def _command(sub, name: str, func, summary: str, description: str, examples: list[str]):
    """A subcommand with its one-line summary, a description and examples (shown by `milo NAME --help`)."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    parser = sub.add_parser(name, help=summary, description=description, epilog=epilog,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(func=func)
    return parser


def _project_arg(parser, what: str = "the project folder (it holds milo.toml)"):
    import shtab

    parser.add_argument("project", metavar="PROJECT", help=what).complete = shtab.DIRECTORY


def _file_arg(parser, *flags: str, **kwargs):
    import shtab

    parser.add_argument(*flags, **kwargs).complete = shtab.FILE


def build_parser() -> argparse.ArgumentParser:
    from milo_tui.config import DEFAULT_PRESET, PRESETS

    parser = UsageArgumentParser(
        prog="milo", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train thousands of scikit-learn classification pipelines on a headless server, watch "
                    "memory live, and keep every finished model in indexed tar.gz archives.",
        epilog="Start with `milo init`, then `milo estimate`, then `milo run`. `milo COMMAND --help` describes "
               "each command.\n\n" + _exit_code_table())
    parser.add_argument("--version", action="version", version=f"milo {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(sub, "init", cmd_init, "create a project folder with a documented milo.toml",
                 "Create PROJECT/milo.toml for a training and a test CSV. The target column is checked "
                 "in the training CSV and the classes found there are listed. --preset chooses the search "
                 "space: " + "; ".join(f"{name}: {preset.summary}" for name, preset in PRESETS.items()) + ".",
                 ["milo init myproject --train data/train.csv --test data/test.csv --target outcome",
                  "milo init first --train train.csv --test test.csv --target outcome --preset quick"])
    _project_arg(p, "folder to create (or reuse) for the project")
    _file_arg(p, "--train", required=True, metavar="CSV", help="training CSV (split 80/20 into fitting "
              "and internal test rows)")
    _file_arg(p, "--test", required=True, metavar="CSV", help="generalization CSV, never trained on; the "
              "headline metrics come from it")
    p.add_argument("--target", required=True, metavar="COLUMN", help="name of the class column in both CSVs")
    p.add_argument("--preset", choices=list(PRESETS), default=DEFAULT_PRESET,
                   help=f"starting search space (default: {DEFAULT_PRESET})")
    p.add_argument("--force", action="store_true", help="replace an existing milo.toml")

    p = _command(sub, "run", cmd_run, "train (the TUI on a terminal, progress lines otherwise)",
                 "Train every pipeline of PROJECT/milo.toml. On a terminal this opens the TUI; otherwise "
                 "(or with --headless) it prints one progress line per event. The engine runs in its own "
                 "session: it goes on when the TUI quits or the SSH connection drops (`milo watch` "
                 "re-attaches). Exit codes 3, 4 and 5 leave a run that --resume continues.",
                 ["milo run myproject", "milo run myproject --headless > run.log 2>&1 &",
                  "milo run myproject --resume"])
    _project_arg(p)
    p.add_argument("--headless", action="store_true", help="print progress lines instead of the TUI")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue a stopped or killed run without "
                       "retraining finished models")
    start.add_argument("--force", action="store_true", help="retrain from scratch, deleting earlier results")
    p.add_argument("--scheduler", help='train on a Dask cluster: "local", "tcp://host:8786" or a scheduler '
                   ".json file (overrides [cluster] scheduler; `milo node --help` starts a node)")

    p = _command(sub, "node", _cmd_node, "start this machine as a cluster node (a Dask worker ready for milo)",
                 "Join a Dask scheduler as one Dask worker that trains milo's pipelines: `dask worker` with "
                 "--nworkers 1, --memory-limit 0 and milo's preload. Needs the cluster "
                 "extra: pip install 'milo_tui[cluster]'.",
                 ["milo node tcp://head.lab:8786 --nthreads 4", "milo node /shared/scheduler.json"])
    p.add_argument("scheduler", help='the scheduler\'s address ("tcp://host:8786") or its .json file')
    p.add_argument("--nthreads", type=int, default=1, help="pipelines trained at once on this node")
    p.add_argument("--name", help="the node's name on the Dask dashboard")

    p = _command(sub, "watch", cmd_watch, "attach to a running or finished project (replay, then follow)",
                 "Replay PROJECT/events.jsonl, then follow it while the run goes on: the TUI on a terminal, "
                 "progress lines otherwise. Quitting never stops the engine.",
                 ["milo watch myproject", "milo watch myproject --headless --no-follow"])
    _project_arg(p, "the project folder of a run (it holds events.jsonl)")
    p.add_argument("--headless", action="store_true", help="print progress lines instead of the TUI")
    p.add_argument("--no-follow", action="store_true", help="headless: replay the journal and exit")

    p = _command(sub, "models", cmd_models, "list models, best first",
                 "List the finished models of PROJECT, best first: by avg_sn_sp, then sensitivity, then f1 "
                 "(on the test CSV), or by the column given with --sort. The count goes to stderr.",
                 ["milo models myproject --limit 10", "milo models myproject --sort roc_auc --json"])
    _project_arg(p)
    p.add_argument("--sort", metavar="COLUMN", help="report.csv column to sort by (default: avg_sn_sp, "
                   "sensitivity, f1)")
    p.add_argument("--ascending", action="store_true", help="smallest first")
    p.add_argument("--json", action="store_true", help="print the rows as a JSON list (same as --format json)")
    p.add_argument("--limit", type=_non_negative, default=0, metavar="N", help="show the first N (default 0: all)")
    p.add_argument("--format", choices=["table", "csv", "json", "markdown"], default="table",
                   help="output format (default: table)")
    p.add_argument("--columns", metavar="A,B,...", help="columns to show, comma-separated: any report.csv "
                   "column, or accuracy_ci, roc_auc_ci, sensitivity_ci, specificity_ci (95 %% intervals). "
                   "Default: table and markdown fit --width; csv and json get every column")
    p.add_argument("--width", type=_non_negative, default=80, metavar="N", help="line width the default "
                   "table fits (default 80)")

    p = _command(sub, "extract", cmd_extract, "pull one model out of the archives (hash-verified)",
                 "Extract one model by its key (see `milo models`) as a plain scikit-learn Pipeline "
                 "(joblib), verified against the archive index's SHA-256. -o names a file or a folder; "
                 "a trailing slash creates the folder.",
                 ["milo extract myproject std__none__lr__grid__roc_auc__0 -o best.joblib",
                  "milo extract myproject std__none__lr__grid__roc_auc__0 -o exported/ --bundle"])
    _project_arg(p)
    p.add_argument("key", metavar="KEY", help="the model's key, as `milo models` lists it")
    _file_arg(p, "-o", "--output", metavar="PATH", help="file or folder to write (default: current folder)")
    p.add_argument("--bundle", action="store_true", help="write a folder with the model, its metrics and "
                   "parameters, a model card (model_card.json, MODEL_CARD.md) and a usage note (USAGE.txt)")
    p.add_argument("--json", action="store_true", help="print where it went as JSON")
    p.add_argument("--trust-archive", action="store_true",
                   help="extract even when no trusted index vouches for the model's hash: only for an "
                   "archive you made yourself: without its index nothing proves these are the bytes milo wrote")

    p = _command(sub, "predict", cmd_predict, "predict the class of each row of a CSV with a project's model",
                 "Apply one of PROJECT's models (default: the best, as `milo models` ranks them) to DATA, a CSV "
                 "with the training data's feature columns in any order (the target column may be there and "
                 "is ignored). Writes DATA's rows plus predicted_<target> and one probability_<label> column "
                 "per class, in your own labels. Reads and writes in chunks, so files of millions of rows "
                 "fit in a small memory. Missing, extra or non-numeric columns and missing values are "
                 "refused by name (exit 2); an existing output is never overwritten.",
                 ["milo predict myproject new_patients.csv -o predictions.csv",
                  "milo predict myproject new.csv --model std__none__lr__grid__roc_auc__0 --json"])
    _project_arg(p)
    p.add_argument("data", metavar="DATA.csv", help="CSV of rows to predict, with the training feature columns")
    p.add_argument("--model", metavar="KEY", help="model key (default: the best model of the project)")
    p.add_argument("-o", "--output", metavar="OUT.csv", help="CSV to write (default: DATA.predictions.csv "
                   "beside DATA)")
    p.add_argument("--json", action="store_true", help="print what was done as JSON")

    p = _command(sub, "compare", cmd_compare, "two models side by side, with paired significance tests",
                 "Compare two models of PROJECT on the same generalization rows (the test CSV): their metrics "
                 "with 95 % confidence intervals side by side, McNemar's test for the accuracy difference "
                 "(exact binomial p-value) and DeLong's paired test for the ROC AUC difference (macro "
                 "one-vs-rest for multi-class models). Both must answer the same question: two main models, "
                 "or two one-vs-rest models of the same class.",
                 ["milo compare myproject std__none__lr__grid__roc_auc__0 none__none__rf__grid__roc_auc__0"])
    _project_arg(p)
    p.add_argument("key_a", metavar="KEY1", help="first model (A)")
    p.add_argument("key_b", metavar="KEY2", help="second model (B)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")

    p = _command(sub, "summary", cmd_summary, "the run's summary: best models, failures, time, memory",
                 "Summarize PROJECT's run from report.csv and metadata.json: status, models finished, failed "
                 "and skipped, wall time, peak memory, the best model overall and the best per algorithm "
                 "(ranked by avg_sn_sp, then sensitivity, then f1), and every pipeline that did not finish "
                 "with its reason. `milo run --headless` prints the same at the end.",
                 ["milo summary myproject", "milo summary myproject --json"])
    _project_arg(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = _command(sub, "estimate", cmd_estimate, "pre-flight estimate: memory, disk, models, time",
                 "Estimate, before training, the memory peak, disk, number of models and time of "
                 f"PROJECT's run, and whether it fits the memory limit. Exits {EXIT_DOES_NOT_FIT} when it "
                 "would not fit (an answer, not a failure).",
                 ["milo estimate myproject", "milo estimate myproject --json"])
    _project_arg(p)
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")

    p = _command(sub, "stats", cmd_stats, "storage statistics of a project",
                 "Storage statistics of PROJECT: models saved, bytes before and after compression, "
                 "archives and batches, files waiting to be archived, free disk.",
                 ["milo stats myproject", "milo stats myproject --json"])
    _project_arg(p)
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")

    p = _command(sub, "completion", cmd_completion, "print a shell completion script",
                 "Print a completion script for bash or zsh: commands, options, and paths where a "
                 "command takes one.",
                 ["milo completion bash > ~/.local/share/bash-completion/completions/milo",
                  "milo completion zsh > ~/.zfunc/_milo   # with fpath+=~/.zfunc before compinit"])
    p.add_argument("shell", choices=["bash", "zsh"], help="the shell to complete in")

    _command(sub, "settings", cmd_settings, "list every milo.toml setting with its default",
             "Print every milo.toml setting, its default and what it means.", ["milo settings | less"])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


def run_command(func, args) -> int:
    """The one error boundary: whatever a command raises becomes a paragraph and an exit code.
    MILO_DEBUG=1 lets unexpected errors through with their traceback, for bug reports."""
    try:
        return func(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `milo models | head`
        _silence_stdout()
        return 0
    except Exception as exc:
        error = user_error(exc)
        if os.environ.get("MILO_DEBUG") and not isinstance(exc, MiloError):
            raise
        print(f"milo: {error}", file=sys.stderr)
        return error.exit_code


def _silence_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
