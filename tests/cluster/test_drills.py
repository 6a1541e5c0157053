"""Failure drills on a multi-node cluster, under load: kill a gateway, a room actor, a SKU
actor; take Redis and PostgreSQL away for a few seconds; remove a whole node. Each drill
checks that nothing liveshop acknowledged was lost: every acknowledged chat reaches every
viewer exactly once, in order, and every acknowledged purchase has its order.

The tests run in file order and share one cluster; removing a node comes last.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import ray
from ray import serve
from ray.util.state import list_actors

from liveshop.actors import wiring
from liveshop.config import NAMESPACE
from liveshop.mesh import hosts as mesh_hosts
from liveshop.mesh.placement import Placement
from liveshop.serve import applications
from tests.cluster.conftest import ACTORS_NODE, Deployment
from tests.cluster.load import TEMPORARY, Buyer, Chatter, Crowd, Viewer

NewId = Callable[[str], str]


async def _room(dep: Deployment, room: str) -> None:
    async with dep.http() as http:
        created = await http.post("/rooms", json={"id": room, "title": f"Drill {room}"})
        assert created.status_code == 201, created.text


async def _viewers(dep: Deployment, crowd: Crowd, room: str, count: int) -> list[Viewer]:
    viewers = [
        Viewer(dep.settings.ws_url, dep.token(f"v{i}-{room}", {room: ["viewer"]}), room)
        for i in range(count)
    ]
    for viewer in viewers:
        crowd.add(viewer)
    await asyncio.gather(*(v.join() for v in viewers))
    return viewers


def _chatter(dep: Deployment, crowd: Crowd, rooms: list[str], interval: float = 0.05) -> Chatter:
    token = dep.token("host", {room: ["host"] for room in rooms})
    chatter = Chatter(dep.settings.ws_url, token, rooms, interval=interval)
    crowd.add(chatter)
    chatter.start()
    return chatter


async def _chatting_room(
    dep: Deployment, crowd: Crowd, room: str, viewers: int
) -> tuple[str, list[Viewer], Chatter]:
    """A new room, ``viewers`` following it and a host chatting into it."""
    await _room(dep, room)
    followers = await _viewers(dep, crowd, room, viewers)
    return room, followers, _chatter(dep, crowd, [room])


async def _everyone_has_everything(
    viewers: list[Viewer], chatter: Chatter, timeout: float = 45
) -> None:
    """Every acknowledged chat reached every viewer of its room exactly once, in order."""

    async def check(viewer: Viewer) -> None:
        expected = chatter.acked.get(viewer.room, [])
        try:
            await viewer.wait(lambda: set(expected) <= set(viewer.chats()), timeout)
        except TimeoutError:
            missing = [t for t in expected if t not in set(viewer.chats())]
            raise AssertionError(
                f"a viewer of {viewer.room} misses {len(missing)} of {len(expected)} "
                f"acknowledged chats (connects {viewer.connects}, gaps "
                f"{viewer.follower.gaps}, errors {viewer.errors[-3:]})"
            ) from None
        chats = viewer.chats()
        assert len(chats) == len(set(chats)), "a chat was delivered twice"
        where = {text: i for i, text in enumerate(chats)}
        positions = [where[text] for text in expected]
        assert positions == sorted(positions), "acknowledged chats arrived out of order"
        assert viewer.follower.duplicates == 0

    await asyncio.gather(*(check(v) for v in viewers))


async def _serves_on(chatter: Chatter, count: int = 10, timeout: float = 60) -> None:
    """The rooms keep serving: ``count`` more chats are acknowledged from now on (timed by
    what the drill broke, not by a rate a loaded machine may not reach)."""
    mark = {room: len(texts) for room, texts in chatter.acked.items()}
    deadline = time.monotonic() + timeout
    while True:
        grown = [len(chatter.acked.get(room, ())) - mark.get(room, 0) for room in chatter.rooms]
        if min(grown) >= count:
            return
        assert time.monotonic() < deadline, f"rooms stopped serving: {grown} new acks"
        await asyncio.sleep(0.1)


async def _stop(*parts: Any) -> None:
    await asyncio.gather(*(p.stop() for p in parts))


def _actor(name: str) -> Any:
    alive = list_actors(
        address=wiring.state_address(),
        filters=[("name", "=", name), ("state", "=", "ALIVE"), ("ray_namespace", "=", NAMESPACE)],
        detail=True,
    )
    return alive[0] if alive else None


async def _wait_actor(name: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while (actor := await asyncio.to_thread(_actor, name)) is None:
        assert time.monotonic() < deadline, f"actor {name} not alive after {timeout}s"
        await asyncio.sleep(0.5)
    return actor


async def _gateways(dep: Deployment, timeout: float = 30) -> list[dict[str, Any]]:
    """The registry, through the API (retried: after a node loss its replica may be moving)."""
    deadline = time.monotonic() + timeout
    async with dep.http() as http:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                reply = await http.get("/gateways")
                if reply.status_code == 200:
                    gateways: list[dict[str, Any]] = reply.json()["gateways"]
                    return gateways
            assert time.monotonic() < deadline, "GET /gateways kept failing"
            await asyncio.sleep(0.5)


async def _gateway_stats(samples: int = 30) -> dict[str, dict[str, Any]]:
    """Each gateway replica's stats (a handle call reaches one replica: ask several times)."""
    handle = serve.get_app_handle(applications.GATEWAY_APP)
    stats: dict[str, dict[str, Any]] = {}
    for _ in range(samples):
        one = await asyncio.wait_for(handle.stats.remote(), 10)
        stats[one["gateway"]] = one
    return stats


