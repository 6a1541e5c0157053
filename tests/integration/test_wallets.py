"""Coins and gifts against real PostgreSQL: never negative, idempotent, all-or-nothing."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liveshop.errors import GiftNotFound, IdempotencyMismatch, InsufficientCoins
from liveshop.rooms.gift import Gift
from liveshop.rooms.room import RoomInfo
from liveshop.storage.migrate import migrate
from liveshop.storage.pool import create_pool
from liveshop.storage.rooms import RoomStore
from liveshop.storage.wallets import WalletStore

ROSE = Gift("rose", "Rose", 10)


async def _setup(pool: asyncpg.Pool) -> WalletStore:
    await pool.execute("TRUNCATE gift_sends, wallet_ledger, wallets, gifts CASCADE")
    await RoomStore(pool).create_room(RoomInfo("r1", "One", host_id="host"), epoch="e")
    wallets = WalletStore(pool)
    await wallets.create_gift(ROSE)
    return wallets


def _send(wallets: WalletStore, key: str, quantity: int = 1, gift: str = "rose") -> object:
    return wallets.send_gift(
        key=key, room_id="r1", sender_id="ann", sender_name="Ann", recipient_id="host",
        gift_id=gift, quantity=quantity,
    )  # fmt: skip


async def test_credit_is_idempotent_per_ref(pool: asyncpg.Pool) -> None:
    wallets = await _setup(pool)
    assert await wallets.credit("ann", 100, ref="order-1") == 100
    assert await wallets.credit("ann", 100, ref="order-1") == 100
    assert await wallets.credit("ann", 5, ref="order-2") == 105
    assert await wallets.balance("nobody") == 0


async def test_a_gift_moves_coins_once_and_replays_the_same_receipt(pool: asyncpg.Pool) -> None:
    wallets = await _setup(pool)
    await wallets.credit("ann", 100, ref="top-up")
    receipt = await _send(wallets, "k1", quantity=3)  # type: ignore[misc]
    assert (receipt.coins, receipt.balance, receipt.replayed) == (30, 70, False)
    assert await wallets.balance("host") == 30
    again = await _send(wallets, "k1", quantity=3)  # type: ignore[misc]
    assert again.replayed and again.send_id == receipt.send_id and again.balance == 70
    with pytest.raises(IdempotencyMismatch):
        await _send(wallets, "k1", quantity=4)
    with pytest.raises(GiftNotFound):
        await _send(wallets, "k2", gift="diamond")
    with pytest.raises(InsufficientCoins) as info:
        await _send(wallets, "k3", quantity=8)
    assert info.value.details == {"needed": 80, "balance": 70}
    assert await wallets.balance("ann") == 70  # the refused sends changed nothing
    ledger = await pool.fetch("SELECT user_id, delta FROM wallet_ledger ORDER BY id")
    assert [(r["user_id"], r["delta"]) for r in ledger] == [
        ("ann", 100), ("ann", -30), ("host", 30),
    ]  # fmt: skip
    assert [r.send_id for r in await wallets.unpublished("r1")] == [receipt.send_id]
    await RoomStore(pool).save_tick(
        "r1", epoch="e", offset=0, state={}, events=[], gift_offsets=[(receipt.send_id, 7)]
    )
    assert await wallets.unpublished("r1") == []
    assert (await _send(wallets, "k1", quantity=3)).event_offset == 7  # type: ignore[attr-defined]


async def test_concurrent_sends_never_overdraw_and_a_key_pays_once(pool: asyncpg.Pool) -> None:
    wallets = await _setup(pool)
    await wallets.credit("ann", 55, ref="top-up")
    same_key = await asyncio.gather(*(_send(wallets, "same") for _ in range(5)))  # type: ignore[arg-type]
    assert len({r.send_id for r in same_key}) == 1
    assert await wallets.balance("ann") == 45
    results = await asyncio.gather(
        *(_send(wallets, f"k{i}") for i in range(10)),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    paid = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, InsufficientCoins)]
    assert len(paid) == 4 and len(refused) == 6
    assert await wallets.balance("ann") == 5
    assert await wallets.balance("host") == 50


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.integers(0, 200),
    st.lists(st.tuples(st.integers(1, 5), st.integers(0, 6)), min_size=1, max_size=12),
)
def test_balances_never_go_negative_and_coins_are_conserved(
    postgres_url: str, start: int, sends: list[tuple[int, int]]
) -> None:
    async def run() -> None:
        pool = await create_pool(postgres_url, min_size=1, max_size=6)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
                await conn.execute("TRUNCATE rooms, channels CASCADE")
            wallets = await _setup(pool)
            if start:
                await wallets.credit("ann", start, ref="start")
            await asyncio.gather(
                *(_send(wallets, f"k{key}", quantity) for quantity, key in sends),  # type: ignore[arg-type]
                return_exceptions=True,
            )
            ann, host = await wallets.balance("ann"), await wallets.balance("host")
            assert ann >= 0
            assert ann + host == start  # coins move, never appear or vanish
            paid = await pool.fetchval("SELECT coalesce(sum(coins), 0) FROM gift_sends")
            assert paid == host
        finally:
            await pool.close()

    asyncio.run(run())
