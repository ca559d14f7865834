"""End to end: the real sample project, trained by the real engine subprocess, inside the app.

No fakes: `MiloApp(project, "run")` starts `python -m milo_tui.engine` through
milo_tui.launcher, reads its event pipe, and opens models through the real
ModelStore. The breast cancer sample is the real one (16 pipelines, 64 models).
"""

from __future__ import annotations

import time

import pytest

from milo_tui.tui.app import MiloApp
from milo_tui.tui.screens.detail import DetailScreen
from engine_helpers import copy_sample, kill_process_group
from tui_fakes import sync

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RUN_TIMEOUT = 240.0  # the run takes ~40-70 s here; a loaded CI machine gets room before we call it hung


async def wait_for(pilot, predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.2)


@sync
async def test_real_sample_runs_to_completion_in_the_app(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    project = copy_sample("breast_cancer", tmp_path)
    app = MiloApp(project, "run")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.state.is_final, RUN_TIMEOUT)
            assert app.state.status == "completed", app.state.engine_stderr
            # The final report.csv (with CIs and archives) is merged in by a worker after run_finished.
            await wait_for(pilot, lambda: all(r.report for r in app.state.models.values()), 30)
            assert (app.state.completed, app.state.total_models) == (64, 64)
            assert app.state.memory.get("limit_bytes") and app.state.peak_bytes > 0
            assert app.state.storage.get("models_saved") == 64

            await pilot.press("2")
            await pilot.pause(0.3)
            app.refresh_tick(force_all=True)
            assert app.browser.table.row_count == 64
            best = app.state.best_model
            assert best is not None and app.browser.highlighted_row_id() == best.row_id

            await pilot.press("enter")  # extract the best model through the real, hash-verified store
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.details is not None, 60)
            details = app.screen.details
            assert details.error == ""
            assert details.steps and details.steps[-1].class_name  # the pipeline really came out of the archive
            assert details.report.get("acc_95_ci_low")  # metrics with CIs from report.csv
            assert details.class_results and details.class_results.get("confusion_matrix")
            await pilot.press("escape")
            await pilot.press("q")  # the run is over: quits without asking
        assert app.return_value == 0
        assert app.engine is not None and app.engine.popen.wait(30) == 0
    finally:
        if app.engine is not None:
            kill_process_group(app.engine.pid)
