"""Ownership fencing against real PostgreSQL (storage/owners.py): once another host claimed
an entity, every write its previous owner makes through the entity's store fails with
Fenced, writes nothing and marks the fence lost, while the new owner's writes commit; and a
claim waits for a fenced write already in flight, so the new owner loads after it."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from liveshop.commerce.auction import AuctionTerms, BidPlaced
from liveshop.commerce.cart import Cart
from liveshop.commerce.inventory import Inventory
from liveshop.commerce.product import Product
from liveshop.errors import InvalidRequest
from liveshop.mesh.batcher import Batcher
from liveshop.rooms.channel import Audit, ChannelInfo
from liveshop.rooms.commands import Actor, Chat
from liveshop.rooms.room import Room, RoomInfo
from liveshop.rooms.runofshow import Cue, RunOfShow
from liveshop.rooms.schedule import Recurrence, Show
from liveshop.storage.auctions import AuctionStore
from liveshop.storage.carts import _SAVE_MANY_FENCED, CartSave, CartStore
from liveshop.storage.channels import ChannelStore
from liveshop.storage.owners import Fence, Fenced, OwnerStore
from liveshop.storage.products import ProductStore
from liveshop.storage.rooms import RoomStore, _saved_already
from liveshop.storage.skus import SkuStore, Turn
from liveshop.tokens import Role

T0 = 1_800_000_000.0
T = dt.datetime(2026, 6, 1, tzinfo=dt.UTC).timestamp()  # a Monday
HOST = Actor("h", "Host", frozenset({Role.HOST}))


@pytest.fixture
async def owners(pool: asyncpg.Pool) -> OwnerStore:
    await pool.execute(
        "TRUNCATE entity_owners, carts, cart_adds, commerce_events, follows, show_templates CASCADE"
    )
    return OwnerStore(pool)


async def _moved(owners: OwnerStore, kind: str, key: str) -> tuple[Fence, Fence]:
    """``kind:key`` claimed by host a (epoch 1), then by host b (epoch 2)."""
    old = await owners.claim(kind, key, "host-a")
    new = await owners.claim(kind, key, "host-b")
    assert (old.epoch, new.epoch) == (1, 2)
    assert await owners.owner(kind, key) == ("host-b", 2)
    return old, new


async def _dump(pool: asyncpg.Pool, *tables: str) -> dict[str, list[str]]:
    """Everything in ``tables``, to show a refused write changed nothing."""
    return {
        t: sorted(repr(dict(r)) for r in await pool.fetch(f"SELECT * FROM {t}")) for t in tables
    }


async def _refused(fence: Fence, write: Awaitable[Any]) -> None:
    with pytest.raises(Fenced):
        await write
    assert fence.lost


# -- SKUs -------------------------------------------------------------------------------------

SKU_TABLES = ("skus", "inventory_ledger", "orders", "order_lines", "sku_reservations",
              "sku_watchers")  # fmt: skip


async def _sku(pool: asyncpg.Pool) -> None:
    product = await ProductStore(pool).create(Product("p1", "Serum", 2500, "EUR"))
    await SkuStore(pool).create("p1", product, on_hand=10, limit_per_buyer=None, now=T0)


async def _save(store: SkuStore, inv: Inventory) -> None:
    version = await store.pool.fetchval("SELECT version FROM skus WHERE id = $1", inv.sku)
    await store.save(inv.row(), inv.drain(), version=(version, version + 1))


async def test_a_sku_moved_to_another_host_refuses_its_old_owner(
    pool: asyncpg.Pool, owners: OwnerStore
) -> None:
    await _sku(pool)
    fence = await owners.claim("sku", "p1", "host-a")
    old = SkuStore(pool, fence=fence)
    inv = Inventory.restore(await old.load("p1", now=T0))
    hold = inv.reserve("k1", "ann", 2, ttl=300, now=T0)
    await _save(old, inv)  # its own epoch: commits
    assert not fence.lost
    new_fence = await owners.claim("sku", "p1", "host-b")
    before = await _dump(pool, *SKU_TABLES)

    # A batch that updates rows (the SKU row is locked first), and one that only inserts
    # (locked last): both refused, nothing of either written.
    inv.release(hold["reservation"], T0 + 1)
    await _refused(fence, _save(old, inv))
    fence.lost = False
    inv = Inventory.restore(await old.load("p1", now=T0))
    inv.buy("k2", "bob", 1, T0 + 2)
    inv.restock(5, "delivery", T0 + 2)
    await _refused(fence, _save(old, inv))
    fence.lost = False
    await _refused(fence, old.watch("p1", "room-a"))
    assert await _dump(pool, *SKU_TABLES) == before

    new = SkuStore(pool, fence=new_fence)
    inv = Inventory.restore(await new.load("p1", now=T0))
    inv.release(hold["reservation"], T0 + 1)
    inv.buy("k2", "bob", 1, T0 + 2)
    await _save(new, inv)
    await new.watch("p1", "room-a")
    await new.unwatch("p1", "room-a")
    await new.watch("p1", "room-b")
    assert not new_fence.lost
    row = await pool.fetchrow("SELECT on_hand, reserved, sold, version FROM skus WHERE id = 'p1'")
    assert dict(row) == {"on_hand": 9, "reserved": 0, "sold": 1, "version": 2}
    assert await new.watchers("p1") == ["room-b"]
    await _refused(fence, old.unwatch("p1", "room-b"))
    assert await new.watchers("p1") == ["room-b"]


async def test_a_fence_nobody_claimed_is_refused(pool: asyncpg.Pool, owners: OwnerStore) -> None:
    await _sku(pool)
    fence = Fence("sku", "p1", 1)
    store = SkuStore(pool, fence=fence)
    inv = Inventory.restore(await store.load("p1", now=T0))
    inv.buy("k1", "ann", 1, T0)
    await _refused(fence, _save(store, inv))
    assert await pool.fetchval("SELECT sold FROM skus WHERE id = 'p1'") == 0


# -- rooms ------------------------------------------------------------------------------------


async def test_a_room_moved_to_another_host_refuses_its_old_owner(
    pool: asyncpg.Pool, owners: OwnerStore
) -> None:
    await RoomStore(pool).create_room(RoomInfo("r1", "One"), epoch="e1")
    fence = await owners.claim("room", "r1", "host-a")
    old = RoomStore(pool, fence=fence)
    room = Room(RoomInfo("r1", "One"), epoch="e1")
    room.apply(Chat(HOST, "first"), 1.0)
    first = room.drain(1.0).events
    await old.save_tick("r1", epoch="e1", offset=1, state=room.durable_state(), events=first)
    new_fence = await owners.claim("room", "r1", "host-b")
    before = await _dump(pool, "rooms", "room_events")

    room.apply(Chat(HOST, "second"), 2.0)
    second = room.drain(2.0).events
    state = room.durable_state()
    await _refused(fence, old.save_tick("r1", epoch="e1", offset=2, state=state, events=second))
    fence.lost = False
    # Not event by event either: the fence fails the tick whole, nothing is withdrawn.
    await _refused(fence, old.save_tick_one_by_one(
        "r1", epoch="e1", offset=2, state=state, events=second, reason="x"))  # fmt: skip
    fence.lost = False
    # A retry of a tick it committed before the move: fenced too, not a quiet no-op.
    await _refused(fence, old.save_tick("r1", epoch="e1", offset=1, state={}, events=first))
    fence.lost = False
    await _refused(fence, old.save_tick("r1", epoch="e1", offset=1, state={"x": 1}, events=[]))
    assert await _dump(pool, "rooms", "room_events") == before

    new = RoomStore(pool, fence=new_fence)
    await new.save_tick("r1", epoch="e1", offset=2, state=state, events=second)
    assert not new_fence.lost
    stored = await new.load("r1")
    assert stored.offset == 2 and [e.data["text"] for e in stored.history] == ["first", "second"]
    room.apply(Chat(HOST, "third"), 3.0)
    third = room.drain(3.0).events
    refused = await new.save_tick_one_by_one(
        "r1", epoch="e1", offset=3, state=room.durable_state(), events=third, reason="x"
    )
    assert refused == [] and (await new.load("r1")).offset == 3


# -- carts ------------------------------------------------------------------------------------


async def test_a_cart_moved_to_another_host_refuses_its_old_owner(
    pool: asyncpg.Pool, owners: OwnerStore
) -> None:
    fence = await owners.claim("cart", "ann", "host-a")
    old = CartStore(pool, fence=fence)
    cart = Cart("ann")
    cart.add("p1", 1, T0)
    await old.save(cart)
    new_fence = await owners.claim("cart", "ann", "host-b")
    before = await _dump(pool, "carts", "commerce_events", "cart_adds")

    cart.add("p2", 3, T0 + 1)
    await _refused(fence, old.save(cart, event=("cart_abandoned", {"lines": 2})))
    assert await _dump(pool, "carts", "commerce_events", "cart_adds") == before
    assert set((await old.load("ann")).lines) == {"p1"}

    new = CartStore(pool, fence=new_fence)
    await new.save(cart, event=("cart_abandoned", {"lines": 2}))
    assert not new_fence.lost
    assert set((await new.load("ann")).lines) == {"p1", "p2"}
    assert await pool.fetchval("SELECT count(*) FROM commerce_events") == 1


async def test_a_hosts_group_commit_of_carts_saves_each_cart_only_while_it_owns_it(
    pool: asyncpg.Pool, owners: OwnerStore
) -> None:
    """Many carts in one statement: the one another host claimed is refused alone (its old
    owner hears Fenced, nothing of it written), the rest commit together."""
    fences = {u: await owners.claim("cart", u, "host-a") for u in ("ann", "bob", "cy")}
    await owners.claim("cart", "bob", "host-b")
    statements = 0
    store = CartStore(pool)

    async def counted(saves: list[CartSave]) -> list[bool | Any]:
        nonlocal statements
        statements += 1
        return await store.save_many(saves)

    saves = Batcher(counted, window=0.0, max_batch=64, max_in_flight=1)
    carts = {u: Cart(u) for u in fences}
    for u, cart in carts.items():
        cart.add(f"sku-{u}", 2, T0)
    stores = {u: CartStore(pool, fence=f, submit=saves.submit) for u, f in fences.items()}
    results = await asyncio.gather(
        *(stores[u].save(carts[u]) for u in fences), return_exceptions=True
    )
    assert statements == 1
    assert [type(r).__name__ for r in results] == ["NoneType", "Fenced", "NoneType"]
    assert fences["bob"].lost and not fences["ann"].lost and not fences["cy"].lost
    saved = {r["user_id"]: r["state"] for r in await pool.fetch("SELECT * FROM carts")}
    assert set(saved) == {"ann", "cy"}
    assert saved["ann"] == carts["ann"].to_state()


async def test_a_cart_postgresql_refuses_fails_alone_in_its_group_commit(
    pool: asyncpg.Pool, owners: OwnerStore
) -> None:
    """jsonb refuses a NUL character: that cart's save is refused with a clear error, and
    the carts saved with it are written one at a time and commit."""
    fences = {u: await owners.claim("cart", u, "host-a") for u in ("ann", "bob", "cy")}
    saves = [
        CartSave("ann", {"lines": [], "n": 1}, fences["ann"].epoch),
        CartSave("bob", {"lines": [], "bad": "a\x00b"}, fences["bob"].epoch),
        CartSave("cy", {"lines": [], "n": 3}, fences["cy"].epoch),
    ]
    results = await CartStore(pool).save_many(saves)
    assert results[0] is True and results[2] is True
    assert isinstance(results[1], InvalidRequest)
    rows = await pool.fetch("SELECT user_id, state FROM carts ORDER BY user_id")
    assert [(r["user_id"], r["state"].get("n")) for r in rows] == [("ann", 1), ("cy", 3)]


# -- auctions ---------------------------------------------------------------------------------

AUCTION_TABLES = ("auctions", "auction_bids", "orders", "order_lines")


async def test_an_auction_moved_to_another_host_refuses_its_old_owner(
    pool: asyncpg.Pool, owners: OwnerStore
) -> None:
    await _sku(pool)
    terms = AuctionTerms("a1", start_price=100, min_increment=10, starts_at=T0, ends_at=T0 + 60,
                         currency="EUR")  # fmt: skip
    await AuctionStore(pool).create(terms, room_id="r1", sku="p1", reservation_id="h1", by="ana")
    fence = await owners.claim("auction", "a1", "host-a")
    old = AuctionStore(pool, fence=fence)
    await old.save_bids("a1", [BidPlaced("bo", 100, 100, "k1", T0 + 1)],
                        {"price": 100, "leader": "bo", "ends_at": T0 + 60})  # fmt: skip
    new_fence = await owners.claim("auction", "a1", "host-b")
    before = await _dump(pool, *AUCTION_TABLES)

    bid = [BidPlaced("cy", 110, 150, "k2", T0 + 2)]
    view = {"price": 110, "leader": "cy", "ends_at": T0 + 75}
    await _refused(fence, old.save_bids("a1", bid, view))
    fence.lost = False
    result = {"winner": "cy", "price": 110, "reason": "sold"}
    settle: dict[str, Any] = {
        "room_id": "r1",
        "sku": "p1",
        "reservation_id": "h1",
        "product_id": "p1",
        "at": 1.0,
    }
    await _refused(fence, old.settle("a1", result, **settle))
    fence.lost = False
    await _refused(fence, old.mark("a1", stock_done=True, payment_done=True))
    assert await _dump(pool, *AUCTION_TABLES) == before

    new = AuctionStore(pool, fence=new_fence)
    await new.save_bids("a1", bid, view)
    assert await new.settle("a1", result, **settle) == "a1~o"
    await new.mark("a1", stock_done=True)
    assert not new_fence.lost
    stored = await new.load("a1")
    assert [b.bidder for b in stored.bids] == ["bo", "cy"]
    assert (stored.ended, stored.order_id, stored.stock_done, stored.payment_done) == (
        True, "a1~o", True, False,
    )  # fmt: skip


# -- channels ---------------------------------------------------------------------------------

CHANNEL_TABLES = (
    "channels", "shows", "show_templates", "channel_audit", "show_analytics",
    "show_analytics_minutes", "show_reminders", "commerce_events", "rooms",
)  # fmt: skip


async def test_a_channel_moved_to_another_host_refuses_its_old_owner(
    pool: asyncpg.Pool, owners: OwnerStore
) -> None:
    api = ChannelStore(pool)  # the HTTP API's store: no fence, its writes are not the actor's
    await api.save_channel(ChannelInfo("deals", "Deals", tz="Europe/London"), epoch="e1")
    launch = Show("launch", "deals", "Launch", T, T + 3600, ("ana",), series_id="s")
    await api.book(launch, create_room=False, epoch="e")
    weekdays = Recurrence(frozenset(range(5)), dt.time(20), 3600, "Europe/London",
                          dt.date(2026, 6, 1))  # fmt: skip
    make = Show("nightly", "deals", "Nightly", 0, 3600, ("bo",))
    await api.create_template("nightly", weekdays, make, now=T - 1, until=T + 86400, epoch="e")
    await api.follow("cy", "show", "launch")
    fence = await owners.claim("channel", "deals", "host-a")
    old = ChannelStore(pool, fence=fence)
    run = RunOfShow(T)
    run.add(Cue("pin", 30, "pin", {"product_id": "kettle"}))
    await old.save_run("launch", run)  # its own epoch: commits
    new_fence = await owners.claim("channel", "deals", "host-b")
    before = await _dump(pool, *CHANNEL_TABLES)

    live = Show(**{**launch.__dict__, "status": "live"})
    ended = Show(**{**launch.__dict__, "status": "ended", "ended_at": T + 600})
    run.fire("pin", T + 10, by="ana")
    entry = Audit("cut_to_slate", "ops", "rights", T + 5, "launch")
    writes: list[Callable[[ChannelStore], Awaitable[Any]]] = [
        lambda s: s.set_status(live),
        lambda s: s.save_run("launch", run),
        lambda s: s.set_recording("launch", "rec/launch.m3u8", 600.0),
        lambda s: s.save_analytics("launch", {"viewers": 3}, {"show_id": "launch"}, 0),
        lambda s: s.remind(launch, 900, T - 900),
        lambda s: s.extend_template("nightly", now=T, until=T + 8 * 86400, epoch="e"),
        lambda s: s.control(
            "deals", entry, ended=ended, override={"slate": True}, set_override=True
        ),
    ]
    for write in writes:
        fence.lost = False
        await _refused(fence, write(old))
    assert await _dump(pool, *CHANNEL_TABLES) == before

    new = ChannelStore(pool, fence=new_fence)
    for write in writes:
        await write(new)
    assert not new_fence.lost
    stored, stored_run = await new.show("launch")
    assert (stored.status, stored.recording) == ("ended", "rec/launch.m3u8")
    assert stored_run.to_state() == run.to_state()
    assert (await new.channel("deals"))[1] == {"slate": True}
    assert await new.reminded(["launch"]) == {("launch", 900.0)}
    assert (await new.analytics("launch")) == ({"viewers": 3}, {"show_id": "launch"})
    assert [e["action"] for e in await new.audit_log("deals")] == ["cut_to_slate"]
    assert (await new.templates("deals"))[0]["booked_until"] == T + 8 * 86400
    # The API's writes take no fence and still work once the channel moved.
    await api.save_run("launch", RunOfShow(T))
    await api.set_status(launch)


# -- a claim waits for the writes in flight ----------------------------------------------------


async def _sku_batch(pool: asyncpg.Pool, conn: asyncpg.Connection, fence: Fence) -> None:
    """A SKU batch, its fence read by the same query that locks the SKU row."""
    inv = Inventory.restore(await SkuStore(pool).load("p1", now=T0))
    inv.buy(f"k{inv.counts()['sold']}", "ann", 1, T0)  # a new key each time
    await SkuStore._save(conn, inv.row(), inv.drain(), (0, 1), Turn(), fence=fence)


async def _room_tick(pool: asyncpg.Pool, conn: asyncpg.Connection, fence: Fence) -> None:
    """A room tick, its fence read by the query that locks the room row."""
    assert not await _saved_already(conn, "p1", 1, [], fence)
    await conn.execute("UPDATE rooms SET last_offset = 1 WHERE id = 'p1'")


async def _cart(pool: asyncpg.Pool, conn: asyncpg.Connection, fence: Fence) -> None:
    """A write checking its fence with Fence.check (the other stores)."""
    await fence.check(conn)
    await conn.execute("INSERT INTO carts (user_id, state) VALUES ('p1', '{}')")


async def _carts(pool: asyncpg.Pool, conn: asyncpg.Connection, fence: Fence) -> None:
    """A host's group commit of cart saves: the fence joined in its one statement."""
    rows = await conn.fetch(_SAVE_MANY_FENCED, ["q0", "p1"], [{}, {}], [1, fence.epoch])
    if "p1" not in {r["user_id"] for r in rows}:
        fence.verify(None)