async def test_gateways_and_actors_are_placed_by_the_nodes_resources(
    deployment: Deployment, crowd: Crowd, new_id: NewId
) -> None:
    dep = deployment
    head_id = dep.cluster.head_node.node_id
    worker_id, media_id = dep.worker.node_id, dep.media.node_id
    # One gateway per `gateway` unit: the head's and the worker's, both registered.
    gateways = await _gateways(dep)
    assert sorted(g["node_id"] for g in gateways) == sorted([head_id, worker_id]), gateways
    # Entity hosts go to the nodes that offer `actors`, one per unit, spread over them and
    # labelled so an SRE finds them in the dashboard; rooms are placed on them by hash.
    names = [f"host:{n}" for n in range(4)]
    hosts = [await _wait_actor(name) for name in names]
    assert {h.node_id for h in hosts} == {head_id, worker_id}
    assert [h.repr_name for h in hosts] == [f"EntityHost({name})" for name in names]
    rooms = [new_id("placed") for _ in range(8)]
    for room in rooms:
        await _room(dep, room)
    for room in rooms:  # a viewer each: their gateways activate the rooms
        await _viewers(dep, crowd, room, 1)
    owners = await _owners(dep, "room", rooms)
    assert set(owners.values()) <= set(names) and len(set(owners.values())) >= 2
    for room, host in owners.items():
        assert host == await mesh_hosts.locate(dep.settings, "room", room)
    # Transcoders only where a node offers `media`.
    await asyncio.to_thread(wiring.create_transcoder_actor, rooms[0], dep.settings)
    transcoder = await _wait_actor(wiring.TRANSCODER_ACTOR_PREFIX + rooms[0])
    assert transcoder.node_id == media_id
    ray.kill(ray.get_actor(transcoder.name, namespace=NAMESPACE), no_restart=True)


