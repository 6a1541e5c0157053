"""Passivation and activation round trips of every entity kind, against real PostgreSQL and
Redis, through the host life cycle (liveshop/mesh/host.py) with the real entity classes
(liveshop/actors/host.py KINDS) and no Ray: an entity its host stops and activates again on
the next call is the entity it was (same state, same answers to retried requests; a room
keeps its epoch, so nothing anyone saw was lost), and the new activation fenced the old one
out (its epoch is no longer current, its writes are refused).

Pushes between entities go through Ray (mesh/client.py); here Ray's automatic start is
switched off, so such a push fails softly (it is logged) instead of starting a cluster, and
the flows below avoid needing one.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgpack
import pytest
import ray
from ray._private import auto_init_hook
from redis import asyncio as aioredis

from liveshop import clock
from liveshop.actors.auction_actor import AuctionActor
from liveshop.actors.cart_actor import CartActor
from liveshop.actors.channel_actor import ChannelActor
from liveshop.actors.host import ALWAYS_ON, factories
from liveshop.actors.resources import Resources
from liveshop.actors.room_actor import RoomActor
from liveshop.actors.sku_actor import SkuActor
from liveshop.commerce.auction import AuctionTerms
from liveshop.commerce.cart import Cart
from liveshop.commerce.inventory import Buy, Release, Reserve, Restock
from liveshop.commerce.product import Product
from liveshop.config import Settings
from liveshop.errors import LiveshopError, Unavailable
from liveshop.mesh.host import Entity, Factory, Host
from liveshop.mesh.hosts import Hosts
from liveshop.mesh.placement import Placement
from liveshop.mesh.room_client import RoomClient
from liveshop.mesh.sku_client import SkuClient
from liveshop.payments.cashier import Cashier
from liveshop.rooms.channel import ChannelInfo
from liveshop.rooms.commands import (
    Actor,
    Ask,
    Chat,
    CreatePoll,
    Joined,
    Mute,
    Pin,
    PinMessage,
    React,
    SystemMessage,
    Upvote,
    Vote,
)
from liveshop.rooms.room import RoomInfo
from liveshop.rooms.schedule import Show
from liveshop.storage.auctions import AuctionStore
from liveshop.storage.broker import RedisPublisher, channel_for
from liveshop.storage.carts import CartStore
from liveshop.storage.channels import ChannelStore
from liveshop.storage.owners import Fence, Fenced, OwnerStore
from liveshop.storage.products import ProductStore
from liveshop.storage.rooms import RoomStore
from liveshop.storage.skus import SkuStore
from liveshop.tokens import Role

#: The one host of these tests (a slot name, as `liveshop up` names them).
HOST = "host:0"
#: Generous: the machine may be busy with other test runs.
TIMEOUT = 30.0
HOSTING = Actor("hana", "Hana", frozenset({Role.HOST}))
ANN = Actor("ann", "Ann", frozenset({Role.VIEWER}))
BOB = Actor("bob", "Bob", frozenset({Role.VIEWER}))


@dataclass
class Harness:
    host: Host
    res: Resources
    owners: OwnerStore
    pool: asyncpg.Pool
    factories: dict[str, Factory]

    def rebuild(self, *, passivate_after: float) -> None:
        """A new host in place of the current one (which holds no entity yet)."""
        assert not self.host.slots
        self.host = Host(HOST, self.factories, self.owners, _placement,
                         passivate_after=passivate_after, never_passivate=ALWAYS_ON)  # fmt: skip

    async def call(self, kind: str, key: str, method: str, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.wait_for(self.host.call(kind, key, method, args, kwargs), TIMEOUT)

    async def handle(self, kind: str, key: str, batch: list[Any]) -> list[Any]:
        """A batch through the entity's ``handle`` (answered once committed); every item must
        succeed."""
        results: list[Any] = await self.call(kind, key, "handle", batch)
        refused = [r for r in results if isinstance(r, LiveshopError)]
        assert not refused, refused
        return results

    async def entity(self, kind: str, key: str) -> Entity:
        return await asyncio.wait_for(self.host.entity(kind, key), TIMEOUT)

    def fence(self, kind: str, key: str) -> Fence:
        fence = self.host.slots[(kind, key)].fence
        assert fence is not None
        return fence

    async def round_trip(self, kind: str, key: str) -> tuple[Fence, Fence]:
        """Passivate ``kind:key``, then activate it again; the fences of both activations."""
        old = self.fence(kind, key)
        assert await self.owners.owner(kind, key) == (HOST, old.epoch)
        assert await asyncio.wait_for(self.host.passivate(kind, key), TIMEOUT)
        assert (kind, key) not in self.host.slots
        assert not await self.host.passivate(kind, key)  # nothing resident to stop
        await self.entity(kind, key)
        new = self.fence(kind, key)
        assert new.epoch == old.epoch + 1
        assert await self.owners.owner(kind, key) == (HOST, new.epoch)
        await assert_fenced(self.pool, old)
        assert not new.lost
        return old, new

    def assert_counted(self, kind: str, *, activations: int = 2, passivations: int = 1) -> None:
        stats = self.host.stats
        assert stats.activations[kind] == activations
        assert stats.passivations[kind] == passivations
        assert not stats.failed_activations and not stats.fenced and not stats.moved


def unique(prefix: str) -> str:
    """Ids unique across runs: the configured Redis is shared with other test sessions."""
    return f"{prefix}-{secrets.token_hex(4)}"


async def assert_fenced(pool: asyncpg.Pool, fence: Fence) -> None:
    """``fence``'s epoch is no longer current: a write presenting it is refused."""
    async with pool.acquire() as conn:
        with pytest.raises(Fenced):
            async with conn.transaction():
                await fence.check(conn)
    assert fence.lost


