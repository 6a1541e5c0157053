"""SKU decisions against real PostgreSQL: one transaction per batch, a restart rebuilds
exactly what was committed, the constraints refuse what the domain must never produce."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from liveshop.commerce.inventory import FlashDeal, Inventory
from liveshop.commerce.product import Product
from liveshop.errors import Conflict, LimitExceeded, NotFound
from liveshop.storage.products import ProductStore
from liveshop.storage.skus import SkuStore, StaleVersion, Turn

T0 = 1_800_000_000.0


async def _setup(pool: asyncpg.Pool, on_hand: int = 10, limit: int | None = None) -> SkuStore:
    product = await ProductStore(pool).create(Product("p1", "Serum", 2500, "EUR"))
    store = SkuStore(pool)
    await store.create("p1", product, on_hand=on_hand, limit_per_buyer=limit, now=T0)
    return store


async def _commit(store: SkuStore, inv: Inventory) -> None:
    """Save the next batch on top of whatever the database holds now."""
    version = await store.pool.fetchval("SELECT version FROM skus WHERE id = $1", inv.sku)
    await store.save(inv.row(), inv.drain(), version=(version, version + 1))


async def test_a_restart_rebuilds_counts_holds_answers_and_limits(pool: asyncpg.Pool) -> None:
    store = await _setup(pool, on_hand=20, limit=4)
    inv = Inventory.restore(await store.load("p1", now=T0))
    assert inv.counts() == {"on_hand": 20, "reserved": 0, "available": 20, "sold": 0}
    assert (inv.price_minor, inv.currency, inv.product_id) == (2500, "EUR", "p1")
    inv.start_deal(FlashDeal("d1", 999, T0, T0 + 600, quantity=10, limit_per_buyer=3), T0)
    bought = inv.buy("k1", "ann", 2, T0 + 1, room_id="show")
    hold = inv.reserve("k2", "ann", 1, ttl=300.123456, now=T0 + 1.0005)
    other = inv.reserve("k3", "bob", 2, ttl=60, now=T0 + 2)
    await _commit(store, inv)
    inv.commit(other["reservation"], "order-x", T0 + 3)
    gone = inv.reserve("k4", "cat", 1, ttl=60, now=T0 + 3)
    inv.release(gone["reservation"], T0 + 4)  # held and released within one batch
    await _commit(store, inv)

    back = Inventory.restore(await store.load("p1", now=T0 + 5))
    assert back.snapshot(T0 + 5) == inv.snapshot(T0 + 5)
    assert back.counts() == inv.counts()
    assert set(back.reservations) == {hold["reservation"]}
    assert back.bought == {"ann": 2, "bob": 2} and back.deal_bought == {"ann": 2, "bob": 2}
    # The same answers, exactly, after the restart; the limits still count.
    assert back.buy("k1", "ann", 2, T0 + 6, room_id="show") == {**bought, "replayed": True}
    assert back.reserve("k2", "ann", 1, 300.123456, T0 + 6) == {**hold, "replayed": True}
    with pytest.raises(LimitExceeded):
        back.buy("k5", "ann", 1, T0 + 6)  # 2 bought + 1 held in a deal limited to 3
    # Ids go on where they stopped.
    assert back.buy("k6", "dan", 1, T0 + 7)["order"] == f"p1~o{inv.next_seq}"


async def test_the_ledger_and_orders_explain_the_counts(pool: asyncpg.Pool) -> None:
    store = await _setup(pool, on_hand=5)
    inv = Inventory.restore(await store.load("p1", now=T0))
    for i in range(3):
        inv.buy(f"k{i}", f"buyer-{i}", 1, T0, room_id="show")
    inv.restock(4, "delivery-7", T0)
    await _commit(store, inv)
    sums = await pool.fetchrow(
        "SELECT sum(on_hand_delta) AS on_hand, sum(reserved_delta) AS reserved, "
        "sum(sold_delta) AS sold FROM inventory_ledger WHERE sku = 'p1'"
    )
    row = await pool.fetchrow("SELECT on_hand, reserved, sold FROM skus WHERE id = 'p1'")
    assert dict(sums) == dict(row) == {"on_hand": 6, "reserved": 0, "sold": 3}
    orders = await pool.fetch(
        "SELECT o.id, o.status, o.total_minor, o.room_id, l.quantity, l.price_minor "
        "FROM orders o JOIN order_lines l ON l.order_id = o.id ORDER BY o.id"
    )
    assert [(o["status"], o["total_minor"], o["room_id"]) for o in orders] == [
        ("pending", 2500, "show")
    ] * 3
    audit = await store.audit("p1")
    assert (audit["problems"], audit["stock_in"], audit["on_orders"]) == ([], 9, 3)
    # Books that do not add up are reported, not hidden.
    await pool.execute("UPDATE skus SET on_hand = on_hand + 1 WHERE id = 'p1'")
    problems = (await store.audit("p1"))["problems"]
    assert any("ledger" in p for p in problems) and any("taken in" in p for p in problems)


async def test_a_failed_batch_writes_nothing(pool: asyncpg.Pool) -> None:
    store = await _setup(pool, on_hand=5)
    inv = Inventory.restore(await store.load("p1", now=T0))
    inv.buy("k1", "ann", 1, T0)
    await _commit(store, inv)
    # A second actor (a bug, or a zombie) that reuses an order id must fail as a whole.
    zombie = Inventory.restore(await store.load("p1", now=T0))
    zombie.next_seq -= 1
    zombie.buy("k2", "bob", 1, T0)
    zombie.restock(3, "delivery", T0)
    with pytest.raises(asyncpg.UniqueViolationError):
        await _commit(store, zombie)
    assert await pool.fetchval("SELECT on_hand FROM skus WHERE id = 'p1'") == 4
    assert await pool.fetchval("SELECT count(*) FROM inventory_ledger WHERE sku = 'p1'") == 2


async def test_a_batch_commits_only_on_top_of_the_one_before_it(pool: asyncpg.Pool) -> None:
    store = await _setup(pool, on_hand=5)
    inv = Inventory.restore(await store.load("p1", now=T0))
    inv.buy("k1", "ann", 1, T0)
    first = (inv.row(), inv.drain())
    inv.buy("k2", "bob", 1, T0)
    second = (inv.row(), inv.drain())
    # The second batch, written while the first is still open, waits for it and commits
    # after it; had the first rolled back, the second would fail too.
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await store._save(conn, *first, (0, 1), Turn())
        later = asyncio.ensure_future(store.save(*second, version=(1, 2)))
        await asyncio.sleep(0.2)
        assert not later.done()  # blocked on the first batch's row
        await tx.rollback()
    with pytest.raises(StaleVersion):
        await later
    assert await pool.fetchval("SELECT count(*) FROM orders") == 0
    await store.save(*first, version=(0, 1))
    await store.save(*second, version=(1, 2))
    assert await pool.fetchval("SELECT sold FROM skus WHERE id = 'p1'") == 2


async def test_creating_twice_and_loading_a_missing_sku_are_refused(pool: asyncpg.Pool) -> None:
    store = await _setup(pool)
    product = await ProductStore(pool).get("p1")
    with pytest.raises(Conflict):
        await store.create("p1", product, on_hand=1, limit_per_buyer=None, now=T0)
    with pytest.raises(NotFound):
        await store.load("nope", now=T0)
    assert await store.ids(product_id="p1", limit=10, after=None) == ["p1"]
    await store.watch("p1", "room-a")
    await store.watch("p1", "room-a")
    assert await store.watchers("p1") == ["room-a"]
    await store.unwatch("p1", "room-a")
    assert await store.watchers("p1") == []
