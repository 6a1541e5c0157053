"""Garbage-collector settings for the long-lived, object-heavy processes (gateways, actors).

A gateway holding 10,000 WebSocket connections has about a million objects that live as long
as their connection. With CPython's defaults (a young collection every 700 allocations)
request-scoped objects that wait a tick (futures, tasks, batches: up to a few hundred ms)
survive two young collections and are promoted to the old generation, and every few seconds
a full collection walks the whole heap: measured 0.5-0.7 s pauses every 5-6 s at 10,000
viewers, which stalled every request and push behind them (p99 latency above 1 s).

Collecting the young generation less often lets those objects die young (by reference
counting) instead of being promoted, so full collections become rare; objects created at
start-up (Ray, Serve, pydantic models, our modules) are frozen out of every collection.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time

log = logging.getLogger(__name__)

#: Young-generation threshold: allocations minus deallocations between young collections.
YOUNG = 50_000
#: An entity host's collections run on a clock (see LongLived): a young one every TICK
#: seconds, a middle one every MIDDLE_EVERY ticks; its frozen objects are collected in full
#: once its heap (memory blocks in use) grew RECLAIM_GROWTH times since the last time and
#: is at least RECLAIM_FLOOR blocks, looked at every RECLAIM_EVERY seconds.
TICK = 0.1
MIDDLE_EVERY = 5
RECLAIM_GROWTH = 2.0
RECLAIM_FLOOR = 1_000_000
RECLAIM_EVERY = 10.0


def tune() -> None:
    """Call once, after start-up (imports and initial connections) and before serving."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)


class LongLived:
    """An entity host's collector: collections on a clock, and what survives a young and a
    middle collection frozen.

    A host's heap is mostly entities living minutes to hours (100,000 resident carts are
    about 700,000 tracked objects). Measured in a host of 55,000 carts: CPython's middle
    collections walked its freshly activated carts (280 ms), and its young ones, set off by
    allocations *minus deallocations*, found 10,000-90,000 young objects each (old objects
    dying hold the count back), each costing 0.5-1 µs in a heap that size (their references
    into it miss the caches): 10-45 ms of CPU, 20-90 ms of wall time, every entity of the host
    waiting.

    So a host collects on a clock instead (:meth:`run`, in its event loop): a young
    collection every TICK finds what a tenth of a second left (a few hundred objects, well
    under a millisecond), a middle one every MIDDLE_EVERY ticks, and what survives that is
    frozen (``gc.freeze``: no collection walks it again; reference counting still frees
    it). CPython's own collections stay, at gateway thresholds, for a burst between ticks.

    The price: garbage in *cycles* among frozen objects (a passivated entity whose objects
    refer to each other) is found only when the frozen set is collected in full, once the
    heap doubled since the last time (the host grew, or that much garbage built up): as rare
    as CPython's own full collections, and memory within about twice what is alive. The heap
    is measured in memory blocks in use (``sys.getallocatedblocks``: ~1 ms), not by counting
    frozen objects, which walks them all (~150 ms in a host of 50,000 carts).
    """

    def __init__(self) -> None:
        gc.set_threshold(YOUNG, 1, gc.get_threshold()[2])
        self.reclaims = 0
        self._ticks = 0
        self._baseline = max(sys.getallocatedblocks(), RECLAIM_FLOOR)
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info.get("generation", 0) >= 1:
            gc.freeze()

    def tick(self) -> None:
        """A young collection, or every MIDDLE_EVERY ticks a middle one."""
        self._ticks += 1
        gc.collect(1 if self._ticks % MIDDLE_EVERY == 0 else 0)

    def reclaim_if_due(self) -> bool:
        """Collect the frozen objects in full if the heap doubled since the last time."""
        if sys.getallocatedblocks() < RECLAIM_GROWTH * self._baseline:
            return False
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self._baseline = max(sys.getallocatedblocks(), RECLAIM_FLOOR)
        self.reclaims += 1
        return True

    async def run(self) -> None:
        """The clock: a task of the host's event loop, for as long as the host lives."""
        since_reclaim = 0.0
        while True:
            await asyncio.sleep(TICK)
            self.tick()
            since_reclaim += TICK
            if since_reclaim >= RECLAIM_EVERY:
                since_reclaim = 0.0
                if self.reclaim_if_due():
                    log.info("collected the long-lived objects in full (heap doubled)")


class Pauses:
    """How long the collector stopped this process, by generation (count, total and longest
    pause in seconds): an entity host's tail latency is its longest collections."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.total = [0.0, 0.0, 0.0]
        self.longest = [0.0, 0.0, 0.0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._started = now
            return
        generation = info.get("generation", 0)
        took = now - self._started
        self.count[generation] += 1
        self.total[generation] += took
        self.longest[generation] = max(self.longest[generation], took)

    def view(self) -> dict[str, list[float]]:
        return {"count": list(self.count), "seconds": list(self.total),
                "longest": list(self.longest)}  # fmt: skip
