"""Every metric liveshop exports, in one place.

They go through ``ray.util.metrics``, so they appear in the Ray dashboard (Metrics view, with
Grafana) and on each node's Prometheus endpoint, prefixed ``ray_``. docs/operations.md lists
them with what to do when one goes red; keep the two in step.

Per-socket and per-frame work counts in plain integers (a socket write must not pay for a
metric call); a component's :class:`Exporter` turns those counts into Ray metrics once a
second. Histograms are observed per event that is already batched: a room message, an actor
call, a commit, a commerce operation. Metric
objects are made on first use in each process: outside a Ray worker (unit tests, benches)
recording is a cheap no-op.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

#: Seconds between a component's exports of its counts.
EXPORT_INTERVAL = 1.0

#: Seconds: from a millisecond (loopback, a batch) to 10 s (the actor call timeout).
LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
#: Items per batched actor call: 1 (idle) up to the SKU batch cap (2,048).
BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048]


def _metrics() -> Any:
    from ray.util import metrics

    return metrics


@functools.cache
def gauge(name: str, description: str, tags: tuple[str, ...]) -> Any:
    return _metrics().Gauge(name, description, tag_keys=tags)


@functools.cache
def counter(name: str, description: str, tags: tuple[str, ...]) -> Any:
    return _metrics().Counter(name, description, tag_keys=tags)


@functools.cache
def histogram(
    name: str, description: str, buckets: tuple[float, ...], tags: tuple[str, ...]
) -> Any:
    return _metrics().Histogram(name, description, boundaries=list(buckets), tag_keys=tags)


# -- gateways --------------------------------------------------------------------------------

GATEWAY_GAUGES = {
    "connections": ("liveshop_gateway_connections", "Authenticated WebSocket connections"),
    "rooms": ("liveshop_gateway_rooms", "Rooms this gateway follows on the broker"),
    "redis": ("liveshop_gateway_redis_connected", "1 while the broker subscription is up"),
}
GATEWAY_COUNTERS = {
    "frames_in": ("liveshop_gateway_frames_in", "Frames received from clients (requests)"),
    "frames_out": ("liveshop_gateway_frames_out", "Push frames written to sockets"),
    "messages_in": ("liveshop_gateway_broker_messages", "Room messages received from Redis"),
    "slow_closed": ("liveshop_gateway_slow_closed", "Connections closed as slow consumers"),
    "gaps_repaired": (
        "liveshop_gateway_gaps_repaired",
        "Broker gaps (lost room messages) filled from the room before delivery",
    ),
    "gaps_unrepaired": (
        "liveshop_gateway_gaps_unrepaired",
        "Broker gaps the gateway could not fill; its clients resubscribe themselves",
    ),
}


def publish_to_deliver(seconds: float, gateway: str) -> None:
    """A room message's age when the gateway wrote it to its sockets."""
    histogram(
        "liveshop_publish_to_deliver_seconds",
        "From the room publishing a message to the gateway writing it to its sockets",
        tuple(LATENCY_BUCKETS),
        ("gateway",),
    ).observe(max(0.0, seconds), tags={"gateway": gateway})


# -- batched actor calls (gateways and API replicas) -------------------------------------------


def batch(kind: str, method: str, size: int, seconds: float) -> None:
    """One batched call to a domain actor: how many items it carried and its round trip."""
    tags = {"actor": kind, "method": method}
    histogram(
        "liveshop_batch_size", "Items per batched actor call", tuple(BATCH_BUCKETS),
        ("actor", "method"),
    ).observe(size, tags=tags)  # fmt: skip
    histogram(
        "liveshop_actor_call_seconds", "Round trip of a batched actor call",
        tuple(LATENCY_BUCKETS), ("actor", "method"),
    ).observe(seconds, tags=tags)  # fmt: skip


def commerce(op: str, outcome: str, seconds: float) -> None:
    """One commerce operation (buy, checkout, pay, bid, ...) as its caller saw it."""
    histogram(
        "liveshop_commerce_seconds",
        "Commerce operations from request to durable answer (checkout latency: op=checkout, "
        "1-tap purchases: op=buy)",
        tuple(LATENCY_BUCKETS),
        ("op", "outcome"),
    ).observe(seconds, tags={"op": op, "outcome": outcome})


# -- domain actors -------------------------------------------------------------------------------

