"""How gateways, the API and entities reach entities (rooms, SKUs, carts, ...): place them
on their host by id, and batch the calls bound for each one. The one client mechanism for
every call and push between processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from ray.exceptions import ActorDiedError, GetTimeoutError, RayActorError

from liveshop import metrics
from liveshop.config import Settings
from liveshop.errors import LiveshopError, NotFound, Unavailable
from liveshop.mesh.batcher import Batcher
from liveshop.mesh.handle import EntityHandle
from liveshop.mesh.host import Moved
from liveshop.mesh.hosts import hosts_for

log = logging.getLogger(__name__)

#: Ids a client remembers as existing (past it, it forgets them all and asks again).
MAX_KNOWN = 100_000


class ActorClient:
    """One kind of entity. ``exists(id)`` is asked once per id and process before the first
    call, so a client cannot activate entities by guessing ids; ``missing(id)`` is the error
    for an id that does not exist."""

    #: How the entity is named to people (errors, metrics).
    kind = "actor"
    #: The entity kind hosts know it by (liveshop/actors/host.py).
    entity = "actor"
    #: Methods whose calls bound for one host are gathered into one Ray call (see Batcher):
    #: many small entities (carts) cost a host one call per batch, not per operation. Only
    #: quick methods of similar latency: a batch is answered once its slowest call is.
    host_batched: frozenset[str] = frozenset()

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        *,
        exists: Callable[[str], Awaitable[bool]],
        missing: Callable[[str], NotFound],
        max_batch: int | None = None,
    ) -> None:
        self.settings = settings
        self.hosts = hosts_for(settings, pool)
        self._max_batch = max_batch or settings.max_batch
        self._exists = exists
        self._missing = missing
        #: Ids known to exist (asked once).
        self._known: set[str] = set()
        # Per entity and method: the batcher gathering its calls.
        self._batchers: dict[tuple[str, str], Batcher[Any]] = {}
        self._lookups: dict[str, asyncio.Future[None]] = {}
        # Per host: the batcher gathering the quick calls (``host_batched``) bound there.
        self._host_batchers: dict[str, Batcher[Any]] = {}

    async def actor(self, key: str) -> Any:
        """The entity's handle (``handle.method.remote(...)`` reaches it on its host)."""
        await self.check(key)  # concurrent first uses of one id share one lookup
        return await self._placed(key)

    async def _placed(self, key: str) -> EntityHandle:
        try:
            return await self.hosts.handle(self.entity, key)
        except Exception as exc:  # PostgreSQL (the directory) or the GCS did not answer
            log.warning("cannot place %s %s: %r", self.kind, key, exc)
            raise Unavailable(f"{self.kind} lookup failed, try again") from None

    async def check(self, key: str) -> None:
        """Raise ``missing(key)`` unless the entity exists (asked once per id and process)."""
        if key not in self._known:
            pending = self._lookups.get(key)
            if pending is None:
                pending = asyncio.ensure_future(self._lookup(key))
                self._lookups[key] = pending
                pending.add_done_callback(lambda _: self._lookups.pop(key, None))
            await asyncio.shield(pending)

    async def _lookup(self, key: str) -> None:
        try:
            found = await self._exists(key)
        except Exception as exc:  # PostgreSQL did not answer
            log.warning("cannot look up %s %s: %r", self.kind, key, exc)
            raise Unavailable(f"{self.kind} lookup failed, try again") from None
        if not found:
            raise self._missing(key)
        if len(self._known) >= MAX_KNOWN:
            self._known.clear()  # a 24/7 process meets millions of carts: ask again later
        self._known.add(key)

    def forget(self, key: str) -> None:
        self._known.discard(key)

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
            batcher = self._batchers[(key, method)] = self._batcher(
                method, lambda batch: self.call(key, method, batch)
            )
        return batcher.submit(item)

    def _batcher(self, method: str, send: Callable[[list[Any]], Awaitable[Any]]) -> Batcher[Any]:
        async def timed(batch: list[Any]) -> Any:
            started = time.perf_counter()
            try:
                return await send(batch)
            finally:
                with contextlib.suppress(Exception):  # never instead of the call's outcome
                    metrics.batch(
                        self.kind.lower(), method, len(batch), time.perf_counter() - started
                    )

        return Batcher(
            timed,
            window=self.settings.batch_window,
            max_batch=self._max_batch,
            max_in_flight=self.settings.max_calls_in_flight,
        )

    async def call(self, actor_id: str, method: str, *args: Any, **kwargs: Any) -> Any:
        # ``actor_id``, not ``key``: methods take a ``key`` (idempotency) of their own.
        handle = await self.actor(actor_id)
        if method in self.host_batched and isinstance(handle, EntityHandle):
            host = handle.host_name
            batcher = self._host_batchers.get(host)
            if batcher is None:
                batcher = self._host_batchers[host] = self._batcher(
                    "many", lambda items: self._call_many(host, items)
                )
            return await batcher.submit((actor_id, method, args, kwargs))
        return await self._await(handle, getattr(handle, method).remote(*args, **kwargs))

    async def _call_many(self, host: str, items: list[Any]) -> Any:
        handle = await self.hosts.host(host)
        results = await self._await(host, handle.call_many.remote(self.entity, items))
        if any(isinstance(r, Moved) for r in results):
            self.hosts.directory.expire()  # the directory changed: read it again
        return results

    async def tell(self, actor_id: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Like :meth:`call`, but only if the entity is resident: a push (a stock counter,
        an auction's clock) for an entity that was passivated wakes nothing, and answers
        None. It gets the state when it next loads."""
        handle = await self._placed(actor_id)
        return await self._await(handle, handle.host.tell.remote(
            self.entity, actor_id, method, args, kwargs))  # fmt: skip

    async def _await(self, handle: Any, ref: Any) -> Any:
        """``ref``'s result; ``handle``: the entity's handle (or a host's name), to forget
        its host if it died for good."""
        try:
            return await asyncio.wait_for(ref, self.settings.actor_call_timeout)
        except Moved:
            self.hosts.directory.expire()  # the directory changed: read it again
            raise
        except LiveshopError:
            raise
        except ActorDiedError as exc:
            # Dead for good (killed without restart): the next call looks it up anew.
            if isinstance(handle, EntityHandle | str):
                self.hosts.forget(handle if isinstance(handle, str) else handle.host_name)
            log.warning("the host of %s %r died: %s", self.kind, handle, exc)
            raise Unavailable(f"{self.kind} is restarting, try again") from None
        except (RayActorError, GetTimeoutError, TimeoutError):
            raise Unavailable(f"{self.kind} did not answer in time, try again") from None

    async def close(self) -> None:
        batchers = [*self._batchers.values(), *self._host_batchers.values()]
        await asyncio.gather(*(b.close() for b in batchers))
