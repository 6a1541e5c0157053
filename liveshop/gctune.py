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
import time

#: Young-generation threshold: allocations minus deallocations between young collections.
YOUNG = 50_000


def tune() -> None:
    """Call once, after start-up (imports and initial connections) and before serving."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)


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