async def test_killing_a_gateway_process_loses_no_acknowledged_chat(
    deployment: Deployment, crowd: Crowd, new_id: NewId
) -> None:
    dep = deployment
    _, viewers, chatter = await _chatting_room(dep, crowd, new_id("gw-kill"), 12)
    await asyncio.sleep(2.5)  # a registry heartbeat (2 s) counts the new connections
    busiest = max(await _gateways(dep), key=lambda g: g["connections"])
    os.kill(busiest["pid"], signal.SIGKILL)
    await _serves_on(chatter)
    await chatter.stop()
    await _everyone_has_everything(viewers, chatter)
    moved = [v for v in viewers if v.connects > 1]
    assert moved, "no viewer was on the killed gateway"
    for viewer in moved:  # back through the port: to the other gateway or the replacement
        assert viewer.follower.recovered >= 1
        assert busiest["id"] not in viewer.gateways[1:]


async def test_killing_a_rooms_host_loses_no_acknowledged_chat(
    deployment: Deployment, crowd: Crowd, new_id: NewId
) -> None:
    dep = deployment
    room, viewers, chatter = await _chatting_room(dep, crowd, new_id("room-kill"), 10)
    name = await mesh_hosts.locate(dep.settings, "room", room)
    for _ in range(2):
        await _serves_on(chatter, count=5)
        ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=False)
    await _serves_on(chatter)
    await chatter.stop()
    await _everyone_has_everything(viewers, chatter)
    # The room serves on: its restarted host activated it again from PostgreSQL.
    host = await _wait_actor(name)
    assert host.num_restarts >= 2


async def _sku(dep: Deployment, room: str, sku: str, units: int) -> None:
    async with dep.http() as http:
        product = {"id": sku, "title": "Drill kettle", "price_minor": 2500, "currency": "USD"}
        assert (await http.post("/products", json=product)).status_code == 201
        created = await http.post("/skus", json={"id": sku, "product_id": sku, "on_hand": units})
        assert created.status_code == 201, created.text


def _buyers(dep: Deployment, crowd: Crowd, room: str, sku: str, count: int) -> list[Buyer]:
    buyers = []
    for i in range(count):
        user = f"buyer{i}-{sku}"
        token = dep.token(user, {room: ["viewer"]})
        buyer = Buyer(dep.settings.ws_url, token, room, sku, user)
        crowd.add(buyer)
        buyer.start()
        buyers.append(buyer)
    return buyers


async def _sold_out(buyers: list[Buyer], timeout: float = 90) -> None:
    """Until every buyer was told `out_of_stock` (or gave up); the books are checked after."""
    deadline = time.monotonic() + timeout
    while not all(b.sold_out or b.failure for b in buyers) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)


async def _books_balance(dep: Deployment, sku: str, units: int, buyers: list[Buyer]) -> None:
    """Every acknowledged purchase has its order (one unit, this buyer, this SKU), nothing
    was oversold, and the SKU's own audit finds nothing wrong."""
    for buyer in buyers:
        assert buyer.failure is None, buyer.failure
    acked = {order: buyer.user for buyer in buyers for order in buyer.orders.values()}
    assert dep.settings.database_url is not None
    conn = await asyncpg.connect(dep.settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT o.id, o.buyer_id, l.quantity FROM orders o "
            "JOIN order_lines l ON l.order_id = o.id WHERE l.sku = $1",
            sku,
        )
    finally:
        await conn.close()
    stored = {r["id"]: (r["buyer_id"], r["quantity"]) for r in rows}
    for order, user in acked.items():
        assert stored.get(order) == (user, 1), f"acknowledged order {order} is not stored"
    assert len(stored) == len(acked) == units, "sold out means every unit on one order"
    async with dep.http() as http:
        audit = (await http.get(f"/skus/{sku}/audit")).json()
    assert audit["problems"] == [], audit
    assert (audit["sold"], audit["available"], audit["reserved"]) == (units, 0, 0), audit


async def test_killing_a_skus_host_during_a_sale_loses_no_purchase(
    deployment: Deployment, crowd: Crowd, new_id: NewId
) -> None:
    dep = deployment
    room, sku, units = new_id("sku-kill"), new_id("kettle"), 120
    await _room(dep, room)
    await _sku(dep, room, sku, units)
    buyers = _buyers(dep, crowd, room, sku, 12)
    name = await mesh_hosts.locate(dep.settings, "sku", sku)
    for _ in range(3):
        await asyncio.sleep(1.0)
        ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=False)
    await _sold_out(buyers)
    await _stop(*buyers)
    await _books_balance(dep, sku, units, buyers)


