"""Orders in PostgreSQL: reading and searching them, moving them through their lifecycle,
split shipments, and cancellations that owe stock back.

Guarantees: every status change is a compare-and-set (``UPDATE ... WHERE status IN (the
allowed sources)``) logged in ``order_status_log`` in the same transaction, so two racing
changes cannot both win; a cancellation writes the stock it owes back (``stock_returns``) in
the same transaction, and the SKU actors apply each return exactly once.
"""

from __future__ import annotations

import datetime
from typing import Any

import asyncpg

from liveshop.commerce.order import ShipmentLine, check_shipment, check_transition, sources_of
from liveshop.errors import InvalidTransition, OrderNotFound

ORDER_COLUMNS = (
    "id, buyer_id, status, currency, subtotal_minor, tax_minor, shipping_minor, total_minor, "
    "room_id, created_at, updated_at"
)


def _ts(value: datetime.datetime) -> float:
    return value.timestamp()


def _order(row: asyncpg.Record) -> dict[str, Any]:
    order = dict(row)
    order["currency"] = order["currency"].strip()
    order["created_at"] = _ts(order["created_at"])
    order["updated_at"] = _ts(order["updated_at"])
    return order


class OrderStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get(self, order_id: str) -> dict[str, Any]:
        """The order with its lines, shipments, status history and payments."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            row = await conn.fetchrow(f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1", order_id)
            if row is None:
                raise OrderNotFound(f"no order {order_id!r}")
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
            return await self._transition(conn, order_id, target, by=by, note=note)

    async def _transition(
        self, conn: asyncpg.Connection, order_id: str, target: str, *, by: str, note: str
    ) -> dict[str, Any]:
        row = await conn.fetchrow(
            f"UPDATE orders SET status = $2, updated_at = now() "
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
            "INSERT INTO order_status_log (order_id, status, by_user, note) "
            "VALUES ($1, $2, $3, $4)",
            order_id,
            target,
            by,
            note[:500],
        )
        return _order(row)

    async def cancel(self, order_id: str, *, by: str, note: str = "") -> tuple[dict[str, Any], str]:
        """Cancel a pending or paid order and owe its units back to their SKUs. Returns the
        order and the status it had (a paid one needs a refund)."""
        async with self.pool.acquire() as conn, conn.transaction():
            before = await conn.fetchval(
                "SELECT status FROM orders WHERE id = $1 FOR UPDATE", order_id
            )
            if before is None:
                raise OrderNotFound(f"no order {order_id!r}")
            order = await self._transition(conn, order_id, "cancelled", by=by, note=note)
            await conn.execute(
                "INSERT INTO stock_returns (ref, sku, order_id, buyer_id, quantity, deal_id) "
                "SELECT 'cancel:' || l.order_id, l.sku, l.order_id, o.buyer_id, "
                "sum(l.quantity), min(l.deal_id) FROM order_lines l "
                "JOIN orders o ON o.id = l.order_id WHERE l.order_id = $1 "
                "GROUP BY l.order_id, l.sku, o.buyer_id",
                order_id,
            )
        return order, before

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
                await self._transition(conn, order_id, "fulfilled", by=by, note="shipping")
            if complete:
                await self._transition(conn, order_id, "shipped", by=by, note="")
        return await self.get(order_id)

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
