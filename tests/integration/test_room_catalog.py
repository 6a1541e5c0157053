"""A room's catalog (``GET /rooms/{id}/products``, ``ProductStore.in_room``): the products its
host sells and those listed in it, paged by id, read through indexes (migration 0016) rather
than by scanning every product."""

from __future__ import annotations

import random

import asyncpg

from liveshop.commerce.product import Product
from liveshop.rooms.room import RoomInfo
from liveshop.storage.products import ROOM_CATALOG, ProductStore
from liveshop.storage.rooms import RoomStore


async def _product(store: ProductStore, product_id: str, seller: str) -> None:
    await store.create(Product(product_id, product_id.title(), 100, "EUR", seller_id=seller))


async def _pages(store: ProductStore, room: str, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    after = None
    while True:
        page = [p.product_id for p in await store.in_room(room, limit=limit, after=after)]
        if not page:
            return pages
        assert len(page) <= limit
        pages.append(page)
        after = page[-1]


async def test_the_catalog_is_the_hosts_products_and_the_listed_ones_paged_by_id(
    pool: asyncpg.Pool,
) -> None:
    rooms, store = RoomStore(pool), ProductStore(pool)
    await rooms.create_room(RoomInfo("shop", "Shop", host_id="h1"), epoch="e")
    await rooms.create_room(RoomInfo("elsewhere", "Elsewhere", host_id="h2"), epoch="e")
    await rooms.create_room(RoomInfo("hostless", "No host"), epoch="e")
    sellers = {"a1": "h1", "b2": "s2", "c3": "h1", "d4": "s2", "e5": "h1", "f6": "s2"}
    for product_id, seller in {**sellers, "z9": "s2", "y8": "h2"}.items():
        await _product(store, product_id, seller)
    for product_id in ("b2", "c3", "d4"):  # c3 is the host's own: listed, still once
        assert await store.list_in(product_id, "shop", by="s2")
    assert await store.list_in("f6", "elsewhere", by="s2")
    assert await store.list_in("b2", "hostless", by="s2")

    everything = [p.product_id for p in await store.in_room("shop")]
    assert everything == ["a1", "b2", "c3", "d4", "e5"]
    assert await _pages(store, "shop", 2) == [["a1", "b2"], ["c3", "d4"], ["e5"]]
    assert await _pages(store, "shop", 1) == [[p] for p in everything]
    assert [p.product_id for p in await store.in_room("shop", after="b")] == [
        "b2",
        "c3",
        "d4",
        "e5",
    ]
    assert await store.in_room("shop", after="e5") == []
    assert [p.product_id for p in await store.in_room("elsewhere")] == ["f6", "y8"]
    assert [p.product_id for p in await store.in_room("hostless")] == ["b2"]
    assert await store.in_room("no-such-room") == []
    shown = (await store.in_room("shop", limit=1))[0]
    assert shown == Product("a1", "A1", 100, "EUR", seller_id="h1")
    # Taken back: gone from the page; the host's own product stays (its own room).
    assert await store.unlist_in("b2", "shop") and await store.unlist_in("c3", "shop")
    assert [p.product_id for p in await store.in_room("shop")] == ["a1", "c3", "d4", "e5"]


async def test_pages_match_the_rule_on_a_mixed_catalog(pool: asyncpg.Pool) -> None:
    """Many products of the host, of other sellers listed and not, interleaved ids: the
    pages, joined, are exactly the rule's products in id order, whatever the page size."""
    rooms, store = RoomStore(pool), ProductStore(pool)
    await rooms.create_room(RoomInfo("shop", "Shop", host_id="host"), epoch="e")
    rng = random.Random(7)
    expected = []
    async with pool.acquire() as conn:
        rows = [(f"p{i:04d}", rng.choice(["host", "other", "third"])) for i in range(300)]
        await conn.executemany(
            "INSERT INTO products (id, title, price_minor, currency, seller_id) "
            "VALUES ($1, 't', 1, 'EUR', $2)",
            rows,
        )
        listed = {p for p, seller in rows if seller != "host" and rng.random() < 0.3}
        listed |= {p for p, seller in rows if seller == "host" and rng.random() < 0.2}
        await conn.executemany(
            "INSERT INTO product_rooms (product_id, room_id, granted_by) VALUES ($1, 'shop', 'x')",
            [(p,) for p in sorted(listed)],
        )
        expected = [p for p, seller in rows if seller == "host" or p in listed]
    for limit in (1, 7, 100, 500):
        pages = await _pages(store, "shop", limit)
        assert [p for page in pages for p in page] == expected
        assert all(len(page) == limit for page in pages[:-1])


async def test_the_catalog_is_read_through_indexes(pool: asyncpg.Pool) -> None:
    """With 20,000 products of other sellers, listed in 20 other rooms, the plan reads the
    host's products through ``products_seller`` and the room's listings through
    ``product_rooms_room_product``: no scan of either table (the query it replaced filtered
    every product: 0.25 s for a room with few products among a million)."""
    rooms = RoomStore(pool)
    await rooms.create_room(RoomInfo("shop", "Shop", host_id="host"), epoch="e")
    for n in range(20):
        await rooms.create_room(RoomInfo(f"other{n}", "Other"), epoch="e")
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO products (id, title, price_minor, currency, seller_id) "
            "SELECT 'p' || lpad(g::text, 6, '0'), 't', 1, 'EUR', "
            "CASE WHEN g % 500 = 0 THEN 'host' ELSE 's' || (g % 97) END "
            "FROM generate_series(1, 20000) g"
        )
        await conn.execute(
            "INSERT INTO product_rooms (product_id, room_id, granted_by) "
            "SELECT 'p' || lpad(g::text, 6, '0'), "
            "CASE WHEN g % 1000 = 7 THEN 'shop' ELSE 'other' || (g % 20) END, 'x' "
            "FROM generate_series(1, 20000) g"
        )
        await conn.execute("ANALYZE products")
        await conn.execute("ANALYZE product_rooms")
        for after in ("", "p010000"):
            explained = await conn.fetch(f"EXPLAIN {ROOM_CATALOG}", "shop", after, 100)
            plan = "\n".join(r[0] for r in explained)
            assert " products_seller " in plan, plan
            assert " product_rooms_room_product " in plan, plan
            assert "Seq Scan on products " not in plan, plan
            assert "Seq Scan on product_rooms " not in plan, plan
        found = await ProductStore(pool).in_room("shop", limit=500)
    assert len(found) == 40 + 20
