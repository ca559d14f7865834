"""A small in-memory cache of loaded models: bounded by count and bytes, short-lived.

A model's "bytes" are the size of its .joblib file, a fair and cheap stand-in
for what it holds in memory (joblib stores numpy arrays raw). Least recently
used models are dropped first; expired ones are dropped on every access.
Thread-safe: the TUI loads models off its UI thread.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class _Slot:
    value: Any
    size: int
    expires: float


class ModelCache:
    def __init__(self, max_models: int, max_bytes: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_models = max(0, int(max_models))
        self.max_bytes = max(0, int(max_bytes))
        self.ttl = float(ttl)
        self._clock = clock
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any | None:
        with self._lock:
            self._expire()
            slot = self._slots.get(key)
            if slot is None:
                self.misses += 1
                return None
            self._slots.move_to_end(key)
            self.hits += 1
            return slot.value

    def put(self, key: str, value: Any, size: int) -> bool:
        """Keep `value`; False when it cannot be cached at all (too big, or caching is off)."""
        with self._lock:
            self._slots.pop(key, None)
            if self.max_models == 0 or self.ttl <= 0 or size > self.max_bytes:
                return False
            self._slots[key] = _Slot(value=value, size=int(size), expires=self._clock() + self.ttl)
            self._expire()
            while len(self._slots) > self.max_models or self._bytes() > self.max_bytes:
                self._slots.popitem(last=False)
            return True

    def discard(self, key: str) -> None:
        with self._lock:
            self._slots.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._slots.clear()

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._slots)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            self._expire()
            return key in self._slots

    @property
    def total_bytes(self) -> int:
        with self._lock:
            self._expire()
            return self._bytes()

    def _bytes(self) -> int:
        return sum(slot.size for slot in self._slots.values())

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, slot in self._slots.items() if slot.expires <= now]:
            del self._slots[key]
