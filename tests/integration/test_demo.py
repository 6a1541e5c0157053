"""`liveshop up --demo`'s seed: idempotent, and it reports whether the demo room was created
now, so the demo's product is pinned on the first start only and a restart keeps what the
host pinned since."""

from __future__ import annotations

import asyncpg

from liveshop import demo
from liveshop.storage.rooms import RoomStore
from liveshop.storage.skus import SkuStore


async def test_the_demo_is_created_once(pool: asyncpg.Pool, postgres_url: str) -> None:
    assert await demo.seed(postgres_url) is True
    assert await demo.seed(postgres_url) is False  # a restart: the room is kept as it is
    assert await demo.seed(postgres_url) is False
    room = await RoomStore(pool).get_room(demo.ROOM_ID)
    assert (room.channel_id, room.host_id) == (demo.CHANNEL_ID, demo.HOST_ID)
    for product in demo.PRODUCTS:  # stock seeded once, not topped up by restarts
        stored = await SkuStore(pool).load(product.product_id, now=0.0)
        assert stored.state["on_hand"] == demo.DEMO_STOCK
    coins = await pool.fetchval("SELECT count(*) FROM wallet_ledger WHERE ref = 'demo-welcome'")
    assert coins == len(demo.VIEWERS)
