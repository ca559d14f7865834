"""Themes from TOML files: the shipped ones in milo_tui/themes/ (package data), the user's in ~/.config/milo/themes.

A theme file is flat TOML with textual's Theme fields:

    name = "milo-dark"
    dark = true
    primary = "#5fafd7"
    ...
    [variables]
    "milo-ok" = "#5faf5f"

The `milo-ok`, `milo-warn`, `milo-crit` variables colour memory status and
the graph; missing ones fall back to the theme's success/warning/error.
"""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

from textual.theme import Theme

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from milo_tui.tui.settings import user_themes_dir

DEFAULT_THEME = "milo-dark"
HIGH_CONTRAST_THEME = "milo-high-contrast"
SHIPPED_THEMES_DIR = Path(__file__).resolve().parents[1] / "themes"  # inside the package: wheels carry it
_THEME_FIELDS = {f.name for f in fields(Theme)}

# Used only when no theme file can be found (e.g. an installation without the themes folder).
FALLBACK = Theme(name=DEFAULT_THEME, primary="#5fafd7", secondary="#875fd7", accent="#ffaf00",
                 warning="#ffaf00", error="#ff5f5f", success="#5faf5f", foreground="#d0d0d0",
                 background="#1c1c1c", surface="#262626", panel="#303030", dark=True)


class ThemeFileError(ValueError):
    pass


def theme_from_toml(path: Path) -> Theme:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ThemeFileError(f"{path}: {exc}") from None
    unknown = set(raw) - _THEME_FIELDS
    if unknown:
        raise ThemeFileError(f"{path}: unknown keys {', '.join(sorted(unknown))}")
    if not isinstance(raw.get("name"), str) or not isinstance(raw.get("primary"), str):
        raise ThemeFileError(f"{path}: a theme needs at least `name` and `primary`")
    variables = {str(k): str(v) for k, v in (raw.get("variables") or {}).items()}
    raw["variables"] = variables
    try:
        theme = Theme(**raw)
        theme.to_color_system()  # parses every colour: a typo fails here, not mid-session
    except Exception as exc:  # noqa: BLE001 - textual raises several types for bad colours
        raise ThemeFileError(f"{path}: {exc}") from None
    return theme


def theme_dirs() -> list[Path]:
    return [SHIPPED_THEMES_DIR, user_themes_dir()]


def load_themes(dirs: list[Path] | None = None) -> tuple[list[Theme], list[str]]:
    """All themes found (later folders override earlier ones by name), and a message per bad file."""
    found: dict[str, Theme] = {}
    problems: list[str] = []
    for folder in dirs if dirs is not None else theme_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                theme = theme_from_toml(path)
            except ThemeFileError as exc:
                problems.append(f"Theme file skipped: {exc}")
                continue
            found[theme.name] = theme
    if DEFAULT_THEME not in found:
        found[DEFAULT_THEME] = FALLBACK
    ordered = sorted(found.values(), key=lambda t: (t.name != DEFAULT_THEME, t.name))
    return ordered, problems
