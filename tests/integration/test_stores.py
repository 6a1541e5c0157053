from __future__ import annotations

import asyncpg
import pytest

from liveshop.commerce.product import Product
from liveshop.errors import Conflict, ProductNotFound, RoomNotFound
from liveshop.rooms.channel import ChannelInfo
from liveshop.rooms.commands import Actor, Chat, Pin
from liveshop.rooms.room import Room, RoomInfo
from liveshop.storage.channels import ChannelStore
from liveshop.storage.products import ProductStore
from liveshop.storage.rooms import RoomStore
from liveshop.tokens import Role

HOST = Actor("h", "Host", frozenset({Role.HOST}))
KETTLE = Product("sku-kettle", "Kettle", 5400, "USD", "https://img/k.jpg")


async def test_rooms_create_get_list_and_refuse_duplicates(pool: asyncpg.Pool) -> None:
    store = RoomStore(pool)
    await ChannelStore(pool).save_channel(ChannelInfo("deals", "Deals"), epoch="e0")
    created = await store.create_room(RoomInfo("r1", "One", "deals"), epoch="e1")
    assert created == RoomInfo("r1", "One", "deals", "live")
    assert await store.get_room("r1") == created
    assert await store.room_exists("r1")
    assert not await store.room_exists("nope")
    with pytest.raises(Conflict):
        await store.create_room(RoomInfo("r1", "Again"), epoch="e1")
    with pytest.raises(Conflict):
        await store.create_room(RoomInfo("r2", "Two", "no-such-channel"), epoch="e1")
    with pytest.raises(RoomNotFound):
        await store.get_room("nope")
    for i in range(3):
        await store.create_room(RoomInfo(f"z{i}", f"Z{i}"), epoch="e")
    first = await store.list_rooms(limit=2)
    rest = await store.list_rooms(limit=10, after=first[-1].room_id)
    assert [r.room_id for r in first + rest] == ["channel:deals", "r1", "z0", "z1", "z2"]


async def test_a_saved_tick_loads_back_as_the_same_room(pool: asyncpg.Pool) -> None:
    store = RoomStore(pool)
    info = await store.create_room(RoomInfo("r1", "One"), epoch="e1")
    room = Room(info, epoch="e1")
    room.apply(Pin(HOST, KETTLE), 100.0)
    room.apply(Chat(HOST, "welcome"), 100.0)
    tick = room.drain(100.0)
    await store.save_tick(
        "r1", epoch="e1", offset=room.offset, state=room.durable_state(), events=tick.events
    )
    room.apply(Chat(HOST, "second tick"), 101.0)
    tick = room.drain(101.0)
    await store.save_tick(
        "r1", epoch="e1", offset=room.offset, state=room.durable_state(), events=tick.events
    )
    stored = await store.load("r1")
    assert stored.offset == 3
    assert [e.offset for e in stored.history] == [1, 2, 3]
    restored = Room.restore(
        stored.info, epoch=stored.epoch, offset=stored.offset, state=stored.state,
        history=stored.history,
    )  # fmt: skip
    assert restored.snapshot(102.0) == room.snapshot(102.0)
    with pytest.raises(RoomNotFound):
        await store.load("nope")


async def test_saving_a_committed_tick_again_is_a_no_op(pool: asyncpg.Pool) -> None:
    """A COMMIT that succeeded while its caller heard a timeout is retried: that must not
    fail (it once wedged the room) nor change what was stored."""
    store = RoomStore(pool)
    await store.create_room(RoomInfo("r1", "One"), epoch="e1")
    room = Room(RoomInfo("r1", "One"), epoch="e1")
    room.apply(Chat(HOST, "x"), 1.0)
    events = room.drain(1.0).events
    await store.save_tick("r1", epoch="e1", offset=1, state={}, events=events)
    await store.save_tick("r1", epoch="e1", offset=1, state={}, events=events)
    stored = await store.load("r1")
    assert stored.offset == 1 and [e.data["text"] for e in stored.history] == ["x"]


async def test_products(pool: asyncpg.Pool) -> None:
    store = ProductStore(pool)
    assert await store.create(KETTLE) == KETTLE
    with pytest.raises(Conflict):
        await store.create(KETTLE)
    cheaper = Product("sku-kettle", "Kettle", 4900, "USD", None)
    assert await store.create(cheaper, upsert=True) == cheaper
    assert await store.get("sku-kettle") == cheaper
    with pytest.raises(ProductNotFound):
        await store.get("nope")
    assert [p.product_id for p in await store.list()] == ["sku-kettle"]
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(
            "INSERT INTO products (id, title, price_minor, currency) VALUES ('x','x',-1,'USD')"
        )
