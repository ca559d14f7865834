"""milo_tui: AutoML training on headless servers, with live memory management."""

__version__ = "0.1.0"
