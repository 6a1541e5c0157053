"""SKUs, their ledger, holds and the orders buys place, in PostgreSQL.

Guarantees: :meth:`SkuStore.save` writes one batch of decisions (the SKU's new row, its
ledger entries, new and closed holds, new orders and their lines) in one transaction, so a
SKU actor that answers after ``save`` returns never acknowledges an uncommitted decision; a
buyer's idempotency key is on at most one order per SKU (a unique constraint);
:meth:`SkuStore.load` rebuilds exactly what the actor needs after a restart.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from liveshop.commerce.inventory import (
    ANSWER_TTL,
    Changes,
    OrderPlaced,
    Reservation,
    Stored,
    buy_fingerprint,
    reserve_fingerprint,
)
from liveshop.commerce.order import NewLine, NewOrder
from liveshop.commerce.product import Product
from liveshop.errors import Conflict, NotFound, SkuNotFound
from liveshop.storage.orders import insert_orders
from liveshop.storage.owners import Fence, fenced_execute


class ReturnAlreadyApplied(Exception):
    """A bug or a zombie actor; the batch is rolled back and the actor reloads."""


@dataclass
class Turn:
    """Orders pipelined batches: this one locks the SKU row after ``before`` did, and sets
    ``mine`` once it holds the lock (or gave up)."""

    before: asyncio.Event | None = None
    mine: asyncio.Event = field(default_factory=asyncio.Event)


class StaleVersion(Exception):
    """The batch before this one did not commit (or another incarnation wrote the SKU):
    roll back; the actor reloads."""


def buy_scope(sku: str) -> str:
    """The idempotency scope of a SKU's direct buys on ``orders``."""
    return "sku:" + sku


def _epoch(column: str) -> str:
    return f"extract(epoch FROM {column})::float8 AS {column.split('.')[-1]}"


#: Locks the SKU row for a batch and reads its version (see ``SkuStore._save``).
_LOCK_SKU = "SELECT version FROM skus WHERE id = $1 FOR NO KEY UPDATE"
#: The same, and the SKU's owner epoch in the same round trip, share-locked until the batch
#: ends (as :meth:`Fence.check` does) so no claim overtakes it. A scalar subquery, because
#: PostgreSQL refuses FOR SHARE on the nullable side of an outer join; a missing owner row
#: reads NULL (never an epoch: fenced).
_LOCK_SKU_FENCED = (
    "SELECT version, (SELECT epoch FROM entity_owners WHERE kind = 'sku' AND key = $1 "
    "FOR SHARE) AS owner_epoch FROM skus WHERE id = $1 FOR NO KEY UPDATE"
)


