"""Modal dialogs: quit (stop or detach), export (type a path), help (every key)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Label, Static
from textual.widgets.input import Selection

from milo_tui.tui.keymap import MAIN_KEYS, OTHER_KEYS
from milo_tui.tui.widgets.ordered_input import OrderedInput

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


class TypedAhead(Message):
    """A key that reached the export dialog before its path field had focus."""

    def __init__(self, key: str, character: str | None) -> None:
        super().__init__()
        self.key = key
        self.character = character


class ExportDialog(ModalScreen[tuple[str, bool] | None]):
    """Asks where to export; returns (path text, bundle) or None.

    Typing at once after `e` must not lose keys. `e` is a priority binding
    (the dialog opens before the next key is routed), and Textual routes a key
    to the focused widget: until this screen has mounted and focused the path
    field there is none, and the keys went to the screen and were dropped.
    Keys that reach the screen directly are queued as TypedAhead, in order,
    and applied to the field once it is ready; the field itself keeps editing
    keys in order (OrderedInput); the default path is selected so typing
    replaces it.
    """

    DEFAULT_CSS = DIALOG_CSS.format(name="ExportDialog") + "ExportDialog Input { width: 100%; }"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    PASSED_ON = ("escape", "tab", "shift+tab")  # keys that mean the dialog, not the path

    def __init__(self, key: str, default_path: str, *, title: str = "Export model",
                 action: str = "Export", offer_bundle: bool = True) -> None:
        super().__init__()
        self.key = key
        self.default_path = default_path
        self.title_text = title
        self.action_text = action
        self.offer_bundle = offer_bundle
        self._field_ready = False
        self._typed_ahead: list[TypedAhead] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self.title_text, style="bold"))
            yield Static(Text(self.key))
            yield Static("Path (relative paths start in the folder milo was started from):", markup=False)
            # select_on_focus off: the Focus event arrives later than typed-ahead keys and would
            # select them; the default is selected once, below.
            yield OrderedInput(value=self.default_path, id="export-path", select_on_focus=False)
            if self.offer_bundle:
                yield Checkbox("Bundle: a folder with model, metrics and params", id="export-bundle")
            with Horizontal():
                yield Button(self.action_text, id="export", variant="primary")
                yield Button("Cancel", id="cancel")

    @property
    def path_field(self) -> Input:
        return self.query_one("#export-path", Input)

    def on_mount(self) -> None:
        field = self.path_field
        field.cursor_blink = False
        field.selection = Selection(0, len(field.value))  # typing replaces the default
        self.set_focus(field)
        self._field_ready = True
        for typed in self._typed_ahead:
            self._apply(typed)
        self._typed_ahead.clear()

    def _forward_event(self, event: events.Event) -> None:
        # Only keys sent to the screen itself come through here (nothing had focus yet);
        # keys that bubble up from the focused field are posted to us, not forwarded.
        if isinstance(event, events.Key) and event.key not in self.PASSED_ON and not event.is_forwarded:
            event._set_forwarded()
            self.post_message(TypedAhead(event.key, event.character))
            return
        super()._forward_event(event)

    def on_typed_ahead(self, message: TypedAhead) -> None:
        message.stop()
        if self._field_ready:
            self._apply(message)
        else:
            self._typed_ahead.append(message)

    def _apply(self, typed: TypedAhead) -> None:
        """Do to the path field what the key would have done had it had focus."""
        field = self.path_field
        if typed.character is not None and typed.character.isprintable() and len(typed.character) == 1:
            if field.selection.is_empty:
                field.insert_text_at_cursor(typed.character)
            else:
                field.replace(typed.character, *field.selection)
        elif typed.key == "backspace":
            field.action_delete_left()
        elif typed.key == "ctrl+u":
            field.action_delete_left_all()
        elif typed.key == "enter":
            self._submit()

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
        path = self.path_field.value.strip()
        if not path:
            self.notify("Type a path first.", severity="warning")
            return
        self.dismiss((path, self.offer_bundle and self.query_one("#export-bundle", Checkbox).value))

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
