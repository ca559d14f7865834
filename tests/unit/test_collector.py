"""Full collections wait while events flood in, and run once it is calm (or after MAX_DEFER_SECONDS)."""

from __future__ import annotations

import gc

import pytest

from milo_tui.tui.collector import MAX_DEFER_SECONDS, NO_AUTOMATIC_FULL, FullCollections


@pytest.fixture(autouse=True)
def keep_thresholds():
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_busy_ticks_defer_only_the_full_collection_and_a_calm_tick_asks_for_it():
    gc.set_threshold(700, 10, 10)
    clock = Clock()
    collections = FullCollections(clock)
    assert collections.note_tick(busy=False) is False  # calm from the start: nothing to do
    assert gc.get_threshold() == (700, 10, 10)
    assert collections.note_tick(busy=True) is False
    assert gc.get_threshold() == (700, 10, NO_AUTOMATIC_FULL)  # young generations as before
    clock.now = 5.0
    assert collections.note_tick(busy=True) is False
    assert collections.note_tick(busy=False) is True  # the first calm tick: the deferred pass is due
    collections.collect()
    assert gc.get_threshold() == (700, 10, 10)
    assert not collections.deferring
    assert collections.note_tick(busy=False) is False


def test_a_flood_that_never_ends_still_gets_a_full_collection_every_max_defer_seconds():
    clock = Clock()
    collections = FullCollections(clock)
    collections.note_tick(busy=True)
    clock.now = MAX_DEFER_SECONDS - 0.1
    assert collections.note_tick(busy=True) is False
    clock.now = MAX_DEFER_SECONDS
    assert collections.note_tick(busy=True) is True
    collections.collect()
    assert collections.note_tick(busy=True) is False  # deferring again, from now
    assert collections.deferring


def test_collect_is_a_full_pass_that_frees_old_cycles():
    import weakref

    class Node:
        pass

    collections = FullCollections(Clock())
    collections.note_tick(busy=True)
    node = Node()
    node.me = node  # a cycle: only the collector frees it
    alive = weakref.ref(node)
    gc.collect(1)  # still referenced: promoted to the oldest generation
    del node
    gc.collect(1)  # what the young generations do while deferring: they do not look there
    assert alive() is not None
    collections.collect()
    assert alive() is None


def test_restore_puts_the_thresholds_back_when_the_app_exits_mid_flood():
    gc.set_threshold(500, 7, 9)
    collections = FullCollections(Clock())
    collections.note_tick(busy=True)
    collections.restore()
    assert gc.get_threshold() == (500, 7, 9)
