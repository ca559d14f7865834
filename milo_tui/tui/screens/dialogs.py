"""Modal dialogs: quit (stop or detach), export (type a path), help (every key)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from milo_tui.tui.keymap import MAIN_KEYS, OTHER_KEYS

DIALOG_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{ width: 70; max-width: 100%; height: auto; max-height: 100%;
    border: thick $primary; background: $surface; padding: 0 1; }}
{name} Horizontal {{ height: auto; align-horizontal: center; }}
{name} Button {{ margin: 0 1; min-width: 12; }}
"""


class QuitDialog(ModalScreen[str | None]):
    """Returns "detach", "stop" or None (cancel)."""

    DEFAULT_CSS = DIALOG_CSS.format(name="QuitDialog")
    BINDINGS = [
        Binding("d", "choose('detach')", "Leave it training"),
        Binding("s", "choose('stop')", "Stop the run"),
        Binding("escape,c", "choose('')", "Cancel"),
    ]

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("The run is still training.", style="bold"))
            yield Static(f"{self.what}\n\n[d] leave it training in the background; "
                         "`milo watch PROJECT` attaches again later.\n"
                         "[s] stop it safely: finished models are archived and the run can be resumed.\n"
                         "[Esc] go back.", markup=False)
            with Horizontal():
                yield Button("Leave training", id="detach", variant="primary")
                yield Button("Stop run", id="stop", variant="error")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#detach", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_choose("" if event.button.id == "cancel" else str(event.button.id))

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice or None)


class ExportDialog(ModalScreen[tuple[str, bool] | None]):
    """Asks where to export; returns (path text, bundle) or None."""

    DEFAULT_CSS = DIALOG_CSS.format(name="ExportDialog") + "ExportDialog Input { width: 100%; }"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, key: str, default_path: str) -> None:
        super().__init__()
        self.key = key
        self.default_path = default_path

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("Export model", style="bold"))
            yield Static(Text(self.key))
            yield Static("Path (relative paths start in the folder milo was started from):", markup=False)
            yield Input(value=self.default_path, id="export-path")
            yield Checkbox("Bundle: a folder with model, metrics and params", id="export-bundle")
            with Horizontal():
                yield Button("Export", id="export", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        field = self.query_one("#export-path", Input)
        field.cursor_blink = False
        field.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "export":
            self._submit()
        else:
            self.dismiss(None)

    def _submit(self) -> None:
        path = self.query_one("#export-path", Input).value.strip()
        if not path:
            self.notify("Type a path to export to.", severity="warning")
            return
        self.dismiss((path, self.query_one("#export-bundle", Checkbox).value))

    def action_cancel(self) -> None:
        self.dismiss(None)


def keys_table() -> Table:
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold", expand=True)
    table.add_column("Key", width=14)
    table.add_column("Action")
    for key in MAIN_KEYS:
        table.add_row(key.shown_key, f"{key.title}: {key.help}")
    for scope, key, help_text in OTHER_KEYS:
        table.add_row(key, f"{scope}: {help_text}")
    return table


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = DIALOG_CSS.format(name="HelpScreen") + """
    HelpScreen > Vertical { width: 90; height: 100%; }
    HelpScreen VerticalScroll { height: 1fr; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("milo keys (Esc closes)", style="bold"))
            with VerticalScroll():
                yield Static(keys_table(), id="help-keys")

    def action_close(self) -> None:
        self.dismiss(None)