async def eventually(check: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


async def _placement() -> Placement:
    """Every entity is placed on this one host."""
    return Placement((HOST,))


@pytest.fixture
async def harness(
    pool: asyncpg.Pool, postgres_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    """A :class:`Host` named ``host:0`` that every entity is placed on, built like
    EntityHost builds its own (liveshop/actors/host.py), without Ray."""
    # A push to another entity must fail softly: never start a Ray cluster in this process,
    # nor reach the hosts of one that a test tier before this one started.
    monkeypatch.setattr(auto_init_hook, "enable_auto_connect", False)

    async def no_hosts(_self: Hosts, name: str) -> Any:
        raise Unavailable(f"no entity host {name} in this test")

    monkeypatch.setattr(Hosts, "host", no_hosts)
    ray_before = ray.is_initialized()
    await pool.execute("TRUNCATE entity_owners, carts, cart_adds, commerce_events CASCADE")
    settings = Settings(
        database_url=postgres_url, redis_url=redis_url, passivate_after=3600.0, automod=""
    )
    res = Resources(
        host=HOST,
        settings=settings,
        pool=pool,
        publisher=RedisPublisher(redis_url),
        rooms=RoomClient(settings, RoomStore(pool)),
        skus=SkuClient(settings, SkuStore(pool)),
        cashier=Cashier.using(settings, pool),
    )
    entity_factories = factories(res)
    owners = OwnerStore(pool)

    host = Host(
        HOST,
        entity_factories,
        owners,
        _placement,
        passivate_after=3600.0,
        never_passivate=ALWAYS_ON,
    )
    harness = Harness(host, res, owners, pool, entity_factories)
    try:
        yield harness
    finally:
        await asyncio.wait_for(harness.host.close(), TIMEOUT)
        await res.rooms.close()
        await res.skus.close()
        await res.publisher.close()
    assert ray.is_initialized() == ray_before


async def _product(pool: asyncpg.Pool, *skus: str, on_hand: int = 10) -> None:
    product_id = unique("prod")
    product = await ProductStore(pool).create(Product(product_id, "Serum", 2500, "EUR"))
    for sku in skus:
        await SkuStore(pool).create(
            sku, product, on_hand=on_hand, limit_per_buyer=None, now=clock.now()
        )


async def _sku_row(pool: asyncpg.Pool, sku: str) -> dict[str, Any]:
    row = await pool.fetchrow(
        "SELECT on_hand, reserved, sold, version FROM skus WHERE id = $1", sku
    )
    assert row is not None
    return dict(row)


# -- rooms ------------------------------------------------------------------------------------


def _room_state(actor: RoomActor) -> dict[str, Any]:
    """Everything a room is, in memory: what subscribers get, its durable state, its history."""
    room = actor.room
    durable = room.durable_state()
    for members in ("chatters", "uniques"):  # sets, kept in any order
        durable[members] = sorted(durable[members])
    return {
        "epoch": room.epoch,
        "offset": room.offset,
        "durable": durable,
        "history": [e.to_wire() for e in room.history],
        "viewers": room.viewers(clock.now()),
    }


def _without(view: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k not in keys}


async def _room_views(h: Harness, room_id: str, since: tuple[int, str]) -> list[Any]:
    """A fresh subscriber's snapshot and a reconnecting one's missed events."""
    views: list[Any] = await h.call("room", room_id, "join", [(None, None), (since, "ann")])
    return views


async def _published(pubsub: aioredis.client.PubSub, timeout: float = TIMEOUT) -> dict[str, Any]:
    """The next room message on Redis that carries events."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        if message is None or message["type"] != "message":
            continue
        decoded: dict[str, Any] = msgpack.unpackb(message["data"], raw=False)
        if decoded["events"]:
            return decoded
    raise AssertionError("no room message with events on Redis")


async def test_a_room_comes_back_with_its_epoch_offset_state_and_history(
    harness: Harness, redis_url: str
) -> None:
    h = harness
    room_id = unique("room")
    await RoomStore(h.pool).create_room(RoomInfo(room_id, "Launch", host_id="hana"), epoch="e1")
    first = await h.handle("room", room_id, [
        Chat(ANN, "hello"),
        Chat(HOSTING, "welcome, everyone"),
        CreatePoll(HOSTING, "Which colour?", ("red", "blue"), 3600.0),
        Ask(BOB, "Does it ship to Spain?"),
        React(ANN, "heart", 3),
        Joined(ANN),
        Joined(BOB),
    ])  # fmt: skip
    poll_id, question_id = first[2]["poll_id"], first[3]["question_id"]
    second = await h.handle("room", room_id, [
        Vote(ANN, poll_id, 1),
        Vote(BOB, poll_id, 0),
        Upvote(ANN, question_id),
        PinMessage(HOSTING, first[1]["offset"]),
        SystemMessage(HOSTING, "Ten minutes left"),
        Mute(HOSTING, "bob", 600),
        React(BOB, "fire"),
    ])  # fmt: skip
    actor = await h.entity("room", room_id)
    assert isinstance(actor, RoomActor)
    # Two chats, the poll, the question, the pin, the system line, the mute.
    assert (second[4]["offset"], actor.room.offset) == (6, 7)
    assert not actor.room.quiet(clock.now())  # the poll runs: not idle
    before = _room_state(actor)
    views_before = await _room_views(h, room_id, (first[0]["offset"], "e1"))
    assert views_before[1]["recovered"] is True
    assert [e["offset"] for e in views_before[1]["events"]] == list(range(2, 8))
    assert views_before[0]["polls"][0]["tallies"] == [1, 1]
    assert views_before[0]["reactions"] == {"heart": 3, "fire": 1}

    old, _ = await h.round_trip("room", room_id)

    again = await h.entity("room", room_id)
    assert again is not actor
    assert isinstance(again, RoomActor)
    after = _room_state(again)
    assert after == before  # the epoch among them: nothing was lost
    assert after["epoch"] == "e1"
    views_after = await _room_views(h, room_id, (first[0]["offset"], "e1"))
    # Recent joiners are not kept (see test_recent_joiners_survive_passivation).
    assert [_without(v, "recent_joiners") for v in views_after] == [
        _without(v, "recent_joiners") for v in views_before
    ]
    stored = await RoomStore(h.pool).load(room_id)
    assert (stored.epoch, stored.offset) == ("e1", 7)

    # The room goes on where it stopped: the next event is offset 8 of the same epoch, in
    # PostgreSQL and on Redis.
    redis = aioredis.Redis.from_url(redis_url)
    pubsub = redis.pubsub()
    try:
        await pubsub.subscribe(channel_for(room_id))
        [chat] = await h.handle("room", room_id, [Chat(ANN, "still here")])
        assert chat["offset"] == 8
        message = await _published(pubsub)
        assert (message["room"], message["epoch"]) == (room_id, "e1")
        assert [e["offset"] for e in message["events"]] == [8]
    finally:
        await pubsub.aclose()
        await redis.aclose()
    # The old activation can no longer commit a tick.
    with pytest.raises(Fenced):
        await RoomStore(h.pool, fence=old).save_tick(
            room_id, epoch="e1", offset=8, state={}, events=[]
        )
    h.assert_counted("room")


async def test_recent_joiners_survive_passivation(harness: Harness) -> None:
    """Who joined lately is part of every snapshot; a passivated room must not forget it."""
    h = harness
    room_id = unique("room")
    await RoomStore(h.pool).create_room(RoomInfo(room_id, "Launch"), epoch="e1")
    await h.handle("room", room_id, [Joined(ANN), Joined(BOB), Chat(ANN, "hi")])
    [before] = await h.call("room", room_id, "join", [(None, None)])
    assert [j["id"] for j in before["recent_joiners"]] == ["ann", "bob"]
    await h.round_trip("room", room_id)
    [after] = await h.call("room", room_id, "join", [(None, None)])
    assert after["unique_viewers"] == before["unique_viewers"] == 2
    assert after["recent_joiners"] == before["recent_joiners"]


async def test_a_room_command_in_flight_when_passivated_is_answered(harness: Harness) -> None:
    """A host may stop a room with calls in flight (Host.passivate; a fenced room is dropped
    at once). A command already on its way into the room must then be answered, committed
    or refused (the caller retries), never left waiting for a tick that will not come."""
    h = harness
    room_id = unique("room")
    await RoomStore(h.pool).create_room(RoomInfo(room_id, "Launch", host_id="hana"), epoch="e1")
    await h.entity("room", room_id)
    # A pin first reads the product's SKUs from PostgreSQL (none here), outside the room's
    # lock: the room is stopped meanwhile.
    product = Product(unique("prod"), "Kettle", 4500, "EUR")
    pin = asyncio.ensure_future(
        h.host.call("room", room_id, "handle", ([Pin(HOSTING, product)],), {})
    )
    try:
        await asyncio.sleep(0)
        assert await h.host.passivate("room", room_id)
        done, _ = await asyncio.wait([pin], timeout=10.0)
        assert done, "the pin was never answered"
    finally:
        pin.cancel()
    [room] = await h.call("room", room_id, "join", [(None, None)])
    if pin.exception() is None:  # answered: then it is in the room as activated again
        assert room["pinned"] is not None and room["offset"] == 1
    else:  # refused: then it is nowhere
        assert room["pinned"] is None and room["offset"] == 0


# -- SKUs -------------------------------------------------------------------------------------


async def test_a_sku_comes_back_with_its_counts_holds_and_answers(harness: Harness) -> None:
    h = harness
    sku = unique("sku")
    await _product(h.pool, sku, on_hand=10)
    restocked, bought, held = await h.handle("sku", sku, [
        Restock(5, "delivery-1"),
        Buy("ann", 2, "buy-1"),
        Reserve("bob", 3, "hold-1", 600.0),
    ])  # fmt: skip
    actor = await h.entity("sku", sku)
    assert isinstance(actor, SkuActor)
    view = await h.call("sku", sku, "view")
    assert (view["available"], view["sold"], view["on_hand"], view["reserved"]) == (10, 2, 13, 3)
    # A live hold keeps the SKU resident (its clock expires it); nothing else does.
    await eventually(lambda: not actor._push_due.is_set(), "the counter pushed")
    assert not actor.idle()
    row = await _sku_row(h.pool, sku)
    assert row == {"on_hand": 13, "reserved": 3, "sold": 2, "version": 1}
    holds = {rid: (r.buyer_id, r.quantity, r.expires_at) for rid, r in
             actor.inventory.reservations.items()}  # fmt: skip
    assert list(holds) == [held["reservation"]]

    await h.round_trip("sku", sku)

    again = await h.entity("sku", sku)
    assert isinstance(again, SkuActor) and again is not actor
    assert await h.call("sku", sku, "view") == view
    assert again.inventory.counts() == actor.inventory.counts()
    assert {rid: (r.buyer_id, r.quantity, r.expires_at) for rid, r in
            again.inventory.reservations.items()} == holds  # fmt: skip
    assert await _sku_row(h.pool, sku) == row  # passivating wrote nothing new
    # Retried requests get the answers given before the passivation, decided nothing new.
    retried = await h.handle(
        "sku", sku, [Buy("ann", 2, "buy-1"), Reserve("bob", 3, "hold-1", 600.0)]
    )
    assert retried == [{**bought, "replayed": True}, {**held, "replayed": True}]
    assert restocked is not None
    assert not again.idle()  # the hold came back with it
    [released] = await h.handle("sku", sku, [Release(held["reservation"], "bob")])
    assert released is not None
    await eventually(again.idle, "the SKU idle once its hold is released")
    assert (await h.call("sku", sku, "view"))["available"] == 13
    assert await _sku_row(h.pool, sku) == {"on_hand": 13, "reserved": 0, "sold": 2, "version": 2}
    h.assert_counted("sku")


# -- auctions ---------------------------------------------------------------------------------


async def test_an_auction_comes_back_with_its_bids_leader_and_answers(harness: Harness) -> None:
    h = harness
    sku, auction_id = unique("sku"), unique("auc")
    await _product(h.pool, sku, on_hand=3)
    # As Commerce.start_auction does: one unit held for the auction's whole life. Its room
    # does not exist here, so the auction's pushes to it fail softly (room_not_found).
    [hold] = await h.handle("sku", sku, [Reserve(f"auction:{auction_id}", 1, auction_id, 90000.0)])
    now = clock.now()
    terms = AuctionTerms(
        auction_id, start_price=100, min_increment=10, starts_at=now - 1, ends_at=now + 3600,
        currency="EUR", reserve_price=400,
    )  # fmt: skip
    terms.check()
    await AuctionStore(h.pool).create(
        terms, room_id=unique("nowhere"), sku=sku, reservation_id=hold["reservation"], by="sel"
    )
    bids = await h.handle("auction", auction_id, [
        ("ann", 100, None, "bid-1", None),
        ("bob", 120, 300, "bid-2", None),
    ])  # fmt: skip
    [third] = await h.handle("auction", auction_id, [("ann", 200, None, "bid-3", None)])
    actor = await h.entity("auction", auction_id)
    assert isinstance(actor, AuctionActor)
    before = await h.call("auction", auction_id, "view")
    # Bob's maximum answers Ann's 200 with 210 and keeps the lead.
    assert (before["leader"], before["price"], before["phase"]) == ("bob", 210, "live")
    assert before["reserve_met"] is False and before["sku"] == sku
    assert not actor.idle()  # a running auction stays resident

    await h.round_trip("auction", auction_id)

    again = await h.entity("auction", auction_id)
    assert isinstance(again, AuctionActor) and again is not actor
    after = await h.call("auction", auction_id, "view")
    assert after == before
    assert not again.idle()
    # The same bids again (a client retrying across the passivation): the same answers.
    retried = await h.handle("auction", auction_id, [
        ("ann", 100, None, "bid-1", None),
        ("bob", 120, 300, "bid-2", None),
        ("ann", 200, None, "bid-3", None),
    ])  # fmt: skip
    assert [{k: v for k, v in r.items() if k != "replayed"} for r in retried] == [*bids, third]
    assert (await h.call("auction", auction_id, "view")) == before
    # And it goes on from where it was: Ann's 320 beats Bob's maximum, and hers (500) meets
    # the reserve, so the price goes up to it.
    [outbid] = await h.handle("auction", auction_id, [("ann", 320, 500, "bid-4", None)])
    assert (outbid["leading"], outbid["price"]) == (True, 400)
    view = await h.call("auction", auction_id, "view")
    assert (view["leader"], view["price"], view["minimum_bid"]) == ("ann", 400, 410)
    assert view["reserve_met"] is True
    stored = await AuctionStore(h.pool).load(auction_id)
    assert [(b.bidder, b.key) for b in stored.bids][-1] == ("ann", "bid-4")
    h.assert_counted("auction")


# -- carts ------------------------------------------------------------------------------------


async def test_a_cart_comes_back_with_its_lines(harness: Harness) -> None:
    h = harness
    kettle, mug = unique("sku"), unique("sku")
    await _product(h.pool, kettle, mug)
    room_id = unique("room")
    await RoomStore(h.pool).create_room(RoomInfo(room_id, "Kitchen", host_id="hana"), epoch="e1")
    user = unique("user")
    # No room, and a room on "first_paid" (no row in room_commerce): no SKU hold is taken.
    await h.call("cart", user, "add", kettle, 2, None)
    added = await h.call("cart", user, "add", mug, 1, room_id)
    assert added["policy"] == "first_paid"
    quantity = await h.call("cart", user, "set_quantity", kettle, 3)
    view = await h.call("cart", user, "view")
    assert quantity == {**view, "policy": "first_paid"} and view["units"] == 4
    cart = await h.entity("cart", user)
    assert isinstance(cart, CartActor)
    assert cart.idle()  # at rest: nothing keeps a cart resident
    lines = {ln["sku"]: ln for ln in view["lines"]}
    assert (lines[mug]["room_id"], lines[mug]["creator_id"]) == (room_id, "hana")
    assert lines[kettle]["holds"] == [] and lines[mug]["holds"] == []

    old, _ = await h.round_trip("cart", user)

    again = await h.entity("cart", user)
    assert isinstance(again, CartActor) and again is not cart
    assert await h.call("cart", user, "view") == view
    assert again.idle()
    # The first activation's store can no longer write the cart.
    stale = Cart(user)
    stale.add(kettle, 1, clock.now())
    with pytest.raises(Fenced):
        await CartStore(h.pool, fence=old).save(stale)
    assert (await CartStore(h.pool).load(user)).view() == view
    # The new one can.
    removed = await h.call("cart", user, "remove", mug)
    assert [ln["sku"] for ln in removed["lines"]] == [kettle]
    assert (await CartStore(h.pool).load(user)).view() == removed
    h.assert_counted("cart")


# -- channels ---------------------------------------------------------------------------------


def _channel_view(view: Mapping[str, Any]) -> dict[str, Any]:
    """A channel's view without the clock: the route's ``at`` is the time it was asked."""
    return {**view, "route": _without(view["route"], "at")}


async def test_a_channel_comes_back_with_its_calendar_and_override(harness: Harness) -> None:
    h = harness
    channel_id = unique("deals")
    store = ChannelStore(h.pool)
    await store.save_channel(ChannelInfo(channel_id, "Deals", tz="Europe/London"), epoch="e1")
    now = clock.now()
    show = Show(unique("launch"), channel_id, "Launch", now + 3600, now + 7200, ("ana",))
    await store.book(show, create_room=False, epoch="e")
    actor = await h.entity("channel", channel_id)
    assert isinstance(actor, ChannelActor)
    assert not actor.idle()  # channels run 24/7
    # An operator's override is saved before it is answered (and must survive).
    control = await h.call("channel", channel_id, "control", "cut_to_slate", "ops", "rights")
    assert control["channel"]["override"]["kind"] == "slate"
    before = await h.call("channel", channel_id, "view")
    assert before["next"]["show_id"] == show.show_id
    assert before["route"]["source"] == "slate"

    await h.round_trip("channel", channel_id)

    again = await h.entity("channel", channel_id)
    assert isinstance(again, ChannelActor) and again is not actor
    after = await h.call("channel", channel_id, "view")
    assert _channel_view(after) == _channel_view(before)
    assert after["override"] == before["override"] == control["channel"]["override"]
    h.assert_counted("channel")


# -- the sweep --------------------------------------------------------------------------------


async def test_the_sweep_passivates_only_what_is_idle(harness: Harness) -> None:
    """With no wait before passivation: a cart at rest goes, a SKU holding units stays until
    its hold is released, a channel never goes; each comes back on its next call."""
    h = harness
    h.rebuild(passivate_after=0.0)  # everything may go at once, if idle
    sku, user, channel_id = unique("sku"), unique("user"), unique("deals")
    await _product(h.pool, sku)
    await ChannelStore(h.pool).save_channel(ChannelInfo(channel_id, "Deals"), epoch="e1")
    await h.call("cart", user, "add", sku, 1, None)
    [held] = await h.handle("sku", sku, [Reserve("bob", 2, "hold-1", 600.0)])
    await h.entity("channel", channel_id)
    skus = await h.entity("sku", sku)
    assert isinstance(skus, SkuActor)
    await eventually(lambda: not skus._push_due.is_set(), "the counter pushed")

    assert await h.host.sweep() == 1
    assert sorted(h.host.slots) == [("channel", channel_id), ("sku", sku)]
    assert h.host.stats.passivations == {"cart": 1}
    await h.handle("sku", sku, [Release(held["reservation"], "bob")])
    await eventually(skus.idle, "the SKU idle once its hold is released")
    assert await h.host.sweep() == 1
    assert list(h.host.slots) == [("channel", channel_id)]

    assert (await h.call("cart", user, "view"))["units"] == 1
    assert (await h.call("sku", sku, "view"))["available"] == 10
    assert h.host.stats.activations == {"cart": 2, "sku": 2, "channel": 1}
    assert h.host.stats.passivations == {"cart": 1, "sku": 1}
