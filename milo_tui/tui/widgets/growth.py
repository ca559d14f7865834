"""Growing a scrollable widget without laying out the whole screen.

A widget's `virtual_size` is a layout reactive: each change re-lays out the screen, and a layout
re-composes every widget on it (~20-35 ms at 120x40). During a run the browser's table and the
event log grow on every refresh tick, so every tick paid for a full layout. When a widget only
grew taller while its vertical scrollbar is already shown, the layout would change nothing but
that scrollbar's thumb (visibility, sizes and places stay), so the thumb is moved instead.
"""

from __future__ import annotations

from textual.geometry import Size
from textual.widget import Widget


def grew_under_scrollbar(widget: Widget, old: Size, new: Size) -> bool:
    """Did `widget` only grow taller (same width) while its vertical scrollbar shows?"""
    return new.width == old.width and new.height >= old.height and widget.show_vertical_scrollbar


def show_growth(widget: Widget, old: Size, new: Size) -> None:
    """What a change of virtual size from `old` to `new` needs: the thumb moved, or a layout."""
    if grew_under_scrollbar(widget, old, new):
        widget.vertical_scrollbar.window_virtual_size = new.height
    else:
        widget.refresh(layout=True, repaint=False)