ROOM_GAUGES = {
    "viewers": ("liveshop_room_viewers", "Viewers of the room, summed over gateways"),
    "offset": ("liveshop_room_offset", "The room's last event offset"),
    "calls": (
        "liveshop_room_queue_depth",
        "Calls inside the room actor, not yet answered (waiting for a commit, mostly)",
    ),
}
ROOM_COUNTERS = {
    "commands": ("liveshop_room_commands", "Commands applied by the room actor"),
    "events": ("liveshop_room_events", "Events the room published"),
    "flushes": ("liveshop_room_flushes", "Ticks the room published (messages to Redis)"),
    "publish_errors": (
        "liveshop_room_publish_errors",
        "Room messages Redis did not take (live viewers miss them until a gap is repaired)",
    ),
    "commit_errors": (
        "liveshop_room_commit_errors",
        "Ticks PostgreSQL refused; the room holds its events and retries",
    ),
}
SKU_COUNTERS = {
    "decisions": ("liveshop_sku_decisions", "Buys, holds and other decisions the SKU made"),
    "batches": ("liveshop_sku_batches", "Batches of decisions the SKU actor received"),
}
SKU_GAUGES = {
    "available": ("liveshop_sku_available", "Units on sale now (committed)"),
    "sold": ("liveshop_sku_sold", "Units sold (committed)"),
    "calls": (
        "liveshop_sku_queue_depth",
        "Calls inside the SKU actor, not yet answered (waiting for a group commit, mostly)",
    ),
}


#: Per entity host (liveshop/actors/host.py), tagged ``host`` and, for the counts by kind,
#: ``kind``.
HOST_GAUGES = {
    "mailbox": (
        "liveshop_host_mailbox_depth",
        "Calls accepted by the host's entities and not yet answered (all kinds)",
    ),
    "db_connections": (
        "liveshop_host_db_connections",
        "PostgreSQL connections in use of the host's shared pool",
    ),
    "db_pool_size": ("liveshop_host_db_pool_size", "Connections the host's pool may open"),
}
HOST_KIND_GAUGES = {
    "resident": ("liveshop_host_entities", "Entities resident in the host, by kind"),
}
HOST_KIND_COUNTERS = {
    "activations": ("liveshop_host_activations", "Entities activated (loaded), by kind"),
    "passivations": ("liveshop_host_passivations", "Entities passivated (left memory), by kind"),
    "failed_activations": (
        "liveshop_host_failed_activations",
        "Activations that failed (no such entity, PostgreSQL away), by kind",
    ),
    "fenced": (
        "liveshop_host_fenced",
        "Entities dropped because another host claimed them (a split brain avoided), by kind",
    ),
}


def commit_seconds(kind: str, seconds: float) -> None:
    """One group commit of a domain actor (a room's tick, a SKU's batch). Tagged by kind
    only: a histogram per room or SKU would be a dozen series for each, forever."""
    histogram(
        "liveshop_commit_seconds", "One group commit to PostgreSQL by a domain actor",
        tuple(LATENCY_BUCKETS), ("actor",),
    ).observe(seconds, tags={"actor": kind})  # fmt: skip


class Exporter:
    """Turns a component's plain counts into Ray metrics: gauges are set, counters grow by
    what they grew since the last export."""

    def __init__(
        self,
        tags: Mapping[str, str],
        gauges: Mapping[str, tuple[str, str]],
        counters: Mapping[str, tuple[str, str]],
    ) -> None:
        self.tags = dict(tags)
        keys = tuple(self.tags)
        self._gauges = {k: gauge(n, d, keys) for k, (n, d) in gauges.items()}
        self._counters = {k: counter(n, d, keys) for k, (n, d) in counters.items()}
        self._last: dict[str, float] = dict.fromkeys(counters, 0.0)

    def export(self, values: Mapping[str, float]) -> None:
        for key, metric in self._gauges.items():
            if key in values:
                metric.set(float(values[key]), tags=self.tags)
        for key, metric in self._counters.items():
            value = float(values.get(key, 0.0))
            grown = value - self._last[key]
            if grown > 0:
                metric.inc(grown, tags=self.tags)
            # A restarted process counts from 0 again: so does its export.
            self._last[key] = value

    async def run(self, read: Callable[[], Mapping[str, float]]) -> None:
        """Export what ``read`` says every EXPORT_INTERVAL, for as long as the component
        lives (a task of its own); a failure is logged and never takes the component down."""
        while True:
            await asyncio.sleep(EXPORT_INTERVAL)
            try:
                self.export(read())
            except Exception:
                log.exception("metrics export failed (%s)", self.tags)
