"""Tests by kind: unit/ (logic, no subprocess), integration/ (engine subprocess, storage on
disk, CLI), tui/ (Textual pilot and snapshots), drills/ (faults: kills, full disks, hostile
input). Shared helpers are plain modules beside this file (pyproject puts tests/ on the path):
engine_helpers (projects, running the engine, wait_for, kill_process_group), drill_checks,
storage_helpers and tui_fakes."""
