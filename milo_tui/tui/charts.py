"""Text charts drawn on a character grid: the memory graph and the ROC curve.

Plain Python: each chart is a list of rows, each row a list of (text, tag)
runs. The widgets map tags to theme colours; the characters alone still tell
the story without colour (NO_COLOR): thresholds are drawn with their own line
characters and labelled on the axis.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from typing import Sequence

Run = tuple[str, str]
Line = list[Run]
BLOCKS = " ▁▂▃▄▅▆▇█"
WARN_CHAR = "╌"
CRIT_CHAR = "━"
GUTTER = 5  # "100%┤"


def level_of(percent: float, warning_pct: float, critical_pct: float) -> str:
    if percent >= critical_pct:
        return "crit"
    if percent >= warning_pct:
        return "warn"
    return "ok"


def memory_graph(percents: Sequence[float], width: int, height: int,
                 warning_share: float = 0.75, critical_share: float = 0.85) -> list[Line]:
    """Usage (percent of the limit) over time, newest on the right, with both thresholds drawn."""
    width, height = max(GUTTER + 2, width), max(2, height)
    plot_width = width - GUTTER
    samples = list(percents)[-plot_width:]
    offset = plot_width - len(samples)
    top = max(100.0, max(samples, default=0.0))
    warning_pct, critical_pct = 100 * warning_share, 100 * critical_share
    warn_row, crit_row = _row_of(warning_pct, top, height), _row_of(critical_pct, top, height)
    lines: list[Line] = []
    for row in range(height):
        line: Line = [(_axis_label(row, height, top, warn_row, crit_row, warning_pct, critical_pct), "axis")]
        cell_low = top * (height - 1 - row) / height
        cell_high = top * (height - row) / height
        for col in range(plot_width):
            index = col - offset
            value = samples[index] if index >= 0 else None
            line.append(_cell(value, cell_low, cell_high, row, warn_row, crit_row, warning_pct, critical_pct))
        lines.append(_merge(line))
    return lines


def span_text(seconds: float) -> str:
    """How long a graph spans, in the minutes a person reads off an axis."""
    minutes = seconds / 60
    if minutes < 1:
        return f"{max(0, int(round(seconds)))} s"
    if minutes < 90:
        return f"{minutes:.0f} min" if minutes >= 10 else f"{minutes:.1f} min"
    return f"{minutes / 60:.1f} h"


def time_axis(timestamps: Sequence[float], width: int) -> Line:
    """The line under the memory graph: where the shown samples start (how long ago) and "now".

    The graph draws the newest `width - GUTTER` samples one per column, right
    aligned, so the axis starts under the oldest one shown.
    """
    width = max(GUTTER + 2, width)
    plot_width = width - GUTTER
    shown = list(timestamps)[-plot_width:]
    gutter = "    └"
    if len(shown) < 2:
        return [(gutter + "─" * (plot_width - 3) + "now", "axis")]
    start = f"-{span_text(shown[-1] - shown[0])}"
    if plot_width < len(start) + 4:  # too few columns for a label
        return [(gutter + "─" * (plot_width - 3) + "now", "axis")]
    # Under the oldest sample shown, or further left when the few samples leave no room for it.
    column = min(plot_width - len(shown), plot_width - len(start) - 4)
    return [(gutter + " " * column + start + "─" * (plot_width - column - len(start) - 3) + "now", "axis")]


def _row_of(percent: float, top: float, height: int) -> int:
    """The grid row whose band holds `percent` (row 0 is the top)."""
    band = min(height - 1, max(0, int(percent / top * height)))
    return height - 1 - band


def _axis_label(row: int, height: int, top: float, warn_row: int, crit_row: int,
                warning_pct: float, critical_pct: float) -> str:
    if row == crit_row:
        return f"{critical_pct:3.0f}%┤"
    if row == warn_row:
        return f"{warning_pct:3.0f}%┤"
    if row == 0:
        return f"{top:3.0f}%┤"
    if row == height - 1:
        return "  0%┤"
    return "    │"


def _cell(value: float | None, low: float, high: float, row: int, warn_row: int, crit_row: int,
          warning_pct: float, critical_pct: float) -> Run:
    if value is not None and value > low:
        fill = min(1.0, (value - low) / (high - low))
        char = BLOCKS[max(1, round(fill * 8))]
        return char, level_of(value, warning_pct, critical_pct)
    if row == crit_row:
        return CRIT_CHAR, "crit_line"
    if row == warn_row:
        return WARN_CHAR, "warn_line"
    return " ", "empty"


def _merge(line: Line) -> Line:
    """Join neighbouring runs with the same tag (fewer segments to style)."""
    merged: Line = []
    for text, tag in line:
        if merged and merged[-1][1] == tag:
            merged[-1] = (merged[-1][0] + text, tag)
        else:
            merged.append((text, tag))
    return merged


def roc_chart(fpr: Sequence[float], tpr: Sequence[float], width: int, height: int) -> list[Line]:
    """The ROC curve on a grid: x = false positive rate, y = true positive rate, chance diagonal dotted."""
    width, height = max(8, width), max(4, height)
    plot_w, plot_h = width - 4, height - 1
    points = sorted(zip(fpr, tpr))
    xs = [p[0] for p in points]
    grid = [[(" ", "empty") for _ in range(plot_w)] for _ in range(plot_h)]
    for col in range(plot_w):
        x = col / max(1, plot_w - 1)
        diag_row = _y_row(x, plot_h)
        grid[diag_row][col] = ("·", "axis")
    for col in range(plot_w):
        x = col / max(1, plot_w - 1)
        y = _interpolate(points, xs, x)
        if y is not None:
            grid[_y_row(y, plot_h)][col] = ("█", "curve")
    lines: list[Line] = []
    for row in range(plot_h):
        label = "1.0┤" if row == 0 else ("0.0┤" if row == plot_h - 1 else "   │")
        lines.append(_merge([(label, "axis")] + grid[row]))
    lines.append([("   └" + "─" * (plot_w - 3) + "1.0", "axis")])
    return lines


def _y_row(y: float, plot_h: int) -> int:
    return min(plot_h - 1, max(0, plot_h - 1 - round(y * (plot_h - 1))))


def _interpolate(points: list[tuple[float, float]], xs: list[float], x: float) -> float | None:
    """The curve's highest tpr at x (a ROC curve is a step function; take the upper step)."""
    if not points:
        return None
    i = bisect_left(xs, x)
    if i < len(points) and math.isclose(points[i][0], x):
        best = points[i][1]
        j = i
        while j < len(points) and math.isclose(points[j][0], x):
            best = max(best, points[j][1])
            j += 1
        return best
    if i == 0:
        return points[0][1]
    if i >= len(points):
        return points[-1][1]
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0) if x1 > x0 else y1


def progress_bar(share: float, width: int) -> str:
    """A plain text bar, e.g. "███████░░░" (readable with no colour at all)."""
    width = max(1, width)
    filled = round(max(0.0, min(1.0, share)) * width)
    return "█" * filled + "░" * (width - filled)
