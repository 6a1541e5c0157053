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

#: Young-generation threshold: allocations minus deallocations between young collections.
YOUNG = 50_000


def tune() -> None:
    """Call once, after start-up (imports and initial connections) and before serving."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)
