"""Run every benchmark and regenerate docs/PERFORMANCE.md from this one run.

    python benchmarks/run_all.py [--quick] [--skip scale ...] [--only engine ...] [--no-write]

Each script's output (its side-by-side ratios) is printed as it runs. docs/PERFORMANCE.md is then
rebuilt: the machine it ran on at the top (CPU, cores, RAM, Python, library versions, date, load),
then one section per benchmark, in this order. A script that accepts `--markdown FILE` writes its
whole section itself (bench_engine.py, scale_run.py); for the others the section's prose, owned
by that script's author, is kept and the output of this run replaces the generated block under it.
A script that fails gets its exit code and last lines in its section; the others still run.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "PERFORMANCE.md"
BEGIN, END = "<!-- run_all.py output -->", "<!-- /run_all.py output -->"


@dataclass
class Bench:
    name: str  # for --skip / --only
    heading: str  # the section's "## " heading in PERFORMANCE.md
    script: str
    args: list[str]
    quick_args: list[str]


BENCHES = [
    Bench("engine", "Engine", "bench_engine.py", [], ["--quick"]),
    Bench("scale", "Scale run", "scale_run.py", [],
          ["--scalers", "none", "--selectors", "none", "select-50", "--verify", "10"]),
    Bench("monitor", "Memory monitor", "bench_monitor.py", ["--seconds", "20"], ["--seconds", "5"]),
    Bench("storage", "Storage", "bench_storage.py", [], ["--models", "2000", "--subset", "500"]),
    Bench("tui", "TUI", "bench_tui.py", [], ["--rows", "2000", "--models", "500"]),
    Bench("search", "Search", "bench_search.py", [], ["--folds", "3"]),
    Bench("boosting", "Gradient boosting libraries", "bench_boosting.py", [], ["--folds", "3"]),
    Bench("predict", "Predict", "bench_predict.py", [], ["--rows", "200000"]),
]
LIBRARIES = ("scikit-learn", "numpy", "scipy", "pandas", "joblib", "psutil", "textual")


# -- the machine -------------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def memory_limit_note() -> str:
    """A cgroup limit changes what 'RAM' means for the run; say if there is one."""
    from milo_tui.memory.limits import resolve_limit

    limit = resolve_limit(None)
    return f"{limit.bytes / 2**30:.1f} GiB ({limit.source})"


def machine_lines(load_before: tuple, load_after: tuple | None, seconds: float | None) -> list[str]:
    import psutil

    lines = [
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores ({psutil.cpu_count(logical=False)} physical)",
        f"- RAM: {psutil.virtual_memory().total / 2**30:.1f} GiB; memory limit milo sees: {memory_limit_note()}",
        f"- OS: {platform.system()} {platform.release()}; Python {platform.python_version()} ({sys.executable})",
        "- Libraries: " + ", ".join(f"{k} {v}" for k, v in library_versions().items()),
        f"- Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Load average (1/5/15 min) at start: {'/'.join(f'{x:.1f}' for x in load_before)}"
        + (f"; at end: {'/'.join(f'{x:.1f}' for x in load_after)}" if load_after else ""),
    ]
    if seconds is not None:
        lines.append(f"- All benchmarks together took {seconds / 60:.1f} min")
    return lines


# -- running the scripts ----------------------------------------------------------------------------

@dataclass
class Outcome:
    bench: Bench
    command: str
    exit_code: int
    output: str
    markdown: str | None
    seconds: float


def accepts_markdown(script: Path) -> bool:
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    return "--markdown" in done.stdout


def run_bench(bench: Bench, quick: bool, work: Path) -> Outcome:
    script = ROOT / "benchmarks" / bench.script
    args = bench.quick_args if quick else bench.args
    section_file = work / f"{bench.name}.md"
    extra = ["--markdown", str(section_file)] if accepts_markdown(script) else []
    command = " ".join(["python", f"benchmarks/{bench.script}", *args])
    print(f"\n===== {command} =====", flush=True)
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, str(script), *args, *extra], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, bufsize=1)
    captured = []
    for line in child.stdout:  # printed as it comes, kept for the document
        print(line, end="", flush=True)
        captured.append(line)
    code = child.wait()
    markdown = section_file.read_text() if extra and code == 0 and section_file.exists() else None
    return Outcome(bench, command, code, "".join(captured), markdown, time.perf_counter() - started)


# -- assembling the document -------------------------------------------------------------------------

def split_sections(text: str) -> tuple[str, dict[str, str]]:
    """The text before the first '## ' heading, and each section's text by heading."""
    parts = re.split(r"(?m)^(?=## )", text)
    head, sections = parts[0], {}
    for part in parts[1:]:
        heading = part.splitlines()[0][3:].strip()
        sections[heading] = part
    return head, sections


