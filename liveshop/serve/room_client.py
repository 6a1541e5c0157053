"""How gateways and the API reach room actors: find or create them, batch per room."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ray.exceptions import ActorDiedError, GetTimeoutError, RayActorError

from liveshop.actors import wiring
from liveshop.actors.wiring import RoomHandle
from liveshop.config import Settings
from liveshop.errors import LiveshopError, RoomNotFound, Unavailable
from liveshop.rooms.commands import Command, Reply
from liveshop.serve.batcher import Batcher
from liveshop.storage.rooms import RoomStore

log = logging.getLogger(__name__)


class RoomClient:
    def __init__(self, settings: Settings, store: RoomStore) -> None:
        self.settings = settings
        self.store = store
        self._handles: dict[str, RoomHandle] = {}
        # Per room: commands to RoomActor.handle, and (since, user_id) joins to RoomActor.join.
        self._batchers: dict[str, Batcher[Any]] = {}
        self._join_batchers: dict[str, Batcher[Any]] = {}
        self._lookups: dict[str, asyncio.Future[RoomHandle]] = {}

    async def actor(self, room_id: str) -> RoomHandle:
        handle = self._handles.get(room_id)
        if handle is not None:
            return handle
        # Concurrent first uses of one room share one lookup.
        pending = self._lookups.get(room_id)
        if pending is None:
            pending = asyncio.ensure_future(self._lookup(room_id))
            self._lookups[room_id] = pending
            pending.add_done_callback(lambda _: self._lookups.pop(room_id, None))
        return await asyncio.shield(pending)

    async def _lookup(self, room_id: str) -> RoomHandle:
        try:
            handle = await asyncio.to_thread(wiring.get_room_actor, room_id)
            if handle is None:
                # Only rooms that exist get an actor: a client cannot create actors by guessing.
                if not await self.store.room_exists(room_id):
                    raise RoomNotFound(f"no room {room_id!r}")
                handle = await asyncio.to_thread(wiring.create_room_actor, room_id, self.settings)
        except LiveshopError:
            raise
        except Exception as exc:  # PostgreSQL or the GCS did not answer
            log.warning("cannot look up room %s: %s", room_id, exc)
            raise Unavailable("room lookup failed, try again") from None
        self._handles[room_id] = handle
        return handle

    def forget(self, room_id: str) -> None:
        self._handles.pop(room_id, None)

    def drop(self, room_id: str) -> None:
        """This process no longer serves the room: forget its handle and idle batchers, or a
        24/7 gateway would keep some for every room it ever served."""
        self.forget(room_id)
        for batchers in (self._batchers, self._join_batchers):
            batcher = batchers.get(room_id)
            if batcher is not None and batcher.idle:
                del batchers[room_id]

    def _batcher(
        self, batchers: dict[str, Batcher[Any]], room_id: str, method: str
    ) -> Batcher[Any]:
        batcher = batchers.get(room_id)
        if batcher is None:
            batcher = batchers[room_id] = Batcher(
                lambda batch: self._call(room_id, method, batch),
                window=self.settings.batch_window,
                max_batch=self.settings.max_batch,
            )
        return batcher

    async def send(self, room_id: str, command: Command) -> Reply:
        result: Reply = await self._batcher(self._batchers, room_id, "handle").submit(command)
        return result

    async def join(
        self, room_id: str, since: tuple[int, str] | None = None, user_id: str | None = None
    ) -> dict[str, Any]:
        """The room's snapshot, or what was missed since ``since`` (see Room.join)."""
        # Joins are batched like commands: a reconnect storm is a few actor calls, not one per
        # viewer. Reads are safe to retry, e.g. while the actor restarts.
        for attempt in range(3):
            try:
                batcher = self._batcher(self._join_batchers, room_id, "join")
                snapshot: dict[str, Any] = await batcher.submit((since, user_id))
                return snapshot
            except Unavailable:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _call(self, room_id: str, method: str, *args: Any) -> Any:
        handle = await self.actor(room_id)
        try:
            ref = getattr(handle, method).remote(*args)
            return await asyncio.wait_for(ref, self.settings.actor_call_timeout)
        except LiveshopError:
            raise
        except ActorDiedError as exc:
            # Dead for good (e.g. its constructor failed): the next call makes a new one.
            self.forget(room_id)
            log.warning("room actor %s died: %s", room_id, exc)
            raise Unavailable("room is restarting, try again") from None
        except (RayActorError, GetTimeoutError, TimeoutError):
            raise Unavailable("room did not answer in time, try again") from None

    async def close(self) -> None:
        batchers = [*self._batchers.values(), *self._join_batchers.values()]
        await asyncio.gather(*(b.close() for b in batchers))
