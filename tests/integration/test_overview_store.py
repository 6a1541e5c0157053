"""The operations overview in real PostgreSQL: what counts (placed, not cancelled, in the
window), GMV kept per currency, and the order of the top lists."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest

from liveshop.rooms.channel import ChannelInfo
from liveshop.rooms.schedule import Show
from liveshop.storage.channels import ChannelStore
from liveshop.storage.overview import OverviewStore

T = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC).timestamp()
HOUR = 3600.0


@pytest.fixture
async def store(pool: asyncpg.Pool) -> OverviewStore:
    """Two channels; on ``deals`` show ``a`` (host ana) then ``b`` (host bo) in rooms ``ra``
    and ``rb``; on ``beauty`` show ``c`` (host cy) in ``rc``, two hours long."""
    channels = ChannelStore(pool)
    for cid in ("deals", "beauty"):
        await channels.save_channel(ChannelInfo(cid, cid.title()), epoch="e")
    for show in (
        Show("a", "deals", "Show A", T, T + HOUR, ("ana",), room_id="ra"),
        Show("b", "deals", "Show B", T + HOUR, T + 2 * HOUR, ("bo",), room_id="rb"),
        Show("c", "beauty", "Show C", T, T + 2 * HOUR, ("cy",), room_id="rc"),
        Show("gone", "beauty", "Cancelled", T + 3 * HOUR, T + 4 * HOUR, status="cancelled"),
    ):
        await channels.book(show, create_room=True, epoch="e")
    await pool.execute(
        "INSERT INTO products (id, title, price_minor, currency) VALUES "
        "('kettle', 'Kettle', 2500, 'EUR'), ('lamp', 'Lamp', 4000, 'USD')"
    )
    await pool.execute(
        "INSERT INTO skus (id, product_id, price_minor, currency, on_hand, reserved, sold) "
        "VALUES ('k1', 'kettle', 2500, 'EUR', 100, 0, 0), ('l1', 'lamp', 4000, 'USD', 100, 0, 0)"
    )
    return OverviewStore(pool)


async def end_early(pool: asyncpg.Pool) -> None:
    await pool.execute("UPDATE shows SET status = 'ended', ended_at = $1 WHERE id = 'c'", T + HOUR)


async def order(
    pool: asyncpg.Pool, oid: str, room: str | None, at: float, sku: str, qty: int,
    *, status: str = "paid", buyer: str | None = None, shipping: int = 0,
) -> None:  # fmt: skip
    price, currency = (2500, "EUR") if sku == "k1" else (4000, "USD")
    product = "kettle" if sku == "k1" else "lamp"
    await pool.execute(
        "INSERT INTO orders (id, buyer_id, status, currency, subtotal_minor, shipping_minor, "
        "total_minor, room_id, idem_scope, idem_key, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'buy', $1, $9)",
        oid, buyer or f"buyer-{oid}", status, currency, price * qty, shipping,
        price * qty + shipping, room,
        dt.datetime.fromtimestamp(at, dt.UTC),
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO order_lines (order_id, line, sku, product_id, quantity, price_minor) "
        "VALUES ($1, 1, $2, $3, $4, $5)",
        oid, sku, product, qty, price,
    )  # fmt: skip


async def test_sums_count_placed_orders_in_the_window_per_currency(store: OverviewStore) -> None:
    pool = store.pool
    await order(pool, "o1", "ra", T + 60, "k1", 2, buyer="zoe", shipping=499)  # 5499 EUR
    await order(pool, "o2", "ra", T + 120, "l1", 1, buyer="zoe", status="delivered")  # 4000 USD
    await order(pool, "o3", "rb", T + HOUR + 5, "k1", 1, status="pending")  # 2500 EUR
    await order(pool, "o4", None, T + 300, "l1", 3)  # 12000 USD, no room: no show or creator
    await order(pool, "x1", "ra", T + 200, "k1", 9, status="cancelled")  # never counted
    await order(pool, "x2", "ra", T - 10, "k1", 9)  # before the window
    await order(pool, "x3", "ra", T + 3 * HOUR, "k1", 9)  # at its end: excluded
    view = await store.overview(T, T + 3 * HOUR)
    assert view["gmv_minor"] == {"EUR": 7999, "USD": 16000}
    assert all(type(v) is int for v in view["gmv_minor"].values())  # never floats
    assert (view["orders"], view["buyers"]) == (4, 3)
    # Nothing at all: zero, not null.
    empty = await store.overview(T - 10 * HOUR, T - 9 * HOUR)
    assert (empty["gmv_minor"], empty["orders"], empty["buyers"]) == ({}, 0, 0)
    assert empty["top_shows"] == empty["top_products"] == empty["top_creators"] == []


async def test_top_lists_rank_by_the_largest_single_currency_sum(store: OverviewStore) -> None:
    pool = store.pool
    # Show a: 5000 EUR + 4000 USD (largest single sum 5000) in 3 orders.
    await order(pool, "a1", "ra", T + 60, "k1", 1)
    await order(pool, "a2", "ra", T + 70, "k1", 1)
    await order(pool, "a3", "ra", T + 80, "l1", 1)
    # Show b: 8000 USD in one order; also a cancelled one that would put it first.
    await order(pool, "b1", "rb", T + HOUR + 60, "l1", 2)
    await order(pool, "bx", "rb", T + HOUR + 70, "k1", 40, status="cancelled")
    # Show c ended early: its room's order after that is not the show's, but still ``cy``'s.
    await end_early(pool)
    await order(pool, "c1", "rc", T + 60, "k1", 2)  # 5000 EUR, 1 order: ties a on GMV
    await order(pool, "c2", "rc", T + HOUR + 60, "k1", 4)  # 10000 EUR after the show
    view = await store.overview(T, T + 3 * HOUR)

    assert [(s["show_id"], s["gmv_minor"], s["orders"]) for s in view["top_shows"]] == [
        ("b", {"USD": 8000}, 1),
        ("a", {"EUR": 5000, "USD": 4000}, 3),  # the tie with c goes to more orders
        ("c", {"EUR": 5000}, 1),
    ]
    assert view["top_shows"][0] | {"gmv_minor": None} == {
        "show_id": "b", "title": "Show B", "channel_id": "deals", "room_id": "rb",
        "gmv_minor": None, "orders": 1,
    }  # fmt: skip
    assert view["top_products"] == [
        {"product_id": "kettle", "sku": "k1", "title": "Kettle", "units": 8,
         "gmv_minor": {"EUR": 20000}},
        {"product_id": "lamp", "sku": "l1", "title": "Lamp", "units": 3,
         "gmv_minor": {"USD": 12000}},
    ]  # fmt: skip
    assert view["top_creators"] == [
        {"creator_id": "cy", "gmv_minor": {"EUR": 15000}, "orders": 2},
        {"creator_id": "bo", "gmv_minor": {"USD": 8000}, "orders": 1},
        {"creator_id": "ana", "gmv_minor": {"EUR": 5000, "USD": 4000}, "orders": 3},
    ]
    # The lists are cut after ``top`` entries, the best kept.
    cut = await store.overview(T, T + 3 * HOUR, top=2)
    assert [s["show_id"] for s in cut["top_shows"]] == ["b", "a"]
    assert [c["creator_id"] for c in cut["top_creators"]] == ["cy", "bo"]


async def test_each_channel_with_the_show_in_its_slot(store: OverviewStore) -> None:
    at_start = {c.channel.channel_id: c for c in await store.on_air(T + 10)}
    assert [at_start[c].now.show_id if at_start[c].now else None for c in ("beauty", "deals")] == [
        "c", "a",
    ]  # fmt: skip
    await end_early(store.pool)
    later = {c.channel.channel_id: c for c in await store.on_air(T + HOUR + 10)}
    # c ended early: beauty has nothing on; the cancelled show never holds a slot.
    assert later["beauty"].now is None and later["deals"].now is not None
    assert later["deals"].now.room_id == "rb" and later["deals"].override is None
    assert [c.now for c in await store.on_air(T + 3.5 * HOUR)] == [None, None]
