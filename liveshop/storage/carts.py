"""Carts, the commerce event feed, rooms' stock policies and sellers' shipping rules in
PostgreSQL."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import asyncpg

from liveshop.commerce.cart import Cart
from liveshop.commerce.checkout import DEFAULT_SHIPPING, ShippingRule
from liveshop.errors import InvalidRequest, LiveshopError, Unavailable
from liveshop.storage.owners import Fence, check_fence
from liveshop.storage.pool import REFUSED_DATA_ERRORS, TRANSIENT_DB_ERRORS

log = logging.getLogger(__name__)

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

#: Many carts saved in one statement (a host's saves gathered while its previous one
#: committed), each only while its fence is still ours: the users written come back, and a
#: user missing from them was claimed by another host. Owner rows are locked in one order,
#: so two such statements never deadlock.
_SAVE_MANY_FENCED = """
WITH owned AS (
    SELECT s.user_id, s.state
    FROM unnest($1::text[], $2::jsonb[], $3::bigint[]) AS s (user_id, state, epoch)
    JOIN entity_owners o ON o.kind = 'cart' AND o.key = s.user_id AND o.epoch = s.epoch
    ORDER BY s.user_id
    FOR SHARE OF o
)
INSERT INTO carts (user_id, state) SELECT user_id, state FROM owned
ON CONFLICT (user_id) DO UPDATE SET state = EXCLUDED.state, updated_at = now()
RETURNING user_id
"""


class CartSave(NamedTuple):
    """One cart's state to save while its owner epoch is still ``epoch``."""

    user_id: str
    state: dict[str, Any]
    epoch: int


#: How a cart's save joins its host's group commit (a Batcher's ``submit``): True once
#: saved, False if another host owns the cart now.
SubmitSave = Callable[[CartSave], Awaitable[bool]]


class CartStore:
    """``fence``: the cart actor's claim on the cart (storage/owners.py); set, :meth:`save`
    checks it in its transaction and raises :class:`~liveshop.storage.owners.Fenced`
    (nothing written) once another host claimed the cart."""

    def __init__(
        self, pool: asyncpg.Pool, *, fence: Fence | None = None, submit: SubmitSave | None = None
    ) -> None:
        self.pool = pool
        self.fence = fence
        #: How a fenced save is written: the host's group commit of cart saves
        #: (``save_many``) when the cart is hosted, else a statement of its own.
        self.submit = submit or self._save_alone

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
            # The common change: one fenced statement, shared with the host's other carts
            # saving now when there is a group commit (one round trip and one commit for
            # them all, not one each).
            if not await self.submit(CartSave(cart.user_id, cart.to_state(), self.fence.epoch)):
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

    async def save_many(self, saves: list[CartSave]) -> list[bool | LiveshopError]:
        """Carts of several users in one statement and one commit (a host's group commit of
        cart saves): per save, True once saved, False if another host owns the cart now, or
        the error that fails that save alone. Data PostgreSQL refuses fails only the cart it
        belongs to: the saves are then written one at a time."""
        users = [s.user_id for s in saves]
        if len(set(users)) < len(users):  # never, while a cart saves one change at a time
            return [await self._save_one(s) for s in saves]
        try:
            rows = await self.pool.fetch(
                _SAVE_MANY_FENCED, users, [s.state for s in saves], [s.epoch for s in saves]
            )
        except REFUSED_DATA_ERRORS as exc:
            if len(saves) == 1:
                return [_refused(saves[0], exc)]
            return [await self._save_one(s) for s in saves]
        except TRANSIENT_DB_ERRORS as exc:
            log.warning("cannot save %d carts: %s", len(saves), exc)
            return [Unavailable("could not save the cart, try again")] * len(saves)
        saved = {r["user_id"] for r in rows}
        return [s.user_id in saved for s in saves]

    async def _save_alone(self, save: CartSave) -> bool:
        """One cart in a statement of its own: False if another host owns it now."""
        return await self.pool.fetchval(_SAVE_FENCED, *save) is not None

    async def _save_one(self, save: CartSave) -> bool | LiveshopError:
        try:
            return await self._save_alone(save)
        except REFUSED_DATA_ERRORS as exc:
            return _refused(save, exc)
        except TRANSIENT_DB_ERRORS as exc:
            log.warning("cannot save the cart of %s: %s", save.user_id, exc)
            return Unavailable("could not save the cart, try again")

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


def _refused(save: CartSave, exc: BaseException) -> LiveshopError:
    log.error("PostgreSQL refused the cart of %s: %r", save.user_id, exc)
    return InvalidRequest("this cart change cannot be stored")


async def add_event(
    conn: asyncpg.Connection | asyncpg.Pool, kind: str, user_id: str, data: dict[str, Any]
) -> None:
    await conn.execute(
        "INSERT INTO commerce_events (kind, user_id, data) VALUES ($1, $2, $3)",
        kind,
        user_id,
        json.loads(json.dumps(data)),
    )
