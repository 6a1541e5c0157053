"""Coins, the gift catalog and gift sends in PostgreSQL.

Guarantees: a balance never goes below zero (a conditional update plus a CHECK constraint);
a gift send is idempotent per sender and key with payment-API semantics (same key and same
request: the stored receipt; same key, different request: ``idempotency_mismatch``); the
debit, the credit, both ledger rows and the send record commit together or not at all.
"""

from __future__ import annotations

import hashlib
import json

import asyncpg

from liveshop.errors import GiftNotFound, IdempotencyMismatch, InsufficientCoins, InvalidRequest
from liveshop.rooms.gift import Gift, GiftReceipt


def _request_hash(room_id: str, recipient_id: str, gift_id: str, quantity: int) -> str:
    body = json.dumps([room_id, recipient_id, gift_id, quantity])
    return hashlib.sha256(body.encode()).hexdigest()


class WalletStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # -- catalog -------------------------------------------------------------------------

    async def create_gift(self, gift: Gift) -> Gift:
        await self.pool.execute(
            "INSERT INTO gifts (id, name, price_coins, image_url) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, "
            "price_coins = EXCLUDED.price_coins, image_url = EXCLUDED.image_url",
            gift.gift_id,
            gift.name,
            gift.price_coins,
            gift.image_url,
        )
        return gift

    async def gifts(self) -> list[Gift]:
        rows = await self.pool.fetch("SELECT * FROM gifts ORDER BY price_coins, id")
        return [Gift(r["id"], r["name"], r["price_coins"], r["image_url"]) for r in rows]

    # -- balances ------------------------------------------------------------------------

    async def balance(self, user_id: str) -> int:
        coins = await self.pool.fetchval("SELECT coins FROM wallets WHERE user_id = $1", user_id)
        return int(coins or 0)

    async def credit(self, user_id: str, coins: int, *, ref: str, reason: str = "top_up") -> int:
        """Add coins once per (user, reason, ref); return the balance."""
        if coins <= 0:
            raise InvalidRequest("coins must be positive")
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO wallet_ledger (user_id, delta, reason, ref) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (user_id, reason, ref) DO NOTHING RETURNING id",
                user_id,
                coins,
                reason,
                ref,
            )
            if inserted is None:  # a replay: nothing changes
                return int(
                    await conn.fetchval(
                        "SELECT coalesce((SELECT coins FROM wallets WHERE user_id = $1), 0)",
                        user_id,
                    )
                )
            balance: int = await conn.fetchval(
                "INSERT INTO wallets (user_id, coins) VALUES ($1, $2) ON CONFLICT (user_id) "
                "DO UPDATE SET coins = wallets.coins + $2, updated_at = now() RETURNING coins",
                user_id,
                coins,
            )
            return balance

    # -- gifts ---------------------------------------------------------------------------

    async def send_gift(
        self,
        *,
        key: str,
        room_id: str,
        sender_id: str,
        sender_name: str,
        recipient_id: str,
        gift_id: str,
        quantity: int,
    ) -> GiftReceipt:
        request_hash = _request_hash(room_id, recipient_id, gift_id, quantity)
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                existing = await self._existing(conn, sender_id, key, request_hash)
                if existing is not None:
                    return existing
                gift = await conn.fetchrow("SELECT * FROM gifts WHERE id = $1", gift_id)
                if gift is None:
                    raise GiftNotFound(f"no gift {gift_id!r}")
                coins = gift["price_coins"] * quantity
                balance = await conn.fetchval(
                    "UPDATE wallets SET coins = coins - $2, updated_at = now() "
                    "WHERE user_id = $1 AND coins >= $2 RETURNING coins",
                    sender_id,
                    coins,
                )
                if balance is None:
                    have = await conn.fetchval(
                        "SELECT coalesce((SELECT coins FROM wallets WHERE user_id = $1), 0)",
                        sender_id,
                    )
                    raise InsufficientCoins(
                        f"this gift costs {coins} coins; you have {have}",
                        details={"needed": coins, "balance": have},
                    )
                await conn.execute(
                    "INSERT INTO wallets (user_id, coins) VALUES ($1, $2) ON CONFLICT (user_id) "
                    "DO UPDATE SET coins = wallets.coins + $2, updated_at = now()",
                    recipient_id,
                    coins,
                )
                send_id = await conn.fetchval(
                    "INSERT INTO gift_sends (sender_id, idem_key, request_hash, room_id, "
                    "recipient_id, gift_id, quantity, coins, sender_name) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                    sender_id, key, request_hash, room_id, recipient_id, gift_id, quantity,
                    coins, sender_name,
                )  # fmt: skip
                await conn.executemany(
                    "INSERT INTO wallet_ledger (user_id, delta, reason, ref) "
                    "VALUES ($1, $2, $3, $4)",
                    [
                        (sender_id, -coins, "gift_sent", str(send_id)),
                        (recipient_id, coins, "gift_received", str(send_id)),
                    ],
                )
                return GiftReceipt(
                    send_id, sender_id, sender_name, recipient_id, gift_id, gift["name"],
                    quantity, coins, balance,
                )  # fmt: skip
        except asyncpg.UniqueViolationError:
            # The same key raced itself: the other attempt committed first; answer as it did.
            async with self.pool.acquire() as conn:
                existing = await self._existing(conn, sender_id, key, request_hash)
            assert existing is not None
            return existing

    async def _existing(
        self, conn: asyncpg.Connection, sender_id: str, key: str, request_hash: str
    ) -> GiftReceipt | None:
        row = await conn.fetchrow(
            "SELECT s.*, g.name AS gift_name, "
            "coalesce((SELECT coins FROM wallets WHERE user_id = s.sender_id), 0) AS balance "
            "FROM gift_sends s JOIN gifts g ON g.id = s.gift_id "
            "WHERE s.sender_id = $1 AND s.idem_key = $2",
            sender_id,
            key,
        )
        if row is None:
            return None
        if row["request_hash"] != request_hash:
            raise IdempotencyMismatch("this idempotency key was used for a different gift")
        return _receipt(row, replayed=True)

    async def unpublished(self, room_id: str) -> list[GiftReceipt]:
        """Gifts paid for whose room event was never committed (the actor died between)."""
        rows = await self.pool.fetch(
            "SELECT s.*, g.name AS gift_name, 0 AS balance FROM gift_sends s "
            "JOIN gifts g ON g.id = s.gift_id "
            "WHERE s.room_id = $1 AND s.event_offset IS NULL ORDER BY s.id",
            room_id,
        )
        return [_receipt(r, replayed=False) for r in rows]


def _receipt(row: asyncpg.Record, *, replayed: bool) -> GiftReceipt:
    return GiftReceipt(
        send_id=row["id"],
        sender_id=row["sender_id"],
        sender_name=row["sender_name"],
        recipient_id=row["recipient_id"],
        gift_id=row["gift_id"],
        gift_name=row["gift_name"],
        quantity=row["quantity"],
        coins=row["coins"],
        balance=int(row["balance"]),
        replayed=replayed,
        event_offset=row["event_offset"],
    )
