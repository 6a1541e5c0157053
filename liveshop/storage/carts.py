"""Carts, the commerce event feed, rooms' stock policies and sellers' shipping rules in
PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from liveshop.commerce.cart import Cart
from liveshop.commerce.checkout import DEFAULT_SHIPPING, ShippingRule
from liveshop.errors import InvalidRequest
from liveshop.storage.owners import Fence, check_fence

POLICIES = ("hold", "first_paid")


#: A cart saved only while its fence (the owner epoch, share-locked for the statement)
#: is still ours; no row comes back once another host claimed the cart.
_SAVE_FENCED = """
WITH owner AS (
    SELECT epoch FROM entity_owners WHERE kind = 'cart' AND key = $1 FOR SHARE
)
INSERT INTO carts (user_id, state) SELECT $1, $2 FROM owner WHERE owner.epoch = $3
ON CONFLICT (user_id) DO UPDATE SET state = EXCLUDED.state, updated_at = now()
RETURNING 1
"""


class CartStore:
    """``fence``: the cart actor's claim on the cart (storage/owners.py); set, :meth:`save`
    checks it in its transaction and raises :class:`~liveshop.storage.owners.Fenced`
    (nothing written) once another host claimed the cart."""

    def __init__(self, pool: asyncpg.Pool, *, fence: Fence | None = None) -> None:
        self.pool = pool
        self.fence = fence

    async def load(self, user_id: str) -> Cart:
        state = await self.pool.fetchval("SELECT state FROM carts WHERE user_id = $1", user_id)
        return Cart.from_state(user_id, state) if state else Cart(user_id)

    async def save(
        self,
        cart: Cart,
        *,
        event: tuple[str, dict[str, Any]] | None = None,
        added: tuple[str, str, int, float] | None = None,
    ) -> None:
        """The cart, and an event about it if any, together; ``added`` = ``(room, sku,
        quantity, at)`` records an add to cart in a room for its show's analytics."""
        if event is None and added is None and self.fence is not None:
            # The common change: one statement, fence included (one round trip, not four).
            saved = await self.pool.fetchval(
                _SAVE_FENCED, cart.user_id, cart.to_state(), self.fence.epoch
            )
            if saved is None:
                self.fence.verify(None)  # another host owns the cart now: Fenced
            return
        async with self.pool.acquire() as conn, conn.transaction():
            await check_fence(self.fence, conn)
            await conn.execute(
                "INSERT INTO carts (user_id, state) VALUES ($1, $2) ON CONFLICT (user_id) "
                "DO UPDATE SET state = EXCLUDED.state, updated_at = now()",
                cart.user_id,
                cart.to_state(),
            )
            if event is not None:
                await add_event(conn, event[0], cart.user_id, event[1])
            if added is not None:
                room_id, sku, quantity, at = added
                await conn.execute(
                    "INSERT INTO cart_adds (room_id, user_id, sku, quantity, at) "
                    "VALUES ($1, $2, $3, $4, $5)",
                    room_id, cart.user_id, sku, quantity, at,
                )  # fmt: skip

    async def abandonable(self, untouched_since: float, *, limit: int = 200) -> list[str]:
        """Users whose cart has lines, was not reported abandoned yet and nobody touched
        since ``untouched_since`` (Unix seconds): passivated carts to wake and report."""
        rows = await self.pool.fetch(
            "SELECT user_id FROM carts WHERE (state->>'abandoned')::boolean IS NOT TRUE "
            "AND jsonb_array_length(state->'lines') > 0 "
            "AND (state->>'touched_at')::float8 < $1 "
            "ORDER BY (state->>'touched_at')::float8 LIMIT $2",
            untouched_since, limit,
        )  # fmt: skip
        return [r["user_id"] for r in rows]

    # -- events -------------------------------------------------------------------------------

    async def events(
        self, *, after: int | None, kind: str | None, limit: int
    ) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT id, kind, user_id, data, at FROM commerce_events "
            "WHERE ($1::bigint IS NULL OR id > $1) AND ($2::text IS NULL OR kind = $2) "
            "ORDER BY id LIMIT $3",
            after,
            kind,
            limit,
        )
        return [{**dict(r), "at": r["at"].timestamp()} for r in rows]

    # -- rooms and sellers --------------------------------------------------------------------

    async def room_policy(self, room_id: str, default_hold: float) -> tuple[str, float]:
        row = await self.pool.fetchrow(
            "SELECT stock_policy, hold_seconds FROM room_commerce WHERE room_id = $1", room_id
        )
        return (row["stock_policy"], row["hold_seconds"]) if row else ("first_paid", default_hold)

    async def set_room_policy(self, room_id: str, policy: str, hold_seconds: float) -> None:
        if policy not in POLICIES:
            raise InvalidRequest(f"stock_policy must be one of {', '.join(POLICIES)}")
        await self.pool.execute(
            "INSERT INTO room_commerce (room_id, stock_policy, hold_seconds) VALUES ($1, $2, $3) "
            "ON CONFLICT (room_id) DO UPDATE SET stock_policy = EXCLUDED.stock_policy, "
            "hold_seconds = EXCLUDED.hold_seconds",
            room_id,
            policy,
            hold_seconds,
        )

    async def room_host(self, room_id: str | None) -> str | None:
        if room_id is None:
            return None
        host: str | None = await self.pool.fetchval(
            "SELECT host_id FROM rooms WHERE id = $1", room_id
        )
        return host

    async def shipping_rules(self) -> list[ShippingRule]:
        """Sellers' own rules first; the built-in ones fill the gaps."""
        rows = await self.pool.fetch("SELECT * FROM shipping_rules")
        own = [
            ShippingRule(r["seller_id"], r["country"], r["base_minor"], r["per_item_minor"],
                         r["free_over_minor"])
            for r in rows
        ]  # fmt: skip
        taken = {(r.seller_id, r.country) for r in own}
        return own + [r for r in DEFAULT_SHIPPING if (r.seller_id, r.country) not in taken]

    async def set_shipping_rule(self, rule: ShippingRule) -> None:
        await self.pool.execute(
            "INSERT INTO shipping_rules (seller_id, country, base_minor, per_item_minor, "
            "free_over_minor) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seller_id, country) DO "
            "UPDATE SET base_minor = EXCLUDED.base_minor, per_item_minor = "
            "EXCLUDED.per_item_minor, free_over_minor = EXCLUDED.free_over_minor",
            rule.seller_id, rule.country, rule.base_minor, rule.per_item_minor,
            rule.free_over_minor,
        )  # fmt: skip


async def add_event(
    conn: asyncpg.Connection | asyncpg.Pool, kind: str, user_id: str, data: dict[str, Any]
) -> None:
    await conn.execute(
        "INSERT INTO commerce_events (kind, user_id, data) VALUES ($1, $2, $3)",
        kind,
        user_id,
        json.loads(json.dumps(data)),
    )
