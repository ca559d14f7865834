"""The storage panel: the storage statistics of the source document, live."""

from __future__ import annotations

from rich.text import Text

from milo_tui.tui import formatting as fmt
from milo_tui.runstate import RunState
from milo_tui.tui.widgets.live_text import LiveText, show_subtitle


def storage_lines(storage: dict) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    if not storage:
        text.append("no storage statistics yet")
        return text
    ratio = storage.get("compression_ratio")
    ratio_text = f"{100 * ratio:.0f}% smaller" if isinstance(ratio, (int, float)) else "-"
    rows = [
        ("Models saved", str(storage.get("models_saved", "-"))),
        ("Before compr.", fmt.size(storage.get("bytes_before_compression"))),
        ("In archives", fmt.size(storage.get("bytes_in_archives"))),
        ("Compression", ratio_text),
        ("Archives", f"{storage.get('archives', '-')} ({storage.get('batches', '-')} batches)"),
        ("Pending files", str(storage.get("files_pending", "-"))),
        ("Temp removed", str(storage.get("temp_files_removed", "-"))),
        ("Disk free", fmt.size(storage.get("disk_free_bytes"))),
    ]
    text.append("\n".join(f"{label:<13} {value}" for label, value in rows))
    return text


class StoragePanel(LiveText):
    DEFAULT_CSS = "StoragePanel { height: 10; border: round $primary 50%; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }"

    def __init__(self, state: RunState, **kwargs) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.border_title = "Storage"

    def refresh_from_state(self) -> None:
        # Said when the figures come from the archives on disk rather than the engine's events.
        show_subtitle(self, "from disk" if self.state.storage.get("source") == "project" else "")
        self.show(storage_lines(self.state.storage))
