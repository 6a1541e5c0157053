"""Readable order numbers (LS-10427): assigned by PostgreSQL when an order is inserted, unique,
returned with every order, and a way to look an order up; the internal id is unchanged."""

from __future__ import annotations

import re
import secrets

import asyncpg
import pytest

from liveshop.commerce.inventory import Inventory
from liveshop.commerce.product import Product
from liveshop.errors import OrderNotFound
from liveshop.storage.migrate import migration_files
from liveshop.storage.orders import ORDER_NUMBER, OrderStore
from liveshop.storage.products import ProductStore
from liveshop.storage.skus import SkuStore

T0 = 1_800_000_000.0
NUMBER = re.compile(r"LS-\d{5,}")


async def _numbers(pool: asyncpg.Pool) -> tuple[OrderStore, list[str]]:
    """Three buys of one SKU, saved in one batch, as the SKU actor saves them."""
    product = await ProductStore(pool).create(Product("mug", "Mug", 1500, "EUR"))
    skus = SkuStore(pool)
    await skus.create("mug", product, on_hand=10, limit_per_buyer=None, now=T0)
    inv = Inventory.restore(await skus.load("mug", now=T0))
    ids = [inv.buy(f"k{i}", buyer, 1, T0 + i)["order"] for i, buyer in enumerate("aab")]
    version = await pool.fetchval("SELECT version FROM skus WHERE id = 'mug'")
    await skus.save(inv.row(), inv.drain(), version=(version, version + 1))
    return OrderStore(pool), ids


async def test_every_order_gets_its_own_number_and_keeps_its_id(pool: asyncpg.Pool) -> None:
    orders, ids = await _numbers(pool)
    assert all("~" in order_id for order_id in ids)  # the internal ids, as before
    found = [await orders.get(order_id) for order_id in ids]
    numbers = [order["number"] for order in found]
    assert all(NUMBER.fullmatch(n) and ORDER_NUMBER.fullmatch(n) for n in numbers), numbers
    assert len(set(numbers)) == 3
    assert [o["id"] for o in found] == ids
    for order_id, number in zip(ids, numbers, strict=True):
        assert await orders.number_of(order_id) == number
    assert await orders.number_of("no-such-order") is None
    # In batches (buy answers): in the order asked.
    asked = [ids[2], "no-such-order", ids[0], ids[2]]
    assert await orders.numbers_of(asked) == [numbers[2], None, numbers[0], numbers[2]]
    # Searches and histories carry it too.
    listed = await orders.search(buyer_id="a")
    assert {(o["id"], o["number"]) for o in listed} == set(zip(ids[:2], numbers[:2], strict=True))
    # The number never changes through the lifecycle.
    moved = await orders.transition(ids[0], "cancelled", by="svc")
    assert moved["number"] == numbers[0]


async def test_an_order_is_found_by_its_number_as_by_its_id(pool: asyncpg.Pool) -> None:
    orders, ids = await _numbers(pool)
    by_id = await orders.get(ids[2])
    by_number = await orders.get(by_id["number"])
    assert by_number == by_id
    assert by_number["buyer_id"] == "b" and by_number["lines"][0]["sku"] == "mug"
    for unknown in ("LS-1", "LS-99999999999", "ls-" + by_id["number"][3:], "LS-" + "9" * 40):
        with pytest.raises(OrderNotFound):
            await orders.get(unknown)


async def test_the_migration_numbers_existing_orders_in_the_order_they_were_placed(
    postgres_url: str,
) -> None:
    """Orders placed before the numbers existed get them, oldest first, and new orders
    continue after them. Run in a schema of its own, leaving the shared one alone."""
    schema = f"numbers_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}; SET search_path TO {schema}")
        files = migration_files()
        at = [v for v, _ in files].index("0013_order_numbers")
        for _, sql in files[:at]:
            await conn.execute(sql)
        insert = (
            "INSERT INTO orders (id, buyer_id, currency, subtotal_minor, total_minor, "
            "idem_scope, idem_key, created_at) VALUES ($1, 'ann', 'EUR', 1, 1, 's', $1, "
            "to_timestamp($2))"
        )
        for order_id, at_time in (("late", T0 + 60), ("early", T0), ("middle", T0 + 30)):
            await conn.execute(insert, order_id, at_time)
        await conn.execute(files[at][1])
        rows = await conn.fetch("SELECT id, number FROM orders ORDER BY number")
        assert [(r["id"], r["number"]) for r in rows] == [
            ("early", "LS-10001"), ("middle", "LS-10002"), ("late", "LS-10003"),
        ]  # fmt: skip
        await conn.execute(insert, "new", T0 + 90)
        assert await conn.fetchval("SELECT number FROM orders WHERE id = 'new'") == "LS-10004"
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("UPDATE orders SET number = 'LS-10001' WHERE id = 'new'")
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()
