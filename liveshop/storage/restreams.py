"""Restream destinations per room in PostgreSQL."""

from __future__ import annotations

import asyncpg

from liveshop.errors import Conflict, RoomNotFound
from liveshop.media.restream import Destination

#: A room forwards to at most this many platforms (each is a connection and a remux).
MAX_DESTINATIONS = 10


class RestreamStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def put(self, room_id: str, destination: Destination) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            count = await conn.fetchval(
                "SELECT count(*) FROM restreams WHERE room_id = $1 AND id <> $2",
                room_id,
                destination.destination_id,
            )
            if count >= MAX_DESTINATIONS:
                raise Conflict(f"a room restreams to at most {MAX_DESTINATIONS} destinations")
            try:
                await conn.execute(
                    "INSERT INTO restreams (room_id, id, url) VALUES ($1, $2, $3) "
                    "ON CONFLICT (room_id, id) DO UPDATE SET url = EXCLUDED.url",
                    room_id,
                    destination.destination_id,
                    destination.url,
                )
            except asyncpg.ForeignKeyViolationError:
                raise RoomNotFound(f"no room {room_id!r}") from None

    async def delete(self, room_id: str, destination_id: str) -> bool:
        result: str = await self.pool.execute(
            "DELETE FROM restreams WHERE room_id = $1 AND id = $2", room_id, destination_id
        )
        return result.endswith(" 1")

    async def list(self, room_id: str) -> list[Destination]:
        rows = await self.pool.fetch(
            "SELECT id, url FROM restreams WHERE room_id = $1 ORDER BY id", room_id
        )
        return [Destination(r["id"], r["url"]) for r in rows]
