"""Saved payment methods and payment attempts in PostgreSQL.

Guarantees: at most one payment of an order is in flight or succeeded at any time (a partial
unique index), so an order is never charged twice; a payment and its order's move to
``paid`` commit together; ``(order, key)`` names one attempt (retries find it).
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

import asyncpg

from liveshop.errors import (
    Conflict,
    IdempotencyMismatch,
    InvalidTransition,
    OrderNotFound,
    PaymentMethodNotFound,
    PaymentNotFound,
)
from liveshop.payments.provider import Card
from liveshop.storage.orders import move_order


def _method(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "brand": row["brand"],
        "last4": row["last4"].strip(),
        "created_at": row["created_at"].timestamp(),
    }


class PaymentStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # -- saved methods ------------------------------------------------------------------------

    async def save_method(self, user_id: str, provider: str, card: Card) -> dict[str, Any]:
        row = await self.pool.fetchrow(
            "INSERT INTO payment_methods (id, user_id, provider, token, brand, last4) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, token) "
            "DO UPDATE SET created_at = now() RETURNING *",
            f"pm_{secrets.token_hex(8)}", user_id, provider, card.token, card.brand, card.last4,
        )  # fmt: skip
        assert row is not None
        return _method(row)

    async def methods(self, user_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM payment_methods WHERE user_id = $1 ORDER BY created_at DESC", user_id
        )
        return [_method(r) for r in rows]

    async def token(self, user_id: str, method_id: str | None) -> tuple[str, str]:
        """``(method id, provider token)`` of the user's method; the newest when None."""
        row = await self.pool.fetchrow(
            "SELECT id, token FROM payment_methods WHERE user_id = $1 "
            "AND ($2::text IS NULL OR id = $2) ORDER BY created_at DESC LIMIT 1",
            user_id,
            method_id,
        )
        if row is None:
            raise PaymentMethodNotFound(
                "no saved payment method" if method_id is None else f"no method {method_id!r}"
            )
        return row["id"], row["token"]

    # -- payments -----------------------------------------------------------------------------

    async def start(
        self, order_id: str, buyer_id: str, method_id: str, key: str
    ) -> tuple[dict[str, Any], bool]:
        """The attempt named ``(order, key)``: created now (``True``) or found (``False``)."""
        async with self.pool.acquire() as conn, conn.transaction():
            order = await conn.fetchrow(
                "SELECT buyer_id, status, total_minor, currency FROM orders WHERE id = $1 "
                "FOR UPDATE",
                order_id,
            )
            if order is None or order["buyer_id"] != buyer_id:
                raise OrderNotFound(f"no order {order_id!r} of yours")
            existing = await conn.fetchrow(
                "SELECT * FROM payments WHERE order_id = $1 AND idem_key = $2", order_id, key
            )
            if existing is not None:
                if existing["method_id"] != method_id:
                    raise IdempotencyMismatch("this key was used with another payment method")
                return _payment(existing), False
            if order["status"] != "pending":
                raise InvalidTransition(f"the order is {order['status']}, not awaiting payment")
            try:
                row = await conn.fetchrow(
                    "INSERT INTO payments (id, order_id, buyer_id, method_id, amount_minor, "
                    "currency, idem_key) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
                    f"pay_{secrets.token_hex(8)}", order_id, buyer_id, method_id,
                    order["total_minor"], order["currency"], key,
                )  # fmt: skip
            except asyncpg.UniqueViolationError:
                raise Conflict("a payment of this order is already under way") from None
        assert row is not None
        return _payment(row), True

    async def get(self, payment_id: str) -> dict[str, Any]:
        row = await self.pool.fetchrow("SELECT * FROM payments WHERE id = $1", payment_id)
        if row is None:
            raise PaymentNotFound(f"no payment {payment_id!r}")
        return _payment(row)

    async def settle(
        self, payment_id: str, status: str, failure: str = ""
    ) -> tuple[dict[str, Any], str]:
        """Record the provider's outcome once (from pending or requires_action); a success
        moves the order to ``paid`` in the same transaction. Returns the payment and the
        order's status."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE payments SET status = $2, failure = nullif($3, ''), updated_at = now() "
                "WHERE id = $1 AND status IN ('pending', 'requires_action') RETURNING *",
                payment_id,
                status,
                failure,
            )
            if row is None:  # settled before (a retry or the reconciler): answer as it is
                row = await conn.fetchrow("SELECT * FROM payments WHERE id = $1", payment_id)
                if row is None:
                    raise PaymentNotFound(f"no payment {payment_id!r}")
            elif status == "succeeded":
                # Paid unless it moved on meanwhile (cancelled, or paid by another attempt).
                with contextlib.suppress(InvalidTransition):
                    await move_order(
                        conn, row["order_id"], "paid", by=row["buyer_id"], note=payment_id
                    )
            order_status = await conn.fetchval(
                "SELECT status FROM orders WHERE id = $1", row["order_id"]
            )
        return _payment(row), order_status

    async def require_action(self, payment_id: str) -> dict[str, Any]:
        """The provider asks the buyer for a challenge: the payment waits for ``confirm``."""
        await self.pool.execute(
            "UPDATE payments SET status = 'requires_action', updated_at = now() "
            "WHERE id = $1 AND status = 'pending'",
            payment_id,
        )
        return await self.get(payment_id)

    async def mark_refunded(self, payment_id: str) -> None:
        await self.pool.execute(
            "UPDATE payments SET status = 'refunded', updated_at = now() "
            "WHERE id = $1 AND status = 'succeeded'",
            payment_id,
        )

    async def captured_of(self, order_id: str) -> dict[str, Any] | None:
        """The order's payment that took money (refunded since, or not)."""
        row = await self.pool.fetchrow(
            "SELECT * FROM payments WHERE order_id = $1 AND status IN ('succeeded', 'refunded')",
            order_id,
        )
        return None if row is None else _payment(row)

    async def unsettled(self, older_than: float) -> list[str]:
        """Payments still pending (their charge call timed out or the process died)."""
        rows = await self.pool.fetch(
            "SELECT id FROM payments WHERE status = 'pending' "
            "AND updated_at < to_timestamp($1) ORDER BY updated_at LIMIT 1000",
            older_than,
        )
        return [r["id"] for r in rows]


def _payment(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "payment": row["id"],
        "order": row["order_id"],
        "buyer_id": row["buyer_id"],
        "method_id": row["method_id"],
        "amount_minor": row["amount_minor"],
        "currency": row["currency"].strip(),
        "status": row["status"],
        "failure": row["failure"],
    }