WRITES = {"sku": _sku_batch, "room": _room_tick, "cart": _cart, "carts": _carts}
WRITTEN = {
    "sku": "SELECT sold FROM skus WHERE id = 'p1'",
    "room": "SELECT last_offset FROM rooms WHERE id = 'p1'",
    "cart": "SELECT count(*) FROM carts WHERE user_id = 'p1'",
    "carts": "SELECT count(*) FROM carts WHERE user_id = 'p1'",
}


@pytest.mark.parametrize("write", sorted(WRITES))
async def test_a_claim_waits_for_a_fenced_write_in_flight(
    pool: asyncpg.Pool, owners: OwnerStore, write: str
) -> None:
    kind = "cart" if write == "carts" else write
    await _sku(pool)
    await RoomStore(pool).create_room(RoomInfo("p1", "One"), epoch="e1")
    fence = await owners.claim(kind, "p1", "host-a")
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await WRITES[write](pool, conn, fence)  # checked the fence, not committed yet
        claim = asyncio.ensure_future(owners.claim(kind, "p1", "host-b"))
        await asyncio.sleep(0.3)
        assert not claim.done()  # waits on the owner row the write share-locked
        await tx.commit()
    new_fence = await asyncio.wait_for(claim, 5)
    assert new_fence.epoch == 2 and not fence.lost
    # The new owner sees what the old one committed before the claim went through ...
    assert await pool.fetchval(WRITTEN[write]) == 1
    # ... and nothing the old one tries after it.
    async with pool.acquire() as conn:
        with pytest.raises(Fenced):
            async with conn.transaction():
                await WRITES[write](pool, conn, fence)
    assert fence.lost
    assert await pool.fetchval(WRITTEN[write]) == 1
