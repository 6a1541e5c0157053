"""The asyncpg pool every actor and replica uses."""

from __future__ import annotations

import asyncio
import json
import logging

import asyncpg

log = logging.getLogger(__name__)

#: Errors that mean "PostgreSQL did not answer, or could not this time": retry later, nothing
#: was decided. Besides lost connections: a server shutting down or restarting (failover
#: included: a replica is read-only until promoted), a statement cancelled or timed out, a
#: deadlock or serialization failure (the transaction is rolled back, retrying may pass), and
#: a server out of disk, memory or connections.
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.OperatorInterventionError,  # admin/crash shutdown, cannot connect now, cancelled
    asyncpg.TransactionRollbackError,  # deadlock, serialization failure
    asyncpg.InsufficientResourcesError,  # disk full, out of memory, too many connections
    asyncpg.ReadOnlySQLTransactionError,
)


#: Errors that mean "PostgreSQL cannot store this data" (a character it refuses, a number out
#: of range, a broken constraint): the same rows fail again, so they are never retried as
#: they are (see actors/group_commit.py).
REFUSED_DATA_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.ProgramLimitExceededError,  # a row or value too big
    UnicodeError,
    OverflowError,
)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb columns arrive as dicts, not strings.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A connection going back to the pool keeps its session as it is. asyncpg's default
    reset sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on every
    release, one more round trip per query; liveshop never leaves session state on a pooled
    connection (settings are ``SET LOCAL``, locks ``pg_advisory_xact_lock``: both end with
    their transaction), and a transaction left open is still rolled back by asyncpg."""


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 4) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, init=_init_connection, reset=_keep_session,
        command_timeout=10,
    )  # fmt: skip
    assert pool is not None
    return pool


async def connect_retrying(url: str, *, max_size: int, who: str) -> asyncpg.Pool:
    """A pool for an actor: keep trying, because an actor restarted during a database
    outage must wait for it, not die."""
    delay = 0.1
    while True:
        try:
            return await create_pool(url, min_size=1, max_size=max_size)
        except TRANSIENT_DB_ERRORS as exc:
            log.warning("%s cannot reach PostgreSQL yet: %s", who, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
