"""The training engine: runs as `python -m milo_tui.engine PROJECT` and speaks only through events."""
