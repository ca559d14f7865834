"""Chart tags -> rich styles, taken from the current theme's variables."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from textual.color import Color, ColorParseError
from textual.strip import Strip

from milo_tui.tui.charts import Line

STATUS_WORDS = {"green": "NORMAL", "yellow": "WARNING", "red": "CRITICAL", "unknown": "NO DATA"}
STATUS_TAGS = {"green": "ok", "yellow": "warn", "red": "crit", "unknown": "axis"}
LEVEL_TAGS = {"info": "axis", "warning": "warn", "predictive": "warn", "critical": "crit",
              "emergency": "crit", "error": "crit"}


def _solid(value: str, background: str) -> str:
    """A colour rich can parse: theme variables may carry alpha, which is blended onto the background."""
    try:
        color = Color.parse(value)
        if color.a < 1:
            color = Color.parse(background).blend(color.with_alpha(1), color.a)
        return color.hex6
    except (ColorParseError, ValueError):
        return ""


def palette_from_variables(raw: dict[str, str]) -> dict[str, str]:
    background = raw.get("background", "#000000")
    variables = {k: _solid(v, background) for k, v in raw.items()
                 if k.startswith(("milo-", "success", "warning", "error", "foreground", "primary", "accent"))}
    ok = variables.get("milo-ok") or variables.get("success", "green")
    warn = variables.get("milo-warn") or variables.get("warning", "yellow")
    crit = variables.get("milo-crit") or variables.get("error", "red")
    muted = variables.get("foreground-muted") or variables.get("foreground", "")
    return {
        "ok": ok, "warn": warn, "crit": crit, "warn_line": warn, "crit_line": crit,
        "axis": muted, "empty": "", "curve": variables.get("primary", "blue"),
        "ok_bold": f"bold {ok}", "warn_bold": f"bold {warn}", "crit_bold": f"bold {crit}",
        "accent": variables.get("accent", ""), "primary": variables.get("primary", ""),
    }


def lines_to_text(lines: list[Line], palette: dict[str, str]) -> Text:
    text = Text(no_wrap=True, overflow="crop")
    for index, line in enumerate(lines):
        if index:
            text.append("\n")
        for chunk, tag in line:
            text.append(chunk, style=palette.get(tag, ""))
    return text


def lines_to_strips(lines: list[Line], palette: dict[str, str], base: Style, width: int) -> list[Strip]:
    """The same chart as `lines_to_text`, as one Strip per line for a widget's `render_line`.

    A chart that changes on every tick (the memory graph) skips rich Text's layout this way: its
    runs become segments directly, each in the widget's own style with the tag's colour over it.
    """
    strips = []
    for line in lines:
        segments = [Segment(chunk, base + Style.parse(palette.get(tag, ""))) for chunk, tag in line]
        strips.append(Strip(segments).adjust_cell_length(width, base))
    return strips
