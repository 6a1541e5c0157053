"""The built-in test provider: behaves like a real one, driven by test card numbers.

- 4242 4242 4242 4242 (and any other valid number): the charge succeeds.
- 4000 0000 0000 0002: declined (``card_declined``).
- 4000 0000 0000 3220: requires a challenge; ``confirm`` with code 123456 succeeds, any
  other code declines.
- 4000 0000 0000 0119: the charge goes through but the answer never comes back (the call
  hangs): the caller times out, and ``retrieve`` later reports it succeeded.

Its records live in PostgreSQL (``test_provider_charges``), as a real provider's live in its
own systems: every liveshop process sees the same charges.
"""

from __future__ import annotations

import asyncio
import datetime

import asyncpg

from liveshop.errors import InvalidRequest, NotFound
from liveshop.payments.provider import (
    DECLINED,
    REQUIRES_ACTION,
    SUCCEEDED,
    Card,
    Charge,
    brand_of,
    check_card,
)

DECLINE = "4000000000000002"
CHALLENGE = "4000000000003220"
TIMEOUT = "4000000000000119"
CHALLENGE_CODE = "123456"


class TestProvider:
    name = "test"
    __test__ = False  # not a pytest class

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def tokenize(self, number: str, exp_month: int, exp_year: int) -> Card:
        digits = check_card(number, exp_month, exp_year, datetime.date.today().year)
        # The token names the behaviour, as test-mode tokens do; never the whole number.
        behaviour = {DECLINE: "decline", CHALLENGE: "challenge", TIMEOUT: "timeout"}
        kind = behaviour.get(digits, "ok")
        return Card(f"tok_{kind}_{digits[-4:]}", brand_of(digits), digits[-4:])

    async def charge(self, key: str, token: str, amount_minor: int, currency: str) -> Charge:
        if not token.startswith("tok_"):
            raise InvalidRequest("unknown payment token")
        kind = token.split("_")[1]
        status = {"decline": DECLINED, "challenge": REQUIRES_ACTION}.get(kind, SUCCEEDED)
        row = await self.pool.fetchrow(
            "INSERT INTO test_provider_charges (key, token, amount_minor, currency, status) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key "
            "RETURNING status",
            key, token, amount_minor, currency, status,
        )  # fmt: skip
        assert row is not None
        if kind == "timeout":
            await asyncio.Event().wait()  # charged, but the answer is lost: the caller times out
        return _charge(key, row["status"])

    async def confirm(self, key: str, code: str) -> Charge:
        status = SUCCEEDED if code == CHALLENGE_CODE else DECLINED
        row = await self.pool.fetchrow(
            "UPDATE test_provider_charges SET status = CASE WHEN status = $2 THEN $3 "
            "ELSE status END WHERE key = $1 RETURNING status",
            key,
            REQUIRES_ACTION,
            status,
        )
        if row is None:
            raise NotFound(f"no charge {key!r}")
        return _charge(key, row["status"])

    async def retrieve(self, key: str) -> Charge | None:
        status = await self.pool.fetchval(
            "SELECT status FROM test_provider_charges WHERE key = $1", key
        )
        return None if status is None else _charge(key, status)

    async def refund(self, key: str, charge_key: str, amount_minor: int) -> int:
        # Idempotent per refund key: one row per key in the same table (status 'refund').
        async with self.pool.acquire() as conn, conn.transaction():
            charge = await conn.fetchrow(
                "SELECT amount_minor, refunded, status FROM test_provider_charges "
                "WHERE key = $1 FOR UPDATE",
                charge_key,
            )
            if charge is None or charge["status"] != SUCCEEDED:
                raise InvalidRequest(f"charge {charge_key!r} was not captured")
            done = await conn.fetchval(
                "INSERT INTO test_provider_charges (key, token, amount_minor, currency, status) "
                "SELECT $1, token, $3, currency, 'refund' FROM test_provider_charges "
                "WHERE key = $2 ON CONFLICT (key) DO NOTHING RETURNING key",
                key,
                charge_key,
                amount_minor,
            )
            if done is None:
                return int(charge["refunded"])
            if charge["refunded"] + amount_minor > charge["amount_minor"]:
                raise InvalidRequest("cannot refund more than was charged")
            refunded: int = await conn.fetchval(
                "UPDATE test_provider_charges SET refunded = refunded + $2 WHERE key = $1 "
                "RETURNING refunded",
                charge_key,
                amount_minor,
            )
            return refunded


def _charge(key: str, status: str) -> Charge:
    reason = "card_declined" if status == DECLINED else ""
    return Charge(key, status, reason)
