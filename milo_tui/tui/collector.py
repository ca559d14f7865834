"""Full garbage collections wait for a calm moment while events flood in.

Why: a run that streams 2,000 events a second grows the app's heap (rows, their views, drawn
lines) from ~50,000 to ~130,000 tracked objects in five seconds, and CPython runs a full
(generation 2) collection each time the heap has grown by a quarter. Measured at 120x40: five
full passes of 50-200 ms in five seconds, each one a spike in the time from an event to the
screen, and about a tenth of the app's CPU. Young generations are still collected as usual
(a few ms each); only the full pass waits, for the next calm tick or MAX_DEFER_SECONDS at most,
and it then runs after the screen has been painted.

Plain Python (no Textual): the app tells it about each refresh tick.
"""

from __future__ import annotations

import gc
import time
from typing import Callable

MAX_DEFER_SECONDS = 30.0  # a flood that never ends still gets a full collection this often
NO_AUTOMATIC_FULL = 1 << 30  # a generation-2 threshold that is never reached


class FullCollections:
    """Defers CPython's automatic full collections during busy ticks and runs one when calm."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._deferred_since: float | None = None
        self._saved_threshold: tuple[int, int, int] | None = None

    @property
    def deferring(self) -> bool:
        return self._deferred_since is not None

    def note_tick(self, busy: bool) -> bool:
        """Record a tick; True when a deferred full collection is due now (call `collect`)."""
        now = self._clock()
        if busy and self._deferred_since is None:
            self._saved_threshold = gc.get_threshold()
            young, middle, _ = self._saved_threshold
            gc.set_threshold(young, middle, NO_AUTOMATIC_FULL)
            self._deferred_since = now
            return False
        if self._deferred_since is None:
            return False
        return not busy or now - self._deferred_since >= MAX_DEFER_SECONDS

    def collect(self) -> None:
        """The full pass that waited; automatic ones are back until the next busy tick."""
        self.restore()
        gc.collect()

    def restore(self) -> None:
        """Put CPython's own thresholds back (also when the app exits mid-flood)."""
        if self._saved_threshold is not None:
            gc.set_threshold(*self._saved_threshold)
        self._saved_threshold = None
        self._deferred_since = None
