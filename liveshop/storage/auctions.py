"""Auctions in PostgreSQL: terms, accepted bids, settlement.

Guarantees: a batch of bids is written in one transaction with the auction's current price,
leader and end, before any bidder is answered; a bidder's key is on at most one bid; the end
of an auction (the result, and for a sale the winner's order and its line on the SKU's hold)
commits in one transaction, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from liveshop.commerce.auction import AuctionTerms, BidPlaced
from liveshop.commerce.order import NewLine, NewOrder
from liveshop.errors import AuctionNotFound
from liveshop.storage.orders import insert_orders
from liveshop.storage.owners import Fence, check_fence, fenced_execute


@dataclass
class StoredAuction:
    terms: AuctionTerms
    room_id: str
    sku: str
    reservation_id: str
    bids: list[BidPlaced]
    ended: bool
    order_id: str | None
    stock_done: bool
    payment_done: bool


class AuctionStore:
    """``fence``: the auction actor's claim on the auction (storage/owners.py); set, the
    actor's writes (:meth:`save_bids`, :meth:`settle`, :meth:`mark`) check it in their
    transaction and raise :class:`~liveshop.storage.owners.Fenced` (nothing written) once
    another host claimed the auction."""

    def __init__(self, pool: asyncpg.Pool, *, fence: Fence | None = None) -> None:
        self.pool = pool
        self.fence = fence

    async def create(
        self, terms: AuctionTerms, *, room_id: str, sku: str, reservation_id: str, by: str
    ) -> None:
        await self.pool.execute(
            "INSERT INTO auctions (id, room_id, sku, reservation_id, currency, start_price, "
            "min_increment, reserve_price, starts_at, ends_at, mode, extend_window, created_by, "
            "current_ends_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
            "$10)",
            terms.auction_id, room_id, sku, reservation_id, terms.currency, terms.start_price,
            terms.min_increment, terms.reserve_price, terms.starts_at, terms.ends_at,
            terms.mode, terms.extend_window, by,
        )  # fmt: skip

    async def unsettled(self) -> list[str]:
        """Auctions still running or not settled to the end (result, unit, payment): a host
        brings those placed on it back after a restart, so their clocks run."""
        rows = await self.pool.fetch(
            "SELECT id FROM auctions WHERE NOT (stock_done AND payment_done)"
        )
        return [r["id"] for r in rows]

    async def exists(self, auction_id: str) -> bool:
        return bool(await self.pool.fetchval("SELECT 1 FROM auctions WHERE id = $1", auction_id))

    async def load(self, auction_id: str) -> StoredAuction:
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            row = await conn.fetchrow("SELECT * FROM auctions WHERE id = $1", auction_id)
            if row is None:
                raise AuctionNotFound(f"no auction {auction_id!r}")
            bids = await conn.fetch(
                "SELECT bidder, amount, max_amount, idem_key, at FROM auction_bids "
                "WHERE auction_id = $1 ORDER BY id",
                auction_id,
            )
        terms = AuctionTerms(
            auction_id=row["id"], start_price=row["start_price"],
            min_increment=row["min_increment"], starts_at=row["starts_at"],
            ends_at=row["ends_at"], currency=row["currency"].strip(),
            reserve_price=row["reserve_price"], mode=row["mode"],
            extend_window=row["extend_window"],
        )  # fmt: skip
        return StoredAuction(
            terms=terms,
            room_id=row["room_id"],
            sku=row["sku"],
            reservation_id=row["reservation_id"],
            bids=[
                BidPlaced(b["bidder"], b["amount"], b["max_amount"], b["idem_key"], b["at"])
                for b in bids
            ],
            ended=row["ended"],
            order_id=row["order_id"],
            stock_done=row["stock_done"],
            payment_done=row["payment_done"],
        )

    async def save_bids(self, auction_id: str, bids: list[BidPlaced], view: dict[str, Any]) -> None:
        """The bids and the price, leader and end they led to (``view``), in one go."""
        async with self.pool.acquire() as conn, conn.transaction():
            await check_fence(self.fence, conn)
            await conn.execute(
                "INSERT INTO auction_bids (auction_id, bidder, amount, max_amount, idem_key, at) "
                "SELECT $1, b, a, m, k, t FROM unnest($2::text[], $3::bigint[], $4::bigint[], "
                "$5::text[], $6::float8[]) AS u(b, a, m, k, t)",
                auction_id,
                [b.bidder for b in bids],
                [b.amount for b in bids],
                [b.max_amount for b in bids],
                [b.key for b in bids],
                [b.at for b in bids],
            )
            await conn.execute(
                "UPDATE auctions SET price = $2, leader = $3, current_ends_at = $4 WHERE id = $1",
                auction_id,
                view["price"],
                view["leader"],
                view["ends_at"],
            )

    async def settle(
        self, auction_id: str, result: dict[str, Any], *, room_id: str, sku: str,
        reservation_id: str, product_id: str, at: float,
    ) -> str | None:  # fmt: skip
        """End the auction; for a sale, place the winner's order (pending) on the held unit.
        Returns the order id (None when nothing was sold). Once: a second call returns the
        first one's order."""
        async with self.pool.acquire() as conn, conn.transaction():
            await check_fence(self.fence, conn)
            row = await conn.fetchrow(
                "SELECT ended, order_id, currency FROM auctions WHERE id = $1 FOR UPDATE",
                auction_id,
            )
            if row is None:
                raise AuctionNotFound(f"no auction {auction_id!r}")
            if row["ended"]:
                order_id: str | None = row["order_id"]
                return order_id
            order_id = None
            if result["winner"] is not None:
                order_id = f"{auction_id}~o"
                line = NewLine(sku, product_id, 1, result["price"], reservation_id=reservation_id)
                await insert_orders(conn, [NewOrder(
                    order_id, result["winner"], row["currency"], (line,), "auction", auction_id,
                    at, room_id=room_id,
                )])  # fmt: skip
            await conn.execute(
                "UPDATE auctions SET ended = true, winner = $2, result = $3, order_id = $4, "
                "price = $5 WHERE id = $1",
                auction_id, result["winner"], result["reason"], order_id, result["price"],
            )  # fmt: skip
            return order_id

    async def mark(
        self, auction_id: str, *, stock_done: bool = False, payment_done: bool = False
    ) -> None:
        sql = (
            "UPDATE auctions SET stock_done = stock_done OR $2, "
            "payment_done = payment_done OR $3 WHERE id = $1"
        )
        await fenced_execute(self.pool, self.fence, sql, auction_id, stock_done, payment_done)

    async def bids(self, auction_id: str, *, limit: int, after: int | None) -> list[dict[str, Any]]:
        """Every accepted bid as placed (proxy answers are in the live view's history)."""
        rows = await self.pool.fetch(
            "SELECT id, bidder, amount, max_amount, at FROM auction_bids WHERE auction_id = $1 "
            "AND ($2::bigint IS NULL OR id > $2) ORDER BY id LIMIT $3",
            auction_id,
            after,
            limit,
        )
        return [
            {"id": r["id"], "bidder": r["bidder"], "amount": r["amount"], "at": r["at"]}
            for r in rows
        ]
