"""Snapshot tests: every screen at 80x24 (default and high-contrast theme) and at 160x48 (wide: panes).

Deterministic: fixed data and timestamps (UTC), a fake store, a constant
extraction timer, no blinking cursors, workers finished before the shot.
"""

from __future__ import annotations

import json
import time

import pytest

from milo_tui.tui.app import MiloApp
from milo_tui.tui.screens.detail import DetailScreen
from tui_fakes import FakeStore, make_finished_project, synthetic_run, write_journal

# Every screen at 80x24 in both themes, and at 160x48 (the wide layout: panes side by side) in the default.
CASES = [pytest.param("milo-dark", (80, 24), id="milo-dark"),
         pytest.param("milo-high-contrast", (80, 24), id="milo-high-contrast"),
         pytest.param("milo-dark", (160, 48), id="milo-dark-160x48")]


@pytest.fixture(autouse=True)
def deterministic_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    yield
    monkeypatch.undo()
    time.tzset()


def app_for(tmp_path, theme: str, live: bool = False) -> MiloApp:
    settings = tmp_path / "config" / "milo" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"theme": theme}))
    if live:
        root = tmp_path / "live"
        root.mkdir()
        write_journal(root / "events.jsonl", synthetic_run(24, status=None))  # pid: this (alive) process
    else:
        root = make_finished_project(tmp_path / "demo", n_models=30).root
    return MiloApp(root, "watch", store_factory=FakeStore, clock=lambda: 1_700_000_100.0,
                   perf_clock=lambda: 0.0)


def settled(*keys: str, detail: bool = False):
    async def run_before(pilot) -> None:
        app = pilot.app
        deadline = time.monotonic() + 15
        while (app.state.events_applied == 0 or app.inbox._batches or app.workers._workers) and time.monotonic() < deadline:
            await pilot.pause(0.05)
        await pilot.pause(0.3)  # the journal follower's last poll
        app.refresh_tick(force_all=True)
        for key in keys:
            await pilot.press(key)
            await app.workers.wait_for_complete()
        if detail:
            while not (isinstance(app.screen, DetailScreen) and app.screen.details is not None):
                await pilot.pause(0.05)
        await app.workers.wait_for_complete()
        app.refresh_tick(force_all=True)
        await pilot.pause(0.2)

    return run_before


@pytest.mark.parametrize(("theme", "size"), CASES)
def test_dashboard(snap_compare, tmp_path, theme, size):
    assert snap_compare(app_for(tmp_path, theme, live=True), run_before=settled(), terminal_size=size)


@pytest.mark.parametrize(("theme", "size"), CASES)
def test_models(snap_compare, tmp_path, theme, size):
    assert snap_compare(app_for(tmp_path, theme), run_before=settled("2"), terminal_size=size)


@pytest.mark.parametrize(("theme", "size"), CASES)
def test_events(snap_compare, tmp_path, theme, size):
    assert snap_compare(app_for(tmp_path, theme), run_before=settled("3"), terminal_size=size)


@pytest.mark.parametrize(("theme", "size"), CASES)
def test_model_details(snap_compare, tmp_path, theme, size):
    assert snap_compare(app_for(tmp_path, theme), run_before=settled("2", "x", detail=True), terminal_size=size)


@pytest.mark.parametrize(("theme", "size"), CASES)
def test_help(snap_compare, tmp_path, theme, size):
    assert snap_compare(app_for(tmp_path, theme), run_before=settled("question_mark"), terminal_size=size)


@pytest.mark.parametrize(("theme", "size"), CASES)
def test_quit_dialog(snap_compare, tmp_path, theme, size):
    assert snap_compare(app_for(tmp_path, theme, live=True), run_before=settled("q"), terminal_size=size)


@pytest.mark.parametrize(("theme", "size"), CASES)
def test_export_dialog(snap_compare, tmp_path, theme, size):
    assert snap_compare(app_for(tmp_path, theme), run_before=settled("2", "e"), terminal_size=size)
