"""The entity host's collector (liveshop/gctune.py LongLived): collections on a clock,
long-lived objects frozen out of every later one, and garbage in cycles among them still
reclaimed once the heap doubled."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest

from liveshop import gctune


class Node:
    """Stands for an entity's objects: some refer to each other (a cycle)."""

    __slots__ = ("peer",)

    def __init__(self) -> None:
        self.peer: Node | None = None


@pytest.fixture
def collector() -> Iterator[gctune.LongLived]:
    """LongLived on this test process's collector, put back as it was afterwards."""
    threshold = gc.get_threshold()
    gc.collect()
    long_lived = gctune.LongLived()
    try:
        yield long_lived
    finally:
        gc.callbacks.remove(long_lived._callback)
        gc.set_threshold(*threshold)
        gc.unfreeze()
        gc.collect()


def test_collections_on_the_clock_freeze_what_survives_a_middle_one(
    collector: gctune.LongLived,
) -> None:
    frozen = gc.get_freeze_count()
    entities = [Node() for _ in range(10_000)]
    collector.tick()  # a young collection: they survive it, into the middle generation
    assert len(gc.get_objects(0)) < 1_000 and gc.get_freeze_count() < frozen + len(entities)
    for _ in range(gctune.MIDDLE_EVERY - 1):
        collector.tick()  # ... the last a middle one: what survives it is frozen
    assert gc.get_freeze_count() >= frozen + len(entities)
    assert sum(len(gc.get_objects(g)) for g in range(3)) < 1_000  # nothing old to walk
    assert not collector.reclaim_if_due()  # the heap grew, but not to twice its size


def test_garbage_in_cycles_among_frozen_objects_is_reclaimed_once_the_heap_doubled(
    collector: gctune.LongLived,
) -> None:
    blocks = sys.getallocatedblocks()
    # One block each at least: enough to double the heap.
    nodes = [Node() for _ in range((collector._baseline - blocks // 2 + 10_000) * 2)]
    for a, b in zip(nodes[::2], nodes[1::2], strict=True):
        a.peer, b.peer = b, a  # cycles: reference counting alone never frees them
    gc.collect(1)
    assert gc.get_freeze_count() >= len(nodes)
    del nodes, a, b  # an entity passivated: garbage now, but frozen, so no collection
    gc.collect(1)  # finds it
    assert sys.getallocatedblocks() >= 2 * collector._baseline
    assert collector.reclaim_if_due() and collector.reclaims == 1
    assert sys.getallocatedblocks() < blocks + 100_000  # the cycles were collected
    assert not collector.reclaim_if_due()  # not again until the heap doubles once more
