"""A Static whose text the refresh tick rewrites: unchanged text costs nothing, same-size text no layout.

`Static.update` re-lays out the whole screen by default (the new text might
need another size). The dashboard's panes get new text up to five times a
second during a run, almost always the same text or the same size, and a
screen layout each time was a large part of a tick's cost at 2,000 events/s
(docs/PERFORMANCE.md, TUI). So: compare, and lay out only when the text's
size changed.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.widget import Widget
from textual.widgets import Static


def text_size(text: Text) -> tuple[int, int]:
    """(lines, widest line in cells) of a text, which is all a layout depends on."""
    lines = text.plain.split("\n")
    return len(lines), max(cell_len(line) for line in lines)


class LiveText(Static):
    """A Static for text that is shown again and again: `show(text)` instead of `update(text)`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shown_text: Text | None = None
        self._shown_size: tuple[int, int] | None = None

    def show(self, text: Text) -> None:
        if self._shown_text is not None and text == self._shown_text and text.style == self._shown_text.style:
            return  # the same characters in the same styles: nothing to repaint
        size = text_size(text)
        self.update(text, layout=size != self._shown_size)
        self._shown_text, self._shown_size = text, size


def show_subtitle(widget: Widget, text: str) -> None:
    """Set a border subtitle (plain words) only when it changed: setting one repaints the whole widget."""
    if widget.border_subtitle != text:
        widget.border_subtitle = text