async def test_redis_away_for_seconds_then_every_viewer_catches_up(
    deployment: Deployment, crowd: Crowd, new_id: NewId
) -> None:
    dep = deployment
    _, viewers, chatter = await _chatting_room(dep, crowd, new_id("redis-out"), 10)
    await _serves_on(chatter, count=5)
    before = await _gateway_stats()
    await asyncio.to_thread(dep.redis.stop)
    stopped_at = time.monotonic()
    # Chat is committed and answered while Redis is away (only the broadcast is lost)...
    await _serves_on(chatter, count=10)
    await asyncio.sleep(max(0.0, 3 - time.monotonic() + stopped_at))
    await asyncio.to_thread(dep.redis.start)
    await _serves_on(chatter, count=10)
    await chatter.stop()
    # ... and the gateways, back on Redis, fetch what it dropped from the rooms: every viewer
    # gets everything without seeing a jump (no client had to recover by itself).
    await _everyone_has_everything(viewers, chatter)
    assert [v.follower.gaps for v in viewers] == [0] * len(viewers)
    after = await _gateway_stats()

    def grown(key: str) -> int:
        return sum(s[key] for s in after.values()) - sum(s[key] for s in before.values())

    assert grown("gaps_repaired") >= 1 and grown("gaps_unrepaired") == 0, after
    assert all(s["redis"] for s in after.values())


async def test_postgres_away_for_seconds_refuses_with_temporary_errors_and_recovers(
    deployment: Deployment, crowd: Crowd, new_id: NewId
) -> None:
    dep = deployment
    room, sku, units = new_id("pg-out"), new_id("lamp"), 150
    await _room(dep, room)
    await _sku(dep, room, sku, units)
    viewers = await _viewers(dep, crowd, room, 5)
    chatter = _chatter(dep, crowd, [room], interval=0.1)
    buyers = _buyers(dep, crowd, room, sku, 8)
    await asyncio.sleep(1.0)
    sold_before = sum(len(b.orders) for b in buyers)
    await asyncio.to_thread(dep.postgres.stop)
    await asyncio.sleep(3)
    sold_during = sum(len(b.orders) for b in buyers) - sold_before
    await asyncio.to_thread(dep.postgres.start)
    await _sold_out(buyers)
    await chatter.stop()
    await _stop(*buyers)
    # Nothing was acknowledged that PostgreSQL does not hold, refusals were temporary, and
    # the sale finished by itself once the database was back.
    assert sold_during <= len(buyers), "buys kept being acknowledged without PostgreSQL"
    codes = {code for b in buyers for code in b.codes} - {"out_of_stock"}
    assert codes <= TEMPORARY, codes
    await _books_balance(dep, sku, units, buyers)
    await _everyone_has_everything(viewers, chatter)


