"""Moved to milo_tui.runstate (plain Python, shared with the headless CLI).

Kept as an alias so code written against the old path keeps working; new code
imports milo_tui.runstate.
"""

from milo_tui.runstate import *  # noqa: F401,F403
from milo_tui.runstate import _int_or_none, _number  # noqa: F401
