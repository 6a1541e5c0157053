"""How gateways and the API reach domain actors (rooms, SKUs): find or create them by id,
and batch the calls bound for each one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ray.exceptions import ActorDiedError, GetTimeoutError, RayActorError

from liveshop import metrics
from liveshop.config import Settings
from liveshop.errors import LiveshopError, NotFound, Unavailable
from liveshop.serve.batcher import Batcher

log = logging.getLogger(__name__)


class ActorClient:
    """One kind of actor. ``get(id)`` and ``create(id, settings)`` are the blocking wiring
    calls; ``exists(id)`` guards creation, so a client cannot create actors by guessing ids;
    ``missing(id)`` is the error for an id that does not exist."""

    kind = "actor"

    def __init__(
        self,
        settings: Settings,
        *,
        get: Callable[[str], Any | None],
        create: Callable[[str, Settings], Any],
        exists: Callable[[str], Awaitable[bool]],
        missing: Callable[[str], NotFound],
        max_batch: int | None = None,
    ) -> None:
        self.settings = settings
        self._max_batch = max_batch or settings.max_batch
        self._get = get
        self._create = create
        self._exists = exists
        self._missing = missing
        self._handles: dict[str, Any] = {}
        # Per actor and method: the batcher gathering its calls.
        self._batchers: dict[tuple[str, str], Batcher[Any]] = {}
        self._lookups: dict[str, asyncio.Future[Any]] = {}

    async def actor(self, key: str) -> Any:
        handle = self._handles.get(key)
        if handle is not None:
            return handle
        # Concurrent first uses of one actor share one lookup.
        pending = self._lookups.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._lookup(key))
            self._lookups[key] = pending
            pending.add_done_callback(lambda _: self._lookups.pop(key, None))
        return await asyncio.shield(pending)

    async def _lookup(self, key: str) -> Any:
        try:
            handle = await asyncio.to_thread(self._get, key)
            if handle is None:
                if not await self._exists(key):
                    raise self._missing(key)
                handle = await asyncio.to_thread(self._create, key, self.settings)
        except LiveshopError:
            raise
        except Exception as exc:  # PostgreSQL or the GCS did not answer
            log.warning("cannot look up %s %s: %s", self.kind, key, exc)
            raise Unavailable(f"{self.kind} lookup failed, try again") from None
        self._handles[key] = handle
        return handle

    def forget(self, key: str) -> None:
        self._handles.pop(key, None)

    def drop(self, key: str) -> None:
        """This process no longer serves the actor: forget its handle and idle batchers, or
        a 24/7 gateway would keep some for every actor it ever used."""
        self.forget(key)
        for bkey in [k for k in self._batchers if k[0] == key]:
            if self._batchers[bkey].idle:
                del self._batchers[bkey]

    def submit(self, key: str, method: str, item: Any) -> asyncio.Future[Any]:
        """``item`` joins the next batch for ``actor.method``; the future has its result."""
        batcher = self._batchers.get((key, method))
        if batcher is None:
            batcher = self._batchers[(key, method)] = Batcher(
                lambda batch: self._call_batch(key, method, batch),
                window=self.settings.batch_window,
                max_batch=self._max_batch,
                max_in_flight=self.settings.max_calls_in_flight,
            )
        return batcher.submit(item)

    async def _call_batch(self, key: str, method: str, batch: list[Any]) -> Any:
        started = time.perf_counter()
        try:
            return await self.call(key, method, batch)
        finally:
            with contextlib.suppress(Exception):  # never instead of the call's own outcome
                metrics.batch(self.kind.lower(), method, len(batch), time.perf_counter() - started)

    async def call(self, actor_id: str, method: str, *args: Any, **kwargs: Any) -> Any:
        handle = await self.actor(actor_id)
        try:
            ref = getattr(handle, method).remote(*args, **kwargs)
            return await asyncio.wait_for(ref, self.settings.actor_call_timeout)
        except LiveshopError:
            raise
        except ActorDiedError as exc:
            # Dead for good (e.g. its constructor failed): the next call makes a new one.
            self.forget(actor_id)
            log.warning("%s actor %s died: %s", self.kind, actor_id, exc)
            raise Unavailable(f"{self.kind} is restarting, try again") from None
        except (RayActorError, GetTimeoutError, TimeoutError):
            raise Unavailable(f"{self.kind} did not answer in time, try again") from None

    async def close(self) -> None:
        await asyncio.gather(*(b.close() for b in self._batchers.values()))
