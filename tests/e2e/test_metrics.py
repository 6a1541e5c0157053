"""What an SRE sees: liveshop's metrics on Ray's Prometheus endpoint (what the dashboard's
Metrics view reads), and room and SKU actors findable by name and label in the state API
(the dashboard's Actors view)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import httpx
import ray
from ray.util.state import list_actors

from liveshop.actors import wiring
from liveshop.config import NAMESPACE
from liveshop.mesh import hosts
from tests.e2e.client import Client
from tests.e2e.conftest import Running

Sample = tuple[str, dict[str, str], float]
LINE = re.compile(r"^(\w+)(?:\{(.*)\})? ([-+0-9.eE]+|NaN|[+-]Inf)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _scrape() -> list[Sample]:
    """Every sample every node's metrics agent exports now."""
    samples: list[Sample] = []
    for node in ray.nodes():
        if not node["Alive"]:
            continue
        url = f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
        for line in httpx.get(url, timeout=10).text.splitlines():
            match = LINE.match(line)
            if match:
                labels = dict(LABEL.findall(match.group(2) or ""))
                samples.append((match.group(1), labels, float(match.group(3))))
    return samples


def _value(samples: list[Sample], name: str, **labels: str) -> float | None:
    """The sum of ``name`` (or ``name_total``, as Prometheus names counters) over the
    samples carrying ``labels``; None if there is none."""
    found = [
        value
        for sample, have, value in samples
        if sample in (name, f"{name}_total") and labels.items() <= have.items()
    ]
    return sum(found) if found else None


async def test_metrics_reach_prometheus_and_actors_are_named_by_what_they_own(
    running: Running, new_id: Callable[[str], str]
) -> None:
    room, sku = new_id("metrics"), new_id("mug")
    async with running.http() as http:
        assert (await http.post("/rooms", json={"id": room, "title": "Metrics"})).status_code == 201
        product = {"id": sku, "title": "Mug", "price_minor": 900, "currency": "EUR"}
        assert (await http.post("/products", json=product)).status_code == 201
        created = await http.post("/skus", json={"id": sku, "product_id": sku, "on_hand": 5})
        assert created.status_code == 201, created.text
    url = running.settings.ws_url
    host = await Client.open(url, running.token("host", {room: ["host"]}))
    viewer = await Client.open(url, running.token("ann", {room: ["viewer"]}))
    try:
        for client in (host, viewer):
            await client.result("subscribe", room=room)
        for i in range(5):
            await host.result("chat", room=room, text=f"hello {i}")
        await viewer.result("buy", room=room, sku=sku, quantity=1, key="m-1")

        expected: dict[tuple[str, tuple[tuple[str, str], ...]], Callable[[float], bool]] = {
            ("ray_liveshop_room_viewers", (("room", room),)): lambda v: v == 2,
            ("ray_liveshop_room_events", (("room", room),)): lambda v: v >= 5,
            ("ray_liveshop_room_commands", (("room", room),)): lambda v: v >= 5,
            ("ray_liveshop_room_queue_depth", (("room", room),)): lambda v: v >= 0,
            ("ray_liveshop_sku_queue_depth", (("sku", sku),)): lambda v: v >= 0,
            ("ray_liveshop_sku_decisions", (("sku", sku),)): lambda v: v >= 1,
            ("ray_liveshop_sku_sold", (("sku", sku),)): lambda v: v == 1,
            ("ray_liveshop_commit_seconds_count", (("actor", "sku"),)): (lambda v: v >= 1),
            ("ray_liveshop_gateway_connections", ()): lambda v: v >= 2,
            ("ray_liveshop_gateway_frames_out", ()): lambda v: v >= 4,
            ("ray_liveshop_publish_to_deliver_seconds_count", ()): lambda v: v >= 3,
            ("ray_liveshop_batch_size_count", (("actor", "room"), ("method", "handle"))): (
                lambda v: v >= 1
            ),
            ("ray_liveshop_commerce_seconds_count", (("op", "buy"), ("outcome", "ok"))): (
                lambda v: v >= 1
            ),
        }
        deadline = time.monotonic() + 60
        while True:
            samples = await asyncio.to_thread(_scrape)
            missing = [
                (name, labels)
                for (name, labels), ok in expected.items()
                if (value := _value(samples, name, **dict(labels))) is None or not ok(value)
            ]
            if not missing:
                break
            assert time.monotonic() < deadline, f"not (yet) exported right: {missing}"
            await asyncio.sleep(1)
    finally:
        await host.ws.close()
        await viewer.ws.close()

    # The dashboard's Actors view: the room's and the SKU's actor by name, labelled by id.
    actors = await asyncio.to_thread(
        list_actors,
        address=wiring.state_address(),
        filters=[("ray_namespace", "=", NAMESPACE), ("state", "=", "ALIVE")],
        detail=True,
        limit=10_000,
    )
    by_name = {a.name: a for a in actors}
    # Rooms and SKUs are entities hosted many to a process: their host, labelled by name.
    for kind, key in (("room", room), ("sku", sku)):
        name = await hosts.locate(running.settings, kind, key)
        assert by_name[name].repr_name == f"EntityHost({name})"
