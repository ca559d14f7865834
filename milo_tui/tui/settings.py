"""The user's remembered UI choices: ~/.config/milo/settings.json (XDG_CONFIG_HOME respected)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from milo_tui.project import atomic_write_json


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "milo"


def settings_path() -> Path:
    return config_dir() / "settings.json"


def user_themes_dir() -> Path:
    return config_dir() / "themes"


def load_settings() -> dict[str, Any]:
    try:
        data = json.loads(settings_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # missing or damaged settings: start from defaults, never refuse to start
    return data if isinstance(data, dict) else {}


def save_setting(name: str, value: Any) -> None:
    """Remember one choice. A read-only home must not crash the UI, so failures are swallowed."""
    settings = load_settings()
    settings[name] = value
    try:
        atomic_write_json(settings_path(), settings)
    except OSError:
        pass
