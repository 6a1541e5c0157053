"""How gateways and the API reach room actors: commands and joins, batched per room."""

from __future__ import annotations

import asyncio
from typing import Any

from liveshop.actors import wiring
from liveshop.config import Settings
from liveshop.errors import RoomNotFound, Unavailable
from liveshop.rooms.commands import Command, Reply
from liveshop.serve.actor_client import ActorClient
from liveshop.storage.rooms import RoomStore

#: History reads at once per gateway or API process (each holds a database connection).
HISTORY_READS = 2


class RoomClient(ActorClient):
    kind = "room"

    def __init__(self, settings: Settings, store: RoomStore) -> None:
        super().__init__(
            settings,
            get=wiring.get_room_actor,
            create=wiring.create_room_actor,
            exists=store.room_exists,
            missing=lambda room_id: RoomNotFound(f"no room {room_id!r}"),
        )
        self.store = store
        self._history_reads = asyncio.Semaphore(HISTORY_READS)

    async def history(
        self, room_id: str, *, before: int | None, limit: int, reader: str | None = None
    ) -> dict[str, Any]:
        """A page of the chat log (RoomStore.history), read from PostgreSQL: the room's
        actor is not involved, so scrolling back costs the live room nothing. At most
        HISTORY_READS at once per process: scrolling never takes the connections that buys
        and pins need."""
        async with self._history_reads:
            return await self.store.history(room_id, before=before, limit=limit, reader=reader)

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
