"""An Input whose editing keys keep their place among typed characters.

Textual's Input inserts printable characters as their key event arrives but
runs its editing keys (backspace, ctrl+u, arrows, ...) as bindings, after the
key has bubbled up to the app. Keys that arrive together (fast typing over
SSH, a paste-like burst from tmux) are then applied out of order: in
"abc⌫d" the backspace lands after the "d" and deletes it, so a typed path
comes out with characters missing. Here the field's own bindings run in
its key handler, in arrival order.
"""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.widgets import Input


def _bindings_by_key(bindings: list) -> dict[str, str]:
    """{key: action} of Binding objects, with "home,ctrl+a" split into its keys."""
    by_key: dict[str, str] = {}
    for binding in bindings:
        if isinstance(binding, Binding):
            for key in binding.key.split(","):
                by_key.setdefault(key.strip(), binding.action)
    return by_key


class OrderedInput(Input):
    _EDIT_ACTIONS = _bindings_by_key(Input.BINDINGS)

    async def _on_key(self, event: events.Key) -> None:
        action = self._EDIT_ACTIONS.get(event.key)
        if action is None or event.is_printable:
            await super()._on_key(event)
            return
        event.stop()
        event.prevent_default()
        await self.run_action(action)