def generated_block(outcome: Outcome) -> str:
    status = "" if outcome.exit_code == 0 else f" — **failed with exit code {outcome.exit_code}**"
    body = outcome.output.rstrip()
    if outcome.exit_code != 0:
        body = "\n".join(body.splitlines()[-30:])
    return (f"{BEGIN}\nOutput of `{outcome.command}` in this run ({outcome.seconds:.0f} s){status}:\n\n"
            f"```text\n{body}\n```\n{END}\n")


def section_for(outcome: Outcome, old: str | None) -> str:
    if outcome.markdown is not None:
        return outcome.markdown.rstrip() + "\n\n"
    prose = old or f"## {outcome.bench.heading}\n\n`python benchmarks/{outcome.bench.script}`\n\n"
    prose = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", "", prose, flags=re.S).rstrip()
    return f"{prose}\n\n{generated_block(outcome)}\n"


def assemble(old_text: str, outcomes: list[Outcome], machine: list[str]) -> str:
    _, sections = split_sections(old_text)
    by_heading = {o.bench.heading: o for o in outcomes}
    head = ("# Performance\n\nEvery figure below was measured by `python benchmarks/run_all.py`, which runs each "
            "script named in its section and rebuilds this file. Ratios are measured side by side in the same "
            "run; absolute times depend on the machine and on its load, so both are recorded here.\n\n"
            "## Machine\n\n" + "\n".join(machine) + "\n\n")
    body = []
    for bench in BENCHES:
        old = sections.get(bench.heading)
        if bench.heading in by_heading:
            body.append(section_for(by_heading[bench.heading], old))
        elif old is not None:
            body.append(old.rstrip() + "\n\n")  # not run this time: kept as it was
    known = {b.heading for b in BENCHES} | {"Machine"}
    body += [text.rstrip() + "\n\n" for heading, text in sections.items() if heading not in known]
    return head + "".join(body).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller versions of every benchmark (minutes, not an hour)")
    parser.add_argument("--skip", nargs="+", default=[], choices=[b.name for b in BENCHES])
    parser.add_argument("--only", nargs="+", default=[], choices=[b.name for b in BENCHES])
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/PERFORMANCE.md alone")
    args = parser.parse_args()
    chosen = [b for b in BENCHES if b.name not in args.skip and (not args.only or b.name in args.only)]
    load_before = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="milo-run-all-") as tmp:
        outcomes = [run_bench(bench, args.quick, Path(tmp)) for bench in chosen]
    machine = machine_lines(load_before, os.getloadavg(), time.perf_counter() - started)
    print("\n===== summary =====")
    print("\n".join(machine))
    for outcome in outcomes:
        print(f"  {outcome.bench.name:<8} exit {outcome.exit_code}  {outcome.seconds:7.0f} s  {outcome.command}")
    if not args.no_write:
        DOC.write_text(assemble(DOC.read_text() if DOC.exists() else "", outcomes, machine))
        print(f"wrote {DOC.relative_to(ROOT)}")
    raise SystemExit(0 if all(o.exit_code == 0 for o in outcomes) else 1)


if __name__ == "__main__":
    main()
