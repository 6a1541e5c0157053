"""Orders in PostgreSQL: reading and searching them, moving them through their lifecycle,
split shipments, and cancellations that owe stock back.

Guarantees: every status change is a compare-and-set (``UPDATE ... WHERE status IN (the
allowed sources)``) logged in ``order_status_log`` in the same transaction, so two racing
changes cannot both win; a cancellation writes the stock it owes back (``stock_returns``) in
the same transaction, and the SKU actors apply each return exactly once.
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
from collections.abc import Sequence
from typing import Any

import asyncpg

from liveshop.commerce.checkout import Address, Quote, return_window_days
from liveshop.commerce.order import (
    NewLine,
    NewOrder,
    Returnable,
    ShipmentLine,
    check_shipment,
    check_transition,
    refund_for_return,
    sources_of,
)
from liveshop.errors import InternalError, InvalidTransition, OrderNotFound, ReturnNotFound
from liveshop.storage.carts import add_event

ORDER_COLUMNS = (
    "id, number, buyer_id, status, currency, subtotal_minor, tax_minor, shipping_minor, "
    "total_minor, room_id, created_at, updated_at"
)
#: An order's readable number (``LS-10427``): assigned by PostgreSQL (the ``order_numbers``
#: sequence) when the order is inserted. No order id has this shape (ids of buys hold a
#: ``~``, of checkouts start ``chk-``), so an id or a number names one order.
ORDER_NUMBER = re.compile(r"LS-[0-9]{1,18}")


def _ts(value: datetime.datetime) -> float:
    return value.timestamp()


def _order(row: asyncpg.Record) -> dict[str, Any]:
    order = dict(row)
    order["currency"] = order["currency"].strip()
    order["created_at"] = _ts(order["created_at"])
    order["updated_at"] = _ts(order["updated_at"])
    return order


async def insert_orders(conn: asyncpg.Connection, orders: Sequence[NewOrder]) -> None:
    """The one writer of new ``orders`` and ``order_lines`` rows, inside the caller's
    transaction (a SKU's group commit, an auction's settlement, a checkout): two statements
    however many orders, each order as commerce/order.py built and checked it. A flash
    sale's commit writes thousands of one-line orders of one SKU with no tax, shipping or
    address: those go as the few arrays that vary (every array is encoded in the SKU's
    process, on its event loop)."""
    if not orders:
        return
    plain = all(
        len(o.lines) == 1 and not (o.tax_minor or o.shipping_minor or o.address or o.email)
        and not o.tax_basis_points for o in orders
    )  # fmt: skip
    first = orders[0].lines[0]
    one_sku = plain and all(
        o.lines[0].sku == first.sku and o.lines[0].product_id == first.product_id
        and o.currency == orders[0].currency and o.idem_scope == orders[0].idem_scope
        for o in orders
    )  # fmt: skip
    if one_sku:
        await _insert_one_sku(conn, orders)
        return
    await conn.execute(
        "INSERT INTO orders (id, buyer_id, currency, subtotal_minor, tax_minor, shipping_minor, "
        "total_minor, room_id, idem_scope, idem_key, created_at, shipping_address, email, "
        "tax_basis_points) SELECT id, b, c, s, t, sh, tot, r, sc, k, to_timestamp(at), "
        "addr::jsonb, e, bp FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], "
        "$5::bigint[], $6::bigint[], $7::bigint[], $8::text[], $9::text[], $10::text[], "
        "$11::float8[], $12::text[], $13::text[], $14::integer[]) "
        "AS u(id, b, c, s, t, sh, tot, r, sc, k, at, addr, e, bp)",
        [o.order_id for o in orders], [o.buyer_id for o in orders],
        [o.currency for o in orders], [o.subtotal_minor for o in orders],
        [o.tax_minor for o in orders], [o.shipping_minor for o in orders],
        [o.total_minor for o in orders], [o.room_id for o in orders],
        [o.idem_scope for o in orders], [o.idem_key for o in orders], [o.at for o in orders],
        [None if o.address is None else json.dumps(dict(o.address)) for o in orders],
        [o.email for o in orders], [o.tax_basis_points or 0 for o in orders],
    )  # fmt: skip
    lines = [(o.order_id, n, ln) for o in orders for n, ln in enumerate(o.lines, start=1)]
    await conn.execute(
        "INSERT INTO order_lines (order_id, line, sku, product_id, quantity, price_minor, "
        "deal_id, reservation_id) SELECT * FROM unnest($1::text[], $2::integer[], $3::text[], "
        "$4::text[], $5::integer[], $6::bigint[], $7::text[], $8::text[])",
        [o for o, _, _ in lines], [n for _, n, _ in lines], [ln.sku for _, _, ln in lines],
        [ln.product_id for _, _, ln in lines], [ln.quantity for _, _, ln in lines],
        [ln.price_minor for _, _, ln in lines], [ln.deal_id for _, _, ln in lines],
        [ln.reservation_id for _, _, ln in lines],
    )  # fmt: skip


async def _insert_one_sku(conn: asyncpg.Connection, orders: Sequence[NewOrder]) -> None:
    """:func:`insert_orders` for one-line orders of one SKU with no tax, shipping or address:
    the same rows, the constant columns sent once."""
    first, lines = orders[0], [o.lines[0] for o in orders]
    await conn.execute(
        "INSERT INTO orders (id, buyer_id, currency, subtotal_minor, total_minor, room_id, "
        "idem_scope, idem_key, created_at) SELECT id, b, $1, t, t, r, $2, k, to_timestamp(at) "
        "FROM unnest($3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], "
        "$8::float8[]) AS u(id, b, t, r, k, at)",
        first.currency, first.idem_scope, [o.order_id for o in orders],
        [o.buyer_id for o in orders], [o.total_minor for o in orders],
        [o.room_id for o in orders], [o.idem_key for o in orders], [o.at for o in orders],
    )  # fmt: skip
    await conn.execute(
        "INSERT INTO order_lines (order_id, line, sku, product_id, quantity, price_minor, "
        "deal_id, reservation_id) SELECT id, 1, $1, $2, q, p, d, h FROM unnest($3::text[], "
        "$4::integer[], $5::bigint[], $6::text[], $7::text[]) AS u(id, q, p, d, h)",
        first.lines[0].sku, first.lines[0].product_id, [o.order_id for o in orders],
        [ln.quantity for ln in lines], [ln.price_minor for ln in lines],
        [ln.deal_id for ln in lines], [ln.reservation_id for ln in lines],
    )  # fmt: skip


async def move_order(
    conn: asyncpg.Connection, order_id: str, target: str, *, by: str, note: str
) -> dict[str, Any]:
    """The one writer of an order's status, inside the caller's transaction: moves it to
    ``target`` only from a status the lifecycle (commerce/order.py) allows, and logs who
    did it; raises InvalidTransition (or OrderNotFound) otherwise."""
    row = await conn.fetchrow(
        f"UPDATE orders SET status = $2, updated_at = now(), delivered_at = CASE "
        f"WHEN $2 = 'delivered' THEN now() ELSE delivered_at END "
        f"WHERE id = $1 AND status = ANY($3::text[]) RETURNING {ORDER_COLUMNS}",
        order_id,
        target,
        sources_of(target),
    )
    if row is None:
        current = await conn.fetchval("SELECT status FROM orders WHERE id = $1", order_id)
        if current is None:
            raise OrderNotFound(f"no order {order_id!r}")
        check_transition(current, target)  # raises the precise reason
        raise InvalidTransition(f"the order is {current}")  # pragma: no cover
    await conn.execute(
        "INSERT INTO order_status_log (order_id, status, by_user, note) VALUES ($1, $2, $3, $4)",
        order_id,
        target,
        by,
        note[:500],
    )
    return _order(row)


class OrderStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get(self, ref: str) -> dict[str, Any]:
        """The order with its lines, shipments, status history and payments; ``ref`` is
        its id or its number."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            row = await conn.fetchrow(f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1", ref)
            if row is None and ORDER_NUMBER.fullmatch(ref):
                row = await conn.fetchrow(
                    f"SELECT {ORDER_COLUMNS} FROM orders WHERE number = $1", ref
                )
            if row is None:
                raise OrderNotFound(f"no order {ref!r}")
            order_id = row["id"]
            lines = await conn.fetch(
                "SELECT line, sku, product_id, quantity, price_minor, deal_id FROM order_lines "
                "WHERE order_id = $1 ORDER BY line",
                order_id,
            )
            shipments = await conn.fetch(
                "SELECT s.id, s.carrier, s.tracking, s.created_at, "
                "jsonb_agg(jsonb_build_object('line', l.line, 'quantity', l.quantity) "
                "ORDER BY l.line) AS lines FROM shipments s "
                "JOIN shipment_lines l ON l.shipment_id = s.id WHERE s.order_id = $1 "
                "GROUP BY s.id ORDER BY s.id",
                order_id,
            )
            history = await conn.fetch(
                "SELECT status, by_user, note, at FROM order_status_log WHERE order_id = $1 "
                "ORDER BY id",
                order_id,
            )
            payments = await conn.fetch(
                "SELECT id, status, amount_minor, failure, created_at FROM payments "
                "WHERE order_id = $1 ORDER BY created_at",
                order_id,
            )
        order = _order(row)
        order["lines"] = [dict(r) for r in lines]
        order["shipments"] = [
            {
                "id": s["id"],
                "carrier": s["carrier"],
                "tracking": s["tracking"],
                "created_at": _ts(s["created_at"]),
                "lines": s["lines"],
            }
            for s in shipments
        ]
        order["history"] = [{**dict(h), "at": _ts(h["at"])} for h in history]
        order["payments"] = [{**dict(p), "created_at": _ts(p["created_at"])} for p in payments]
        return order

    async def search(
        self,
        *,
        buyer_id: str | None = None,
        status: str | None = None,
        room_id: str | None = None,
        sku: str | None = None,
        since: float | None = None,
        until: float | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Newest first; page with ``before`` = the last order id of the previous page."""
        rows = await self.pool.fetch(
            f"SELECT {ORDER_COLUMNS} FROM orders o WHERE "
            "($1::text IS NULL OR buyer_id = $1) AND ($2::text IS NULL OR status = $2) "
            "AND ($3::text IS NULL OR room_id = $3) "
            "AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM order_lines l "
            "     WHERE l.order_id = o.id AND l.sku = $4)) "
            "AND ($5::float8 IS NULL OR created_at >= to_timestamp($5)) "
            "AND ($6::float8 IS NULL OR created_at < to_timestamp($6)) "
            "AND ($7::text IS NULL OR (created_at, id) < "
            "     (SELECT created_at, id FROM orders WHERE id = $7)) "
            "ORDER BY created_at DESC, id DESC LIMIT $8",
            buyer_id, status, room_id, sku, since, until, before, limit,
        )  # fmt: skip
        return [_order(r) for r in rows]

    async def transition(
        self, order_id: str, target: str, *, by: str, note: str = ""
    ) -> dict[str, Any]:
        """Move the order to ``target`` if its current status allows it."""
        async with self.pool.acquire() as conn, conn.transaction():
            return await move_order(conn, order_id, target, by=by, note=note)

    async def cancel(self, order_id: str, *, by: str, note: str = "") -> tuple[dict[str, Any], str]:
        """Cancel a pending or paid order and owe its units back to their SKUs. Returns the
        order and the status it had (a paid one needs a refund)."""
        async with self.pool.acquire() as conn, conn.transaction():
            before = await conn.fetchval(
                "SELECT status FROM orders WHERE id = $1 FOR UPDATE", order_id
            )
            if before is None:
                raise OrderNotFound(f"no order {order_id!r}")
            order = await move_order(conn, order_id, "cancelled", by=by, note=note)
            # Only sold units come back; units still on a hold are released instead
            # (Commerce.settle_holds), never counted twice.
            await conn.execute(
                "INSERT INTO stock_returns (ref, sku, order_id, buyer_id, quantity, deal_id) "
                "SELECT 'cancel:' || l.order_id, l.sku, l.order_id, o.buyer_id, "
                "sum(l.quantity), min(l.deal_id) FROM order_lines l "
                "JOIN orders o ON o.id = l.order_id "
                "LEFT JOIN sku_reservations r ON r.id = l.reservation_id "
                "WHERE l.order_id = $1 AND (l.reservation_id IS NULL OR r.status = 'committed') "
                "GROUP BY l.order_id, l.sku, o.buyer_id",
                order_id,
            )
        return order, before

    async def number_of(self, order_id: str) -> str | None:
        """The order's number (``None`` if there is no such order)."""
        return (await self.numbers_of([order_id]))[0]

    async def numbers_of(self, order_ids: list[str]) -> list[str | None]:
        """Each order's number, in the order asked (``None`` for no such order)."""
        rows = await self.pool.fetch(
            "SELECT id, number FROM orders WHERE id = ANY($1::text[])", order_ids
        )
        numbers = {r["id"]: r["number"] for r in rows}
        return [numbers.get(order_id) for order_id in order_ids]

    async def check_buyer(self, order_id: str, buyer_id: str) -> None:
        """``order_not_found`` unless the order exists and is ``buyer_id``'s."""
        owner = await self.pool.fetchval("SELECT buyer_id FROM orders WHERE id = $1", order_id)
        if owner != buyer_id:
            raise OrderNotFound(f"no order {order_id!r} of yours")

    async def skus_of(self, order_id: str) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT DISTINCT sku FROM order_lines WHERE order_id = $1", order_id
        )
        return [r["sku"] for r in rows]

    async def ship(
        self, order_id: str, *, carrier: str, tracking: str, lines: list[ShipmentLine], by: str
    ) -> dict[str, Any]:
        """Record a shipment of some units; the order is ``shipped`` once all units are."""
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.fetchval(
                "SELECT status FROM orders WHERE id = $1 FOR UPDATE", order_id
            )
            if status is None:
                raise OrderNotFound(f"no order {order_id!r}")
            if status not in ("paid", "fulfilled"):
                raise InvalidTransition(f"an order that is {status} cannot be shipped")
            ordered = {
                r["line"]: r["quantity"]
                for r in await conn.fetch(
                    "SELECT line, quantity FROM order_lines WHERE order_id = $1", order_id
                )
            }
            shipped = {
                r["line"]: r["units"]
                for r in await conn.fetch(
                    "SELECT l.line, sum(l.quantity)::int AS units FROM shipment_lines l "
                    "JOIN shipments s ON s.id = l.shipment_id WHERE s.order_id = $1 "
                    "GROUP BY l.line",
                    order_id,
                )
            }
            complete = check_shipment(ordered, shipped, lines)
            shipment_id = await conn.fetchval(
                "INSERT INTO shipments (order_id, carrier, tracking) VALUES ($1, $2, $3) "
                "RETURNING id",
                order_id,
                carrier,
                tracking,
            )
            await conn.executemany(
                "INSERT INTO shipment_lines (shipment_id, line, quantity) VALUES ($1, $2, $3) "
                "ON CONFLICT (shipment_id, line) DO UPDATE "
                "SET quantity = shipment_lines.quantity + EXCLUDED.quantity",
                [(shipment_id, item.line, item.quantity) for item in lines],
            )
            if status == "paid":
                await move_order(conn, order_id, "fulfilled", by=by, note="shipping")
            if complete:
                await move_order(conn, order_id, "shipped", by=by, note="")
        return await self.get(order_id)

    # -- checkout -----------------------------------------------------------------------------

    async def checkout_order(self, buyer_id: str, key: str) -> str | None:
        order_id: str | None = await self.pool.fetchval(
            "SELECT order_id FROM checkouts WHERE buyer_id = $1 AND idem_key = $2", buyer_id, key
        )
        return order_id

    async def place_checkout(
        self,
        *,
        buyer_id: str,
        key: str,
        quote: Quote,
        holds: dict[str, str],
        address: Address,
        email: str | None,
        room_id: str | None,
        at: float,
    ) -> str:
        """The order of a checkout (pending, on the given holds), once per key."""
        order_id = f"chk-{secrets.token_hex(6)}"
        order = NewOrder(
            order_id, buyer_id, quote.currency,
            tuple(NewLine(ln.sku, ln.product_id, ln.quantity, ln.price_minor, ln.deal_id,
                          holds[ln.sku]) for ln in quote.lines),
            "checkout", key, at, room_id=room_id, tax_minor=quote.tax_minor,
            shipping_minor=quote.shipping_minor, tax_basis_points=quote.tax_basis_points,
            address=address.to_wire(), email=email,
        )  # fmt: skip
        if order.total_minor != quote.total_minor:
            raise InternalError("the quote's total does not add up")  # a pricing bug
        async with self.pool.acquire() as conn, conn.transaction():
            await insert_orders(conn, [order])
            await conn.execute(
                "INSERT INTO checkouts (buyer_id, idem_key, order_id) VALUES ($1, $2, $3)",
                buyer_id,
                key,
                order_id,
            )
            await add_event(
                conn,
                "order_placed",
                buyer_id,
                {"order": order_id, "total_minor": quote.total_minor},
            )
        return order_id

    async def unsettled_holds(self) -> list[tuple[str, str, str, str]]:
        """``(order, status, sku, reservation)`` of order lines whose units are still on a
        hold although the order was paid (commit it) or cancelled (release it)."""
        rows = await self.pool.fetch(
            "SELECT o.id, o.status, l.sku, l.reservation_id FROM order_lines l "
            "JOIN orders o ON o.id = l.order_id "
            "JOIN sku_reservations r ON r.id = l.reservation_id AND r.status = 'held' "
            "WHERE o.status <> 'pending' LIMIT 1000"
        )
        return [(r["id"], r["status"], r["sku"], r["reservation_id"]) for r in rows]

    # -- returns ------------------------------------------------------------------------------

    async def request_return(
        self, order_id: str, buyer_id: str, lines: list[ShipmentLine], reason: str, key: str,
        *, now: float,
    ) -> dict[str, Any]:  # fmt: skip
        """A return of some delivered units, within the return window; refunds their price
        and their share of tax (shipping is not refunded)."""
        async with self.pool.acquire() as conn, conn.transaction():
            existing = await conn.fetchrow(
                "SELECT * FROM returns WHERE order_id = $1 AND idem_key = $2", order_id, key
            )
            if existing is not None:
                return _return(existing)
            order = await conn.fetchrow(
                "SELECT buyer_id, status, delivered_at, shipping_address, tax_basis_points "
                "FROM orders WHERE id = $1 FOR UPDATE",
                order_id,
            )
            if order is None:
                raise OrderNotFound(f"no order {order_id!r} of yours")
            ordered = {
                r["line"]: (r["quantity"], r["price_minor"])
                for r in await conn.fetch(
                    "SELECT line, quantity, price_minor FROM order_lines WHERE order_id = $1",
                    order_id,
                )
            }
            returned: dict[int, int] = {}
            for r in await conn.fetch(
                "SELECT lines FROM returns WHERE order_id = $1 AND status <> 'rejected'", order_id
            ):
                for item in r["lines"]:
                    returned[item["line"]] = returned.get(item["line"], 0) + item["quantity"]
            delivered = order["delivered_at"]
            facts = Returnable(
                buyer_id=order["buyer_id"], status=order["status"],
                delivered_at=None if delivered is None else delivered.timestamp(),
                return_days=return_window_days(
                    (order["shipping_address"] or {}).get("country", "")
                ),
                tax_basis_points=order["tax_basis_points"], ordered=ordered, returned=returned,
            )  # fmt: skip
            try:
                refund = refund_for_return(facts, buyer_id, lines, now)
            except OrderNotFound:
                raise OrderNotFound(f"no order {order_id!r} of yours") from None
            row = await conn.fetchrow(
                "INSERT INTO returns (id, order_id, buyer_id, lines, reason, refund_minor, "
                "idem_key) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
                f"ret-{secrets.token_hex(6)}", order_id, buyer_id,
                [{"line": i.line, "quantity": i.quantity} for i in lines], reason[:500], refund,
                key,
            )  # fmt: skip
            await add_event(conn, "return_requested", buyer_id, {"return": row["id"]})
        assert row is not None
        return _return(row)

    async def decide_return(self, return_id: str, approve: bool) -> dict[str, Any]:
        """Approve (the units are owed back to their SKUs) or reject a requested return."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE returns SET status = $2, updated_at = now() "
                "WHERE id = $1 AND status = 'requested' RETURNING *",
                return_id,
                "approved" if approve else "rejected",
            )
            if row is None:
                current = await conn.fetchrow("SELECT * FROM returns WHERE id = $1", return_id)
                if current is None:
                    raise ReturnNotFound(f"no return {return_id!r}")
                if current["status"] == ("approved" if approve else "rejected") or (
                    approve and current["status"] == "refunded"
                ):
                    return _return(current)  # a retry
                raise InvalidTransition(f"the return is {current['status']}")
            if approve:
                await conn.execute(
                    "INSERT INTO stock_returns (ref, sku, order_id, buyer_id, quantity, deal_id) "
                    "SELECT 'return:' || $1, l.sku, l.order_id, $2, sum(r.quantity), "
                    "min(l.deal_id) FROM jsonb_to_recordset($3::jsonb) AS r(line int, quantity "
                    "int) JOIN order_lines l ON l.order_id = $4 AND l.line = r.line "
                    "GROUP BY l.sku, l.order_id ON CONFLICT DO NOTHING",
                    return_id, row["buyer_id"], row["lines"], row["order_id"],
                )  # fmt: skip
        return _return(row)

    async def mark_refunded(self, return_id: str) -> dict[str, Any]:
        row = await self.pool.fetchrow(
            "UPDATE returns SET status = 'refunded', updated_at = now() "
            "WHERE id = $1 AND status IN ('approved', 'refunded') RETURNING *",
            return_id,
        )
        if row is None:
            raise ReturnNotFound(f"no approved return {return_id!r}")
        return _return(row)

    async def unpaid(self, older_than: float) -> list[str]:
        """Pending orders older than ``older_than`` (epoch s) with no payment under way."""
        rows = await self.pool.fetch(
            "SELECT id FROM orders o WHERE status = 'pending' "
            "AND created_at < to_timestamp($1) AND NOT EXISTS (SELECT 1 FROM payments p "
            "WHERE p.order_id = o.id AND p.status IN ('pending', 'requires_action')) "
            "ORDER BY created_at LIMIT 1000",
            older_than,
        )
        return [r["id"] for r in rows]


def _return(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "return": row["id"],
        "order": row["order_id"],
        "status": row["status"],
        "lines": row["lines"],
        "reason": row["reason"],
        "refund_minor": row["refund_minor"],
    }