class SkuStore:
    """``fence``: the SKU actor's claim on the SKU (storage/owners.py); set, every write the
    actor makes of the SKU's state checks it in its own transaction, and raises
    :class:`Fenced` (nothing written) once another host claimed the SKU."""

    def __init__(self, pool: asyncpg.Pool, *, fence: Fence | None = None) -> None:
        self.pool = pool
        self.fence = fence

    async def create(
        self,
        sku: str,
        product: Product,
        *,
        on_hand: int,
        limit_per_buyer: int | None,
        now: float,
    ) -> None:
        """A new SKU of ``product`` (its price copied) with ``on_hand`` units."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "INSERT INTO skus (id, product_id, price_minor, currency, on_hand, reserved, "
                    "sold, limit_per_buyer) VALUES ($1, $2, $3, $4, $5, 0, 0, $6)",
                    sku, product.product_id, product.price_minor, product.currency, on_hand,
                    limit_per_buyer,
                )  # fmt: skip
                if on_hand:
                    await conn.execute(
                        "INSERT INTO inventory_ledger (sku, kind, on_hand_delta, reserved_delta, "
                        "sold_delta, ref, at) VALUES ($1, 'restock', $2, 0, 0, 'initial', "
                        "to_timestamp($3))",
                        sku,
                        on_hand,
                        now,
                    )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"SKU {sku!r} already exists") from None

    async def exists(self, sku: str) -> bool:
        return bool(await self.pool.fetchval("SELECT 1 FROM skus WHERE id = $1", sku))

    async def ids(self, *, product_id: str | None, limit: int, after: str | None) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT id FROM skus WHERE ($1::text IS NULL OR product_id = $1) "
            "AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3",
            product_id,
            after,
            limit,
        )
        return [r["id"] for r in rows]

    async def load(self, sku: str, *, now: float) -> Stored:
        """The SKU's row, open holds, answers of the last day's keys and per-buyer units."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            row = await conn.fetchrow("SELECT * FROM skus WHERE id = $1", sku)
            if row is None:
                raise NotFound(f"no SKU {sku!r}")
            deal = row["deal"]
            state = {
                "sku": row["id"],
                "product_id": row["product_id"],
                "price_minor": row["price_minor"],
                "currency": row["currency"].strip(),
                "on_hand": row["on_hand"],
                "sold": row["sold"],
                "limit_per_buyer": row["limit_per_buyer"],
                "deal": deal,
                "deal_sold": row["deal_sold"],
                "next_seq": row["next_seq"],
                "version": row["version"],
            }
            since = now - ANSWER_TTL
            holds = await conn.fetch(
                "SELECT id, buyer_id, idem_key, quantity, ttl, price_minor, deal_id, room_id, "
                f"status, {_epoch('created_at')}, {_epoch('expires_at')} "
                "FROM sku_reservations WHERE sku = $1 "
                "AND (status = 'held' OR created_at > to_timestamp($2))",
                sku,
                since,
            )
            orders = await conn.fetch(
                "SELECT o.id, o.buyer_id, o.idem_key, o.room_id, o.currency, "
                f"{_epoch('o.created_at')}, l.product_id, l.quantity, l.price_minor, l.deal_id "
                "FROM orders o JOIN order_lines l ON l.order_id = o.id AND l.line = 1 "
                "WHERE o.idem_scope = $1 AND o.created_at > to_timestamp($2)",
                buy_scope(sku),
                since,
            )
            # Bought: direct buys' lines and committed holds, less what came back.
            units = await conn.fetch(
                "SELECT buyer_id, deal_id, sum(quantity)::bigint AS units FROM ("
                "  SELECT o.buyer_id, l.deal_id, l.quantity FROM order_lines l "
                "  JOIN orders o ON o.id = l.order_id "
                "  WHERE l.sku = $1 AND l.reservation_id IS NULL "
                "  UNION ALL SELECT buyer_id, deal_id, quantity FROM sku_reservations "
                "  WHERE sku = $1 AND status = 'committed' "
                "  UNION ALL SELECT buyer_id, deal_id, -quantity FROM stock_returns "
                "  WHERE sku = $1 AND applied_at IS NOT NULL"
                ") bought GROUP BY buyer_id, deal_id",
                sku,
            )
        stored = Stored(state=state)
        for h in holds:
            hold = Reservation(
                h["id"], h["buyer_id"], h["quantity"], h["expires_at"],
                price_minor=h["price_minor"], deal_id=h["deal_id"], key=h["idem_key"],
                ttl=h["ttl"], room_id=h["room_id"],
            )  # fmt: skip
            if h["status"] == "held":
                stored.holds.append(hold)
            fingerprint = reserve_fingerprint(hold.quantity, hold.ttl, hold.room_id)
            stored.answers.append(
                (hold.buyer_id, hold.key, fingerprint, hold.answer(), h["created_at"])
            )
        for o in orders:
            order = OrderPlaced(
                order_id=o["id"], buyer_id=o["buyer_id"], key=o["idem_key"], sku=sku,
                product_id=o["product_id"], quantity=o["quantity"], price_minor=o["price_minor"],
                currency=o["currency"].strip(), deal_id=o["deal_id"], room_id=o["room_id"],
                at=o["created_at"],
            )  # fmt: skip
            fingerprint = buy_fingerprint(order.quantity, order.room_id)
            stored.answers.append(
                (order.buyer_id, order.key, fingerprint, order.answer(), order.at)
            )
        deal_id = deal["deal_id"] if deal else None
        for u in units:
            buyer, count = u["buyer_id"], int(u["units"])
            stored.bought[buyer] = stored.bought.get(buyer, 0) + count
            if deal_id is not None and u["deal_id"] == deal_id:
                stored.deal_bought[buyer] = stored.deal_bought.get(buyer, 0) + count
        # Buyers whose units all came back hold nothing.
        stored.bought = {b: n for b, n in stored.bought.items() if n}
        stored.deal_bought = {b: n for b, n in stored.deal_bought.items() if n}
        return stored

    async def save(
        self,
        row: dict[str, object],
        changes: Changes,
        *,
        version: tuple[int, int],
        turn: Turn | None = None,
    ) -> None:
        """One batch of decisions, all or nothing; ``version`` is (the version this batch
        builds on, the one it sets): it commits only after, and only if, the batch before it
        did (see 0008_sku_version.sql). With several batches in flight, ``turn`` orders
        their locks of the SKU row (each takes it after the one before took it)."""
        turn = turn or Turn()
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await self._save(conn, row, changes, version, turn, fence=self.fence)
        finally:
            turn.mine.set()  # whatever happened, the next batch may go and find out

    @staticmethod
    async def _save(
        conn: asyncpg.Connection, row: dict[str, object], changes: Changes,
        version: tuple[int, int], turn: Turn, *, fence: Fence | None = None,
    ) -> None:  # fmt: skip
        sku = row["sku"]

        async def chain() -> None:
            if turn.before is not None:
                await turn.before.wait()
            # Waits while the previous batch's transaction holds the row, then reads the
            # latest committed version; fails when that one rolled back. NO KEY: the foreign
            # keys of the rows this batch inserts take KEY SHARE on the same row, and must
            # not deadlock with the previous batch's lock. Fenced, the same round trip reads
            # the owner's epoch (before anything this batch wrote can commit).
            locked = await conn.fetchrow(_LOCK_SKU if fence is None else _LOCK_SKU_FENCED, sku)
            turn.mine.set()
            if fence is not None:
                fence.verify(None if locked is None else locked["owner_epoch"])
            current = None if locked is None else locked["version"]
            if current != version[0]:
                raise StaleVersion(f"SKU {sku}: at version {current}, not {version[0]}")
            await conn.execute(
                "UPDATE skus SET price_minor = $2, on_hand = $3, reserved = $4, sold = $5, "
                "limit_per_buyer = $6, deal = $7, deal_sold = $8, next_seq = $9, "
                "version = $10, updated_at = now() WHERE id = $1",
                sku, row["price_minor"], row["on_hand"], row["reserved"], row["sold"],
                row["limit_per_buyer"], row["deal"], row["deal_sold"], row["next_seq"],
                version[1],
            )  # fmt: skip

        # Rows this batch updates may have been inserted by the previous batch: wait for it
        # first. A batch that only inserts writes its rows in parallel and waits at the end.
        dependent = bool(changes.closed or changes.returned)
        if dependent:
            await chain()
        if changes.ledger:
            ledger = changes.ledger
            await conn.execute(
                "INSERT INTO inventory_ledger (sku, kind, on_hand_delta, reserved_delta, "
                "sold_delta, ref, at) SELECT $1, k, o, r, s, ref, to_timestamp(at) "
                "FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], "
                "$7::float8[]) AS u(k, o, r, s, ref, at)",
                sku,
                [e.kind for e in ledger],
                [e.on_hand for e in ledger],
                [e.reserved for e in ledger],
                [e.sold for e in ledger],
                [e.ref for e in ledger],
                [e.at for e in ledger],
            )
        if changes.orders:
            scope = buy_scope(str(sku))
            await insert_orders(conn, [
                NewOrder(o.order_id, o.buyer_id, o.currency,
                         (NewLine(o.sku, o.product_id, o.quantity, o.price_minor, o.deal_id),),
                         scope, o.key, o.at, room_id=o.room_id)
                for o in changes.orders
            ])  # fmt: skip
        if changes.holds:
            holds = changes.holds
            await conn.execute(
                "INSERT INTO sku_reservations (id, sku, buyer_id, idem_key, quantity, ttl, "
                "price_minor, deal_id, room_id, created_at, expires_at) "
                "SELECT id, $1, b, k, q, ttl, p, d, r, to_timestamp(e - ttl), to_timestamp(e) "
                "FROM unnest($2::text[], $3::text[], $4::text[], $5::integer[], $6::float8[], "
                "$7::bigint[], $8::text[], $9::text[], $10::float8[]) "
                "AS u(id, b, k, q, ttl, p, d, r, e)",
                sku,
                [h.rid for h in holds],
                [h.buyer_id for h in holds],
                [h.key for h in holds],
                [h.quantity for h in holds],
                [h.ttl for h in holds],
                [h.price_minor for h in holds],
                [h.deal_id for h in holds],
                [h.room_id for h in holds],
                [h.expires_at for h in holds],
            )
        if changes.returned:
            marked = await conn.fetch(
                "UPDATE stock_returns SET applied_at = now() WHERE sku = $1 AND ref = ANY($2) "
                "AND applied_at IS NULL RETURNING ref",
                sku,
                changes.returned,
            )
            if len(marked) != len(set(changes.returned)):
                # Another incarnation applied one already: roll the whole batch back.
                raise ReturnAlreadyApplied(f"SKU {sku}: a stock return was applied twice")
        if changes.closed:
            closed = changes.closed
            await conn.execute(
                "UPDATE sku_reservations r SET status = u.s, order_id = u.o, "
                "closed_at = to_timestamp(u.at) FROM unnest($1::text[], $2::text[], $3::text[], "
                "$4::float8[]) AS u(id, s, o, at) WHERE r.id = u.id",
                [c.rid for c in closed],
                [c.status for c in closed],
                [c.order_id for c in closed],
                [c.at for c in closed],
            )
        if not dependent:
            await chain()

    async def audit(self, sku: str) -> dict[str, Any]:
        """Check a SKU's books (after an incident, or a drill): the ledger explains the row,
        nothing is below zero, stock taken in is on hand or sold, every unit sold is on an
        order line or a committed hold, no buyer's key is on two orders. ``problems`` lists
        what does not hold; empty means the books are sound."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            row = await conn.fetchrow("SELECT on_hand, reserved, sold FROM skus WHERE id = $1", sku)
            if row is None:
                raise SkuNotFound(f"no SKU {sku!r}")
            ledger = await conn.fetchrow(
                "SELECT coalesce(sum(on_hand_delta), 0)::bigint AS on_hand, "
                "coalesce(sum(reserved_delta), 0)::bigint AS reserved, "
                "coalesce(sum(sold_delta), 0)::bigint AS sold, "
                "coalesce(sum(on_hand_delta) FILTER (WHERE kind IN ('restock', 'adjust')), 0)"
                "::bigint AS stock_in FROM inventory_ledger WHERE sku = $1",
                sku,
            )
            on_orders = await conn.fetchval(
                "SELECT coalesce(sum(quantity), 0)::bigint FROM order_lines "
                "WHERE sku = $1 AND reservation_id IS NULL",
                sku,
            )
            returned = await conn.fetchval(
                "SELECT coalesce(sum(quantity), 0)::bigint FROM stock_returns "
                "WHERE sku = $1 AND applied_at IS NOT NULL",
                sku,
            )
            committed = await conn.fetchval(
                "SELECT coalesce(sum(quantity), 0)::bigint FROM sku_reservations "
                "WHERE sku = $1 AND status = 'committed'",
                sku,
            )
            held = await conn.fetchval(
                "SELECT coalesce(sum(quantity), 0)::bigint FROM sku_reservations "
                "WHERE sku = $1 AND status = 'held'",
                sku,
            )
            doubled = await conn.fetchval(
                "SELECT count(*) FROM (SELECT 1 FROM orders WHERE idem_scope = $1 "
                "GROUP BY buyer_id, idem_key HAVING count(*) > 1) d",
                buy_scope(sku),
            )
        counts = dict(row)
        available = counts["on_hand"] - counts["reserved"]
        problems: list[str] = []
        if {k: ledger[k] for k in counts} != counts:
            problems.append(f"the ledger sums to {dict(ledger)}, the SKU says {counts}")
        if min(available, *counts.values()) < 0:
            problems.append(f"stock below zero: {counts}")
        if counts["sold"] + available + counts["reserved"] != ledger["stock_in"]:
            problems.append(f"sold + available + reserved != {ledger['stock_in']} units taken in")
        if on_orders + committed - returned != counts["sold"]:
            problems.append(
                f"{on_orders} units on orders + {committed} committed holds - {returned} "
                f"returned != {counts['sold']} sold"
            )
        if held != counts["reserved"]:
            problems.append(f"{held} units in open holds != {counts['reserved']} reserved")
        if doubled:
            problems.append(f"{doubled} idempotency keys on two orders")
        return {
            "sku": sku,
            **counts,
            "available": available,
            "stock_in": ledger["stock_in"],
            "on_orders": on_orders,
            "returned": returned,
            "problems": problems,
        }

    async def returns_due(self, sku: str) -> list[tuple[str, str, int, str | None]]:
        """Stock returns not yet applied: ``(ref, buyer_id, quantity, deal_id)``."""
        rows = await self.pool.fetch(
            "SELECT ref, buyer_id, quantity, deal_id FROM stock_returns "
            "WHERE sku = $1 AND applied_at IS NULL ORDER BY created_at",
            sku,
        )
        return [(r["ref"], r["buyer_id"], r["quantity"], r["deal_id"]) for r in rows]

    async def timed(self, now: float) -> list[str]:
        """SKUs whose clock has work: open holds to lapse, or a deal not over yet. A host
        brings those placed on it back after a restart, without waiting for a buyer."""
        rows = await self.pool.fetch(
            "SELECT id FROM skus WHERE reserved > 0 "
            "OR (deal IS NOT NULL AND (deal->>'ends_at')::float8 > $1)",
            now,
        )
        return [r["id"] for r in rows]

    async def returns_waiting(self, older_than: float, *, limit: int = 100) -> list[str]:
        """SKUs with a stock return not applied ``older_than`` seconds after it was made:
        its poke was lost (a SKU does not poll for them)."""
        rows = await self.pool.fetch(
            "SELECT DISTINCT sku FROM stock_returns WHERE applied_at IS NULL "
            "AND created_at < now() - make_interval(secs => $1) LIMIT $2",
            older_than, limit,
        )  # fmt: skip
        return [r["sku"] for r in rows]

    # -- rooms that pin the SKU's product -----------------------------------------------------

    async def watchers(self, sku: str) -> list[str]:
        rows = await self.pool.fetch("SELECT room_id FROM sku_watchers WHERE sku = $1", sku)
        return [r["room_id"] for r in rows]

    async def watch(self, sku: str, room_id: str) -> None:
        await fenced_execute(
            self.pool,
            self.fence,
            "INSERT INTO sku_watchers (sku, room_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            sku,
            room_id,
        )

    async def unwatch(self, sku: str, room_id: str) -> None:
        await fenced_execute(
            self.pool,
            self.fence,
            "DELETE FROM sku_watchers WHERE sku = $1 AND room_id = $2",
            sku,
            room_id,
        )
