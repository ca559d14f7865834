"""The Textual terminal UI. The only part of milo_tui that imports textual.

Kept import-free on purpose: `milo_tui.tui.state` (plain Python) must stay
importable without pulling in textual. The app itself is `milo_tui.tui.app`.
"""
