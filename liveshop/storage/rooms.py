"""Rooms and the room event log in PostgreSQL (channels: storage/channels.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from liveshop.errors import Conflict, RoomNotFound
from liveshop.rooms.event import Event
from liveshop.rooms.history import HISTORY_SIZE
from liveshop.rooms.room import RoomInfo


@dataclass(frozen=True)
class StoredRoom:
    info: RoomInfo
    epoch: str
    offset: int
    state: dict[str, Any]
    history: list[Event]


def _info(row: asyncpg.Record) -> RoomInfo:
    return RoomInfo(
        room_id=row["id"],
        title=row["title"],
        channel_id=row["channel_id"],
        status=row["status"],
        host_id=row["host_id"],
    )


async def insert_room(
    conn: asyncpg.Connection | asyncpg.Pool, info: RoomInfo, *, epoch: str, if_absent: bool = False
) -> RoomInfo | None:
    """Insert a room (``if_absent``: keep one that exists, and return None for it)."""
    try:
        row = await conn.fetchrow(
            "INSERT INTO rooms (id, channel_id, title, status, epoch, host_id) "
            "VALUES ($1, $2, $3, $4, $5, $6) "
            + ("ON CONFLICT (id) DO NOTHING " if if_absent else "") + "RETURNING *",
            info.room_id, info.channel_id, info.title, info.status, epoch, info.host_id,
        )  # fmt: skip
    except asyncpg.UniqueViolationError:
        raise Conflict(f"room {info.room_id!r} already exists") from None
    except asyncpg.ForeignKeyViolationError:
        raise Conflict(f"channel {info.channel_id!r} does not exist") from None
    return _info(row) if row is not None else None


class RoomStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create_room(self, info: RoomInfo, *, epoch: str) -> RoomInfo:
        created = await insert_room(self.pool, info, epoch=epoch)
        assert created is not None
        return created

    async def get_room(self, room_id: str) -> RoomInfo:
        row = await self.pool.fetchrow("SELECT * FROM rooms WHERE id = $1", room_id)
        if row is None:
            raise RoomNotFound(f"no room {room_id!r}")
        return _info(row)

    async def room_exists(self, room_id: str) -> bool:
        return bool(await self.pool.fetchval("SELECT 1 FROM rooms WHERE id = $1", room_id))

    async def list_rooms(self, *, limit: int = 100, after: str | None = None) -> list[RoomInfo]:
        rows = await self.pool.fetch(
            "SELECT * FROM rooms WHERE ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2",
            after,
            limit,
        )
        return [_info(r) for r in rows]

    async def load(self, room_id: str, *, history: int = HISTORY_SIZE) -> StoredRoom:
        """Everything a room actor needs to come back: state, offset, epoch, recent events."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            row = await conn.fetchrow("SELECT * FROM rooms WHERE id = $1", room_id)
            if row is None:
                raise RoomNotFound(f"no room {room_id!r}")
            events = await conn.fetch(
                "SELECT event_offset, kind, data, ts_ms FROM room_events WHERE room_id = $1 "
                "ORDER BY event_offset DESC LIMIT $2",
                room_id,
                history,
            )
        return StoredRoom(
            info=_info(row),
            epoch=row["epoch"],
            offset=row["last_offset"],
            state=row["state"],
            history=[
                Event(offset=e["event_offset"], kind=e["kind"], data=e["data"], ts_ms=e["ts_ms"])
                for e in reversed(events)
            ],
        )

    async def save_tick(
        self,
        room_id: str,
        *,
        epoch: str,
        offset: int,
        state: dict[str, Any],
        events: list[Event],
        gift_offsets: list[tuple[int, int]] | None = None,
    ) -> None:
        """Group commit: one tick's events, the room's state and the offsets of the gift events
        among them (so a paid gift is published exactly once) in one transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            if gift_offsets:
                await conn.executemany(
                    "UPDATE gift_sends SET event_offset = $2 WHERE id = $1",
                    gift_offsets,
                )
            if events:
                await conn.executemany(
                    "INSERT INTO room_events (room_id, event_offset, epoch, kind, data, ts_ms) "
                    "VALUES ($1, $2, $3, $4, $5, $6)",
                    [(room_id, e.offset, epoch, e.kind, e.data, e.ts_ms) for e in events],
                )
            await conn.execute(
                "UPDATE rooms SET last_offset = $2, state = $3, epoch = $4, updated_at = now() "
                "WHERE id = $1",
                room_id,
                offset,
                state,
                epoch,
            )
