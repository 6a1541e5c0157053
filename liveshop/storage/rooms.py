"""Rooms and the room event log in PostgreSQL (channels: storage/channels.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from liveshop.errors import Banned, Conflict, RoomNotFound
from liveshop.rooms.event import Event
from liveshop.rooms.history import HISTORY_SIZE
from liveshop.rooms.room import RoomInfo
from liveshop.storage.owners import Fence
from liveshop.storage.pool import TRANSIENT_DB_ERRORS
from liveshop.text import scrub

#: What the chat log shows, and so what a history read returns.
CHAT_KINDS = ("chat", "system", "gift")
_CHAT_KINDS_SQL = ", ".join(f"'{kind}'" for kind in CHAT_KINDS)
#: Longest a history read may take (seconds); longer answers ``unavailable``.
HISTORY_TIMEOUT = 2.0


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
    """``fence``: the room actor's claim on the room (storage/owners.py); set, a tick is
    saved only while the claim holds (checked in the tick's transaction), else
    :class:`Fenced` is raised and nothing is written."""

    def __init__(self, pool: asyncpg.Pool, *, fence: Fence | None = None) -> None:
        self.pool = pool
        self.fence = fence

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

    async def history(
        self, room_id: str, *, before: int | None, limit: int, reader: str | None = None
    ) -> dict[str, Any]:
        """A page of the room's chat log from PostgreSQL, older than offset ``before`` (the
        newest page without it), oldest first and without deleted messages: scrollback
        beyond the room's in-memory recovery window. ``reader`` banned from the room (as of
        its last saved state) is refused. A read is bounded in time (HISTORY_TIMEOUT): a
        room with a pathological log answers ``unavailable`` rather than hold a connection
        the room's buyers need."""
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            await conn.execute(f"SET LOCAL statement_timeout = {int(HISTORY_TIMEOUT * 1000)}")
            room = await conn.fetchrow(
                "SELECT coalesce(state -> 'chat' -> 'bans' ? $2, false) AS banned "
                "FROM rooms WHERE id = $1",
                room_id,
                reader or "",
            )
            if room is None:
                raise RoomNotFound(f"no room {room_id!r}")
            if reader is not None and room["banned"]:
                raise Banned("you are banned from this room")
            rows = await self._history(conn, room_id, before, limit)
        events = [
            Event(offset=r["event_offset"], kind=r["kind"], data=r["data"], ts_ms=r["ts_ms"])
            for r in rows[:limit]
        ]
        return {
            "room": room_id,
            "messages": [e.to_wire() for e in reversed(events)],
            "more": len(rows) > limit,
        }

    @staticmethod
    async def _history(
        conn: asyncpg.Connection, room_id: str, before: int | None, limit: int
    ) -> list[asyncpg.Record]:
        # The kinds are literal (CHAT_KINDS): the planner then uses the partial index
        # room_events_chat (0014_chat_history.sql), which a parameter would defeat.
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT e.event_offset, e.kind, e.data, e.ts_ms FROM room_events e "
            f"WHERE e.room_id = $1 AND e.kind IN ({_CHAT_KINDS_SQL}) "
            "AND ($2::bigint IS NULL OR e.event_offset < $2) "
            "AND NOT EXISTS (SELECT 1 FROM room_events d WHERE d.room_id = $1 "
            "    AND d.kind = 'message_deleted' "
            "    AND (d.data ->> 'message_id')::bigint = e.event_offset) "
            "ORDER BY e.event_offset DESC LIMIT $3",
            room_id,
            before,
            limit + 1,
        )
        return rows

    async def save_tick_one_by_one(
        self,
        room_id: str,
        *,
        epoch: str,
        offset: int,
        state: dict[str, Any],
        events: list[Event],
        reason: str,
        gift_offsets: list[tuple[int, int]] | None = None,
    ) -> list[Event]:
        """:meth:`save_tick` after PostgreSQL refused its data: each event in a savepoint of
        its own, so that an event it cannot store fails alone and is stored withdrawn in
        its place (``Event.withdrawn``: the same offset, ``reason``). The state is saved,
        else saved made storable (``text.scrub``), else left as it was: the offset moves on
        whatever happens, so a room is never stuck retrying one tick. Returns the refused
        events: once this has committed, the actor withdraws them in memory too
        (``Room.withdraw``) and refuses their senders."""
        refused: list[Event] = []
        async with self.pool.acquire() as conn, conn.transaction():
            # Outside the savepoints below: a fenced tick fails whole, never event by event.
            if await _saved_already(conn, room_id, offset, events, self.fence):
                return refused

            async def attempt(sql: str, *args: Any) -> bool:
                try:
                    async with conn.transaction():  # a savepoint
                        await conn.execute(sql, *args)
                except TRANSIENT_DB_ERRORS:
                    raise  # the whole tick is retried
                except Exception:  # refused data, or anything else this write cannot pass
                    return False
                return True

            for e in events:
                if not await attempt(
                    _INSERT_EVENT, room_id, e.offset, epoch, e.kind, e.data, e.ts_ms
                ):
                    refused.append(e)
            if refused:
                placeholders = [e.withdrawn(reason) for e in refused]
                await conn.executemany(
                    _INSERT_EVENT,
                    [(room_id, e.offset, epoch, e.kind, e.data, e.ts_ms) for e in placeholders],
                )
            kept = {e.offset for e in events} - {e.offset for e in refused}
            for send_id, event_offset in gift_offsets or ():
                if event_offset in kept:
                    await attempt(_GIFT_OFFSET, send_id, event_offset)
            for candidate in (state, scrub(state)):
                if await attempt(_SAVE_ROOM, room_id, offset, candidate, epoch):
                    break
            else:
                await conn.execute(
                    "UPDATE rooms SET last_offset = $2, epoch = $3, updated_at = now() "
                    "WHERE id = $1",
                    room_id,
                    offset,
                    epoch,
                )
        return refused

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
        among them (so a paid gift is published exactly once) in one transaction. A tick
        saved already (its COMMIT succeeded while the caller heard a timeout, and it is
        retried) is not saved again (:func:`_saved_already`)."""
        async with self.pool.acquire() as conn, conn.transaction():
            if await _saved_already(conn, room_id, offset, events, self.fence):
                return
            if gift_offsets:
                await conn.executemany(_GIFT_OFFSET, gift_offsets)
            if events:
                await conn.executemany(
                    _INSERT_EVENT,
                    [(room_id, e.offset, epoch, e.kind, e.data, e.ts_ms) for e in events],
                )
            await conn.execute(_SAVE_ROOM, room_id, offset, state, epoch)


async def _saved_already(
    conn: asyncpg.Connection,
    room_id: str,
    offset: int,
    events: list[Event],
    fence: Fence | None = None,
) -> bool:
    """Whether this tick is in PostgreSQL already: the room's ``last_offset`` has reached
    the tick's (locked until this transaction ends). A commit that succeeded unseen is
    then retried as a no-op rather than refused (which once wedged a room for ever); any
    other clash of offsets still fails, as it must. ``fence``: raise :class:`Fenced` unless
    the room is still the fence's (read in the same round trip, share-locked until this
    transaction ends, as :meth:`Fence.check` does)."""
    row = await conn.fetchrow(_LOCK_ROOM if fence is None else _LOCK_ROOM_FENCED, room_id)
    if row is None:
        raise RoomNotFound(f"no room {room_id!r}")
    if fence is not None:
        fence.verify(row["owner_epoch"])
    last = row["last_offset"]
    # last_offset moves only with the events that reach it, in the same transaction; a
    # state-only tick (no events) is always saved.
    return bool(events) and last >= offset


_LOCK_ROOM = "SELECT last_offset FROM rooms WHERE id = $1 FOR UPDATE"
#: A scalar subquery: its FOR SHARE takes the owner row's lock (a missing row reads NULL).
_LOCK_ROOM_FENCED = (
    "SELECT last_offset, (SELECT epoch FROM entity_owners WHERE kind = 'room' AND key = $1 "
    "FOR SHARE) AS owner_epoch FROM rooms WHERE id = $1 FOR UPDATE"
)
_INSERT_EVENT = (
    "INSERT INTO room_events (room_id, event_offset, epoch, kind, data, ts_ms) "
    "VALUES ($1, $2, $3, $4, $5, $6)"
)
_GIFT_OFFSET = "UPDATE gift_sends SET event_offset = $2 WHERE id = $1"
_SAVE_ROOM = (
    "UPDATE rooms SET last_offset = $2, state = $3, epoch = $4, updated_at = now() WHERE id = $1"
)
