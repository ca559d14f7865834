"""Test hooks of the engine process, read from the environment once, kept out of the training loop.

MILO_TEST_ENGINE_BALLOON="N:MB" makes the engine itself hold MB of memory once
N models have finished, like a leak no cleanup can recover: the memory tests
use it to drive the OvR check and the safe stop with a real process.
"""

from __future__ import annotations

import os


class EngineHooks:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        spec = (environ if environ is not None else os.environ).get("MILO_TEST_ENGINE_BALLOON", "")
        after, _, megabytes = spec.partition(":")
        self._balloon_after = int(after) if spec else None
        self._balloon_mb = int(megabytes) if spec else 0
        self._balloon: bytearray | None = None

    def model_finished(self, completed: int) -> None:
        if self._balloon_after is None or self._balloon is not None or completed < self._balloon_after:
            return
        balloon = bytearray(self._balloon_mb * 1024 * 1024)
        for i in range(0, len(balloon), 4096):  # touch every page so it is resident
            balloon[i] = 1
        self._balloon = balloon
