"""The command palette offers every action of the app by name (Ctrl+P)."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


class MiloCommands(Provider):
    """Hits from the app's own list of commands: keys, sorts, filters, themes."""

    def _commands(self) -> list[tuple[str, str, object]]:
        return list(self.app.palette_commands())  # type: ignore[attr-defined]

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)  # type: ignore[arg-type]


def bind(method, *args):
    """A callback with no arguments, for palette hits."""
    return partial(method, *args)
