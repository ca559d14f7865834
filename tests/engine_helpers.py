"""Run the real engine subprocess in tests and collect what it says."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from milo_tui import events as ev
from milo_tui.launcher import start_engine

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_projects"
SCHEMA = json.loads((ROOT / "milo_tui" / "schema" / "events.schema.json").read_text())


@dataclass
class EngineResult:
    exit_code: int
    events: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    def of_type(self, etype: str) -> list:
        return [e for e in self.events if e.type == etype]

    @property
    def finished(self):
        done = self.of_type(ev.RUN_FINISHED)
        return done[-1].data if done else None


def copy_sample(name: str, dest: Path, **overrides) -> Path:
    """A private copy of a sample project, with milo.toml settings overridden per section."""
    target = dest / name
    shutil.copytree(SAMPLES / name, target, ignore=shutil.ignore_patterns(
        "models", "report.csv", "metadata.json", "class_results", "events.jsonl", ".milo"))
    if overrides:
        write_config(target, overrides)
    return target


def write_config(project: Path, overrides: dict) -> None:
    import tomllib

    from milo_tui.config import render_toml

    raw = tomllib.loads((project / "milo.toml").read_text())
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    (project / "milo.toml").write_text(render_toml(raw, comments=False))


def small_binary_project(dest: Path, **search) -> Path:
    """Breast cancer with a quick search space: for drills that need many runs."""
    settings = {"algorithms": ["lr", "knn"], "scalers": ["none", "std"], "selectors": ["none", "select-50"],
                "searchers": ["grid"], "scorers": ["accuracy", "roc_auc"], "cv_folds": 3}
    settings.update(search)
    return copy_sample("breast_cancer", dest, search=settings, storage={"batch_models": 4})


def run_engine(project: Path, *, resume: bool = False, force: bool = False, env: dict | None = None,
               timeout: float = 300, kill_after_models: int | None = None) -> EngineResult:
    """Run the engine to the end (or SIGKILL its whole process group after N models)."""
    engine = start_engine(project, resume=resume, force=force, extra_env=env)
    result = EngineResult(exit_code=-1)
    deadline = time.monotonic() + timeout
    finished_models = 0
    try:
        for batch in ev.read_pipe(engine.event_fd):
            result.events.extend(batch.events)
            result.errors.extend(batch.errors)
            finished_models += sum(1 for e in batch.events if e.type == ev.MODEL_FINISHED)
            if kill_after_models is not None and finished_models >= kill_after_models:
                os.killpg(engine.pid, signal.SIGKILL)
                kill_after_models = None
            if time.monotonic() > deadline:
                os.killpg(engine.pid, signal.SIGKILL)
                raise TimeoutError(f"engine did not finish in {timeout} s")
    finally:
        result.exit_code = engine.popen.wait(timeout=60)
        engine.close()
        kill_process_group(engine.pid)
    return result


def start_engine_until_training(project: Path):
    """Start the engine and return it once its first model has started (the project is then held)."""
    engine = start_engine(project)
    for batch in ev.read_pipe(engine.event_fd):
        if any(e.type == ev.MODEL_STARTED for e in batch.events):
            break
    return engine


def wait_for(condition, timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; says which."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


def kill_process_group(pgid: int) -> None:
    """The forkserver shares the engine's process group (its training children, each in a group of
    their own, die with it: engine/childguard.py); none may outlive a test."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def validate_events(events) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(SCHEMA)
    for event in events:
        obj = json.loads(event.to_json())
        errors = sorted(validator.iter_errors(obj), key=str)
        assert not errors, f"{event.type} event does not match the schema: {errors[0].message}"
