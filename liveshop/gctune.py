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

import gc
import sys
import time

#: Young-generation threshold: allocations minus deallocations between young collections.
YOUNG = 50_000
#: An entity host collects its frozen objects in full once its heap (memory blocks in use)
#: grew this much since the last time, and is at least RECLAIM_FLOOR blocks: see LongLived.
RECLAIM_GROWTH = 2.0
RECLAIM_FLOOR = 1_000_000
#: An entity host's young threshold: lower than a gateway's, so a middle collection (of at
#: most three times this many objects) stays a few milliseconds.
HOST_YOUNG = 20_000


def tune() -> None:
    """Call once, after start-up (imports and initial connections) and before serving."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)


class LongLived:
    """An entity host's collector: what survives a young and a middle collection is frozen.

    A host's heap is mostly entities living minutes to hours (100,000 resident carts are
    about 700,000 tracked objects), and CPython walks all of it in every middle and full
    collection: measured, a 280 ms middle collection in a host holding 55,000 carts, with
    every call to every entity of the host waiting behind it. Here, objects that survived a
    young and then a middle collection (every third collection is a middle one) are frozen
    instead (``gc.freeze``: no collection walks them again; reference counting still frees
    them), so a collection walks only the young (at most ``3 * HOST_YOUNG`` objects):
    milliseconds, however many entities are resident.

    The price: garbage in *cycles* among frozen objects (a passivated entity whose objects
    refer to each other) is found only when the frozen set is collected in full, which
    :meth:`reclaim_if_due` does once the heap doubled since the last time (the host grew,
    or that much garbage built up): as rare as CPython's own full collections, and memory
    within about twice what is alive. The heap is measured in memory blocks in use
    (``sys.getallocatedblocks``: ~1 ms), not by counting frozen objects, which walks them
    all (~150 ms in a host of 50,000 carts: a stall of its own).
    """

    def __init__(self) -> None:
        gc.set_threshold(HOST_YOUNG, 1, gc.get_threshold()[2])
        self.reclaims = 0
        self._baseline = max(sys.getallocatedblocks(), RECLAIM_FLOOR)
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info.get("generation", 0) >= 1:
            gc.freeze()

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
