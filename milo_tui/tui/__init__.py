"""The Textual terminal UI. The only part of milo_tui that imports textual.

Kept import-free on purpose: the plain-Python helpers here (project_files,
sources, extraction, charts) must stay importable without pulling in textual.
The app itself is `milo_tui.tui.app`; its state model is `milo_tui.runstate`.
"""
