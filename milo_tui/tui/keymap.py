"""Every key of the app in one table: it drives the bindings, the help screen and the command palette."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeyAction:
    key: str  # textual key name(s), comma separated
    action: str  # app action (without "action_")
    title: str  # shown in the footer, the help screen and the palette
    help: str
    scope: str = "Main"
    footer: bool = True
    display_key: str = ""
    # Keys that open something to type into: handled as the key arrives (priority), not after
    # it bubbles through the focused widget, so the keys typed right after it land in the new
    # field instead of the browser's own bindings. The action steps aside when a text field
    # already has focus (SkipAction), so `e` and `/` can still be typed there.
    priority: bool = False

    @property
    def shown_key(self) -> str:
        return self.display_key or self.key


MAIN_KEYS: tuple[KeyAction, ...] = (
    KeyAction("1", "show_tab('dashboard')", "Dashboard", "Memory dashboard, processes and storage", footer=False),
    KeyAction("2", "show_tab('models')", "Models", "The model browser", footer=False),
    KeyAction("3", "show_tab('events')", "Events", "Alerts and notable events", footer=False),
    KeyAction("slash", "focus_filter", "Filter", "Type words to filter the model browser (Enter applies, Esc leaves)",
              display_key="/", priority=True),
    KeyAction("s", "sort_next", "Sort", "Sort the browser by the next column (press again to go on)"),
    KeyAction("r", "reverse_sort", "Reverse", "Reverse the browser's sort order", footer=False),
    KeyAction("b", "sort_best", "Best first", "Back to best first: avg Sn/Sp, then sensitivity, then F1", footer=False),
    KeyAction("p", "cycle_phase", "Phase", "Phase filter: all, main, per-class, ovr", footer=False),
    KeyAction("c", "cycle_class", "Class", "Class filter: all, then each class", footer=False),
    KeyAction("x", "extract", "Extract", "Extract the highlighted model and show its details (also Enter)"),
    KeyAction("e", "export", "Export", "Export the highlighted model to a path you type", priority=True),
    KeyAction("m", "mark", "Mark", "Mark the highlighted model for comparison (two at most; again to unmark)",
              footer=False),
    KeyAction("v", "compare", "Compare", "Compare the two marked models: metrics with CIs, McNemar and DeLong tests",
              footer=False),
    KeyAction("t", "next_theme", "Theme", "Switch to the next theme (remembered between runs)", "Anywhere",
              footer=False),
    KeyAction("question_mark", "help", "Help", "This list of keys", "Anywhere", display_key="?"),
    KeyAction("q", "quit_app", "Quit", "Quit; asks whether to stop a live run or leave it training", "Anywhere"),
)

OTHER_KEYS: tuple[tuple[str, str, str], ...] = (
    ("Models", "↑ ↓ PgUp PgDn", "Move in the browser (Home/End: first/last)"),
    ("Models", "Enter", "Extract and show the highlighted model"),
    ("Models", "Esc", "Leave the filter box"),
    ("Details", "e", "Export this model"),
    ("Details", "d", "Predict a CSV's rows with this model (the same code as `milo predict`)"),
    ("Details", "n", "Next ROC curve (multi-class)"),
    ("Details", "Esc / Backspace", "Back to the main screen"),
    ("Dialogs", "Tab / Enter / Esc", "Move, confirm, cancel"),
    ("Anywhere", "Ctrl+P", "Command palette: every action by name"),
    ("Anywhere", "Tab / Shift+Tab", "Move focus between panes"),
)