async def test_adding_a_node_rebalances_entities_and_none_is_written_twice(
    deployment: Deployment, crowd: Crowd, new_id: NewId
) -> None:
    """A node joins with `actors` units: hosts are added, the directory grows, about a
    third of the entities move to the new hosts, by passivation and a fenced activation,
    while a show chats and a sale runs; nothing acknowledged is lost or doubled."""
    dep = deployment
    grown = Placement.default(6)
    rooms = [new_id("grow") for _ in range(4)]
    while len(rooms) < 7:  # and three that the grown directory places on the new hosts
        room = new_id("grow")
        if grown.host("room", room) in ("host:4", "host:5"):
            rooms.append(room)
    for room in rooms:
        await _room(dep, room)
    viewers = [v for room in rooms for v in await _viewers(dep, crowd, room, 2)]
    chatter = _chatter(dep, crowd, rooms, interval=0.05)
    sku, units = new_id("grow-kettle"), 150
    await _sku(dep, rooms[0], sku, units)
    buyers = _buyers(dep, crowd, rooms[0], sku, 8)
    await _serves_on(chatter, count=3)
    before = await _owners(dep, "room", rooms)
    # In this thread: Ray sets a signal handler as a node starts (the clients pause for the
    # seconds it takes, and carry on).
    node = dep.cluster.add_node(**ACTORS_NODE)
    try:
        names = [f"host:{n}" for n in range(6)]
        added = [await _wait_actor(name, timeout=120) for name in names[4:]]
        assert {h.node_id for h in added} == {node.node_id}
        # The rooms that hash to the new hosts move there on their next message.
        deadline = time.monotonic() + 90
        while True:
            placed = {r: await mesh_hosts.locate(dep.settings, "room", r) for r in rooms}
            now = await _owners(dep, "room", rooms)
            if placed == now and set(placed.values()) <= set(names):
                break
            assert time.monotonic() < deadline, (placed, now)
            await asyncio.sleep(1)
        await _serves_on(chatter)
        await _sold_out(buyers)
    finally:
        await chatter.stop()
        await _stop(*buyers)
    await _everyone_has_everything(viewers, chatter)
    await _books_balance(dep, sku, units, buyers)
    moved = {r for r in rooms if before[r] != now[r]}
    # Exactly the rooms the grown directory places on the new hosts moved, and only there.
    assert moved == {r for r in rooms if grown.host("room", r) in names[4:]}, (before, now)
    assert len(moved) >= 3
    dep.extra_nodes.append(node)


async def _owners(dep: Deployment, kind: str, keys: list[str]) -> dict[str, str]:
    """The host each entity's owner epoch names (who activated it last)."""
    assert dep.settings.database_url is not None
    conn = await asyncpg.connect(dep.settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT key, host FROM entity_owners WHERE kind = $1 AND key = ANY($2::text[])",
            kind, keys,
        )  # fmt: skip
    finally:
        await conn.close()
    return {r["key"]: r["host"] for r in rows}


async def test_removing_a_node_moves_its_entities_and_viewers_lose_nothing(
    deployment: Deployment, crowd: Crowd, new_id: NewId
) -> None:
    dep = deployment
    worker_id, head_id = dep.worker.node_id, dep.cluster.head_node.node_id
    rooms = [new_id("node-loss") for _ in range(8)]
    for room in rooms:
        await _room(dep, room)
    viewers = [v for room in rooms for v in await _viewers(dep, crowd, room, 2)]
    chatter = _chatter(dep, crowd, rooms, interval=0.03)
    await _serves_on(chatter, count=3)
    owners = await _owners(dep, "room", rooms)
    on_worker = [r for r in rooms if (await _wait_actor(owners[r])).node_id == worker_id]
    assert on_worker, "no room is hosted on the worker node"
    await asyncio.to_thread(dep.cluster.remove_node, dep.worker)
    # Every room keeps serving: chats are acknowledged after the node went away ...
    await _serves_on(chatter, timeout=120)
    await chatter.stop()
    # ... the rooms of its hosts are hosted on the nodes that are left ...
    alive = {n.node_id for n in [dep.cluster.head_node, *dep.extra_nodes]}
    owners = await _owners(dep, "room", on_worker)
    for room in on_worker:
        assert (await _wait_actor(owners[room])).node_id in alive
    # ... its gateway's viewers reconnected to the other gateway and recovered ...
    await _everyone_has_everything(viewers, chatter)
    assert any(v.connects > 1 for v in viewers)
    # ... and the registry and the replica count follow the cluster.
    deadline = time.monotonic() + 30
    while len(gateways := await _gateways(dep)) != 1:
        assert time.monotonic() < deadline, gateways
        await asyncio.sleep(1)
    assert gateways[0]["node_id"] == head_id
