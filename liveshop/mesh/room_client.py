"""How gateways and the API reach room actors: commands and joins, batched per room."""

from __future__ import annotations

import asyncio
from typing import Any

from liveshop.config import Settings
from liveshop.errors import RateLimited, RoomNotFound, Unavailable
from liveshop.mesh.client import ActorClient
from liveshop.rooms.commands import Command, Reply
from liveshop.storage.rooms import RoomStore

#: History reads at once per gateway or API process (each holds a database connection).
HISTORY_READS = 2
#: How long a history read may wait for its turn (seconds).
HISTORY_WAIT = 2.0


class RoomClient(ActorClient):
    kind = "room"
    entity = "room"

    def __init__(self, settings: Settings, store: RoomStore) -> None:
        super().__init__(
            settings,
            store.pool,
            exists=store.room_exists,
            missing=lambda room_id: RoomNotFound(f"no room {room_id!r}"),
        )
        self.store = store
        self._history_reads = asyncio.Semaphore(HISTORY_READS)
        self._history_users: set[str] = set()

    async def history(
        self, room_id: str, *, before: int | None, limit: int, user_id: str, staff: bool
    ) -> dict[str, Any]:
        """A page of the chat log (RoomStore.history), read from PostgreSQL: the room's
        actor is not involved, so scrolling back costs the live room nothing. Bounded so
        that scrolling never takes what buys and pins need, nor one user everyone's turn:
        HISTORY_READS at once per process, one per user, and a read that cannot start
        within HISTORY_WAIT answers ``unavailable``. A banned user (not staff) is refused."""
        if user_id in self._history_users:
            raise RateLimited("one history read at a time, please")
        self._history_users.add(user_id)
        try:
            async with asyncio.timeout(HISTORY_WAIT):
                await self._history_reads.acquire()
        except TimeoutError:
            self._history_users.discard(user_id)
            raise Unavailable("chat history is busy, try again") from None
        try:
            return await self.store.history(
                room_id, before=before, limit=limit, reader=None if staff else user_id
            )
        finally:
            self._history_reads.release()
            self._history_users.discard(user_id)

    async def send(self, room_id: str, command: Command) -> Reply:
        result: Reply = await self.submit(room_id, "handle", command)
        return result

    async def join(
        self, room_id: str, since: tuple[int, str] | None = None, user_id: str | None = None
    ) -> dict[str, Any]:
        """The room's snapshot, or what was missed since ``since`` (see Room.join)."""
        # Joins are batched like commands: a reconnect storm is a few actor calls, not one per
        # viewer. Reads are safe to retry, e.g. while the actor restarts.
        for attempt in range(3):
            try:
                snapshot: dict[str, Any] = await self.submit(room_id, "join", (since, user_id))
                return snapshot
            except Unavailable:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")
