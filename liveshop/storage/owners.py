"""Who owns each entity (fencing) and the directory of hosts, in PostgreSQL.

Ownership is an epoch per entity. A host that activates an entity *claims* it: the epoch
goes up by one and the host keeps the new value. Every write the entity makes checks, in
its own transaction, that the epoch is still its own and holds a share lock on the owner
row until it commits; a claim waits for those writes and every later write by the old
owner fails with :class:`Fenced`. So two hosts can never both write one entity: the one
that lost it cannot commit, and the one that won loads after the loser's last commit.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from liveshop.errors import Unavailable


class Fenced(Unavailable):
    """Another host claimed this entity: this host must drop it without writing. The caller
    hears ``unavailable`` and tries again, reaching the new owner."""


@dataclass
class Fence:
    """What an entity's writes present: its kind, key and the epoch its host claimed.
    ``lost`` turns true once a write found another epoch: the host drops the entity."""

    kind: str
    key: str
    epoch: int
    lost: bool = False

    async def check(self, conn: asyncpg.Connection) -> None:
        """Inside a write transaction: raise Fenced unless the epoch is still ours, and keep
        a claim from overtaking this transaction until it ends."""
        sql = "SELECT epoch FROM entity_owners WHERE kind = $1 AND key = $2 FOR SHARE"
        self.verify(await conn.fetchval(sql, self.kind, self.key))

    def verify(self, epoch: int | None) -> None:
        """``epoch``, read (and share-locked) in the write's transaction, must be ours."""
        if epoch != self.epoch:
            self.lost = True
            raise Fenced(f"{self.kind} {self.key} moved to another host, try again")


async def check_fence(fence: Fence | None, conn: asyncpg.Connection) -> None:
    """:meth:`Fence.check` when the store has a fence (an entity's store); nothing for the
    stores of the API and gateways, which write what no entity owns."""
    if fence is not None:
        await fence.check(conn)


async def fenced_execute(pool: asyncpg.Pool, fence: Fence | None, sql: str, *args: object) -> None:
    """One write statement: as it is without a fence, else in a transaction that checks the
    fence first."""
    if fence is None:
        await pool.execute(sql, *args)
        return
    async with pool.acquire() as conn, conn.transaction():
        await fence.check(conn)
        await conn.execute(sql, *args)


class OwnerStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def claim(self, kind: str, key: str, host: str) -> Fence:
        """Own ``kind:key`` from now on (waits for writes of the previous owner in flight)."""
        epoch = await self.pool.fetchval(
            """INSERT INTO entity_owners (kind, key, host, epoch) VALUES ($1, $2, $3, 1)
               ON CONFLICT (kind, key) DO UPDATE
               SET epoch = entity_owners.epoch + 1, host = EXCLUDED.host, claimed_at = now()
               RETURNING epoch""",
            kind, key, host,
        )  # fmt: skip
        return Fence(kind, key, int(epoch))

    async def owner(self, kind: str, key: str) -> tuple[str, int] | None:
        row = await self.pool.fetchrow(
            "SELECT host, epoch FROM entity_owners WHERE kind = $1 AND key = $2", kind, key
        )
        return None if row is None else (row["host"], int(row["epoch"]))

    async def hosts(self) -> list[tuple[str, str | None]]:
        """The directory: (host name, the entity it is dedicated to or None)."""
        rows = await self.pool.fetch("SELECT name, entity FROM entity_hosts ORDER BY name")
        return [(r["name"], r["entity"]) for r in rows]

    async def publish_hosts(self, hosts: list[tuple[str, str | None]]) -> None:
        """Replace the directory (one transaction: readers see the old one or the new)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM entity_hosts WHERE name <> ALL($1::text[])", [n for n, _ in hosts]
            )
            await conn.executemany(
                """INSERT INTO entity_hosts (name, entity) VALUES ($1, $2)
                   ON CONFLICT (name) DO UPDATE SET entity = EXCLUDED.entity""",
                hosts,
            )
