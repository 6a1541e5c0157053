"""The life of entities in one host process: activation, one mailbox each, passivation.

Plain asyncio with no Ray: the Ray actor (liveshop/actors/host.py) is a thin shell around a
:class:`Host`, so all of this runs in unit tests.

- **Activation**: the first call for ``kind:key`` claims the entity in PostgreSQL (its epoch
  goes up: see storage/owners.py), builds it and lets it load (``start``); calls arriving
  meanwhile wait for that one activation. A failed activation is forgotten: the next call
  tries again.
- **One writer**: an entity is one object in one host, and two hosts cannot both write it
  (the fence). Each entity keeps its own locks, batching and group commit, so a slow or
  failing entity never holds up its neighbours' calls.
- **Passivation**: an entity that nobody called for ``passivate_after`` seconds and whose
  kind says it may go (``idle()``: nothing unsaved, no live holds, ...) is stopped; an entity
  whose key the directory now places on another host is handed over the same way (once no
  call is in flight); an entity that lost its fence is dropped at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from liveshop.errors import InternalError, InvalidRequest, LiveshopError, Unavailable
from liveshop.mesh.placement import Placement
from liveshop.storage.owners import Fence, Fenced

log = logging.getLogger(__name__)

#: How long a stopping entity may take to finish what it has in flight (seconds).
STOP_TIMEOUT = 10.0
#: How often a stopping entity looks whether its calls in flight are done (seconds).
DRAIN_POLL = 0.01
#: How long a pass over every entity (a sweep, a metrics export) may hold the event loop
#: before it lets calls run (seconds): a host may hold a hundred thousand entities, and a
#: pass counted in entities stalled calls for as long as its costliest stretch took.
SLICE = 0.002


class Slices:
    """Cuts a long pass into SLICE-long stretches: ``if slices.due(): await
    asyncio.sleep(0)`` per item."""

    __slots__ = ("_since",)

    def __init__(self) -> None:
        self._since = time.perf_counter()

    def due(self) -> bool:
        now = time.perf_counter()
        if now - self._since < SLICE:
            return False
        self._since = now
        return True


class Entity(Protocol):
    """What a host needs of an entity (RoomActor, SkuActor, ... in liveshop/actors)."""

    async def start(self) -> None:
        """Load from PostgreSQL and start the entity's own loops."""

    async def stop(self) -> None:
        """Finish what is in flight, write what is unsaved, stop the loops."""

    def idle(self) -> bool:
        """Nothing keeps it resident: no unsaved state, no live holds, clocks or viewers."""


#: Builds an entity of one kind: (key, fence) -> entity, not yet started.
Factory = Callable[[str, Fence], Entity]
#: One call in a batch for a host (``call_many``): (key, method, args, kwargs).
ManyItem = tuple[str, str, tuple[Any, ...], dict[str, Any]]


class Moved(Unavailable):
    """The directory places this entity on another host: the caller looks it up again."""


class Claims(Protocol):
    async def claim(self, kind: str, key: str, host: str) -> Fence: ...


@dataclass
class Slot:
    kind: str
    key: str
    ready: asyncio.Future[Entity]
    fence: Fence | None = None
    calls: int = 0
    used: float = field(default_factory=time.monotonic)

    @property
    def started(self) -> Entity | None:
        """The entity once it started (None while activating, or if activation failed)."""
        ready = self.ready
        return ready.result() if ready.done() and ready.exception() is None else None


@dataclass
class HostStats:
    activations: Counter[str] = field(default_factory=Counter)
    passivations: Counter[str] = field(default_factory=Counter)
    failed_activations: Counter[str] = field(default_factory=Counter)
    fenced: Counter[str] = field(default_factory=Counter)
    moved: Counter[str] = field(default_factory=Counter)


class Host:
    def __init__(
        self,
        name: str,
        kinds: Mapping[str, Factory],
        claims: Claims,
        placement: Callable[[], Awaitable[Placement]],
        *,
        passivate_after: float,
        never_passivate: frozenset[str] = frozenset(),
    ) -> None:
        self.name = name
        self.kinds = kinds
        self.claims = claims
        self.placement = placement
        self.passivate_after = passivate_after
        self.never_passivate = never_passivate
        self.slots: dict[tuple[str, str], Slot] = {}
        #: Entities being stopped: a call for one waits until it is down, then activates it.
        self._stopping: dict[tuple[str, str], asyncio.Future[None]] = {}
        #: The directory every resident entity was last checked against (sweep).
        self._checked: Placement | None = None
        #: Entities called since the exporter last asked (``touched``).
        self._touched: set[tuple[str, str]] = set()
        self._resident: Counter[str] = Counter()
        self._calls = 0
        self.stats = HostStats()

    # -- calls --------------------------------------------------------------------------------

    async def call(
        self, kind: str, key: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if kind not in self.kinds or method.startswith("_"):
            raise InvalidRequest(f"no {kind}.{method} to call")
        slot = await self._slot(kind, key)
        slot.calls += 1
        self._calls += 1
        try:
            entity = await asyncio.shield(slot.ready)
            return await getattr(entity, method)(*args, **kwargs)
        except Fenced:
            self._lost(slot)
            raise
        finally:
            slot.calls -= 1
            self._calls -= 1
            slot.used = time.monotonic()
            ident = (kind, key)
            self._touched.add(ident)  # after the call: the entity has started (or failed)
            if self.slots.get(ident) is slot:
                # Slots stay in the order of their last use, so a sweep looks only at the
                # ones not used lately, not at all of a host's hundred thousand.
                del self.slots[ident]
                self.slots[ident] = slot
            if slot.fence is not None and slot.fence.lost:
                self._lost(slot)

    async def call_many(self, kind: str, items: list[ManyItem]) -> list[Any]:
        """Several calls to entities of one kind at once (a client's batch for this host),
        each ``(key, method, args, kwargs)``: one result per item, an error as a value that
        fails that item alone. Each entity still runs its own call; the batch only saves
        Ray calls."""

        async def one(key: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            try:
                return await self.call(kind, key, method, args, kwargs)
            except LiveshopError as exc:
                return exc
            except Exception as exc:
                log.exception("%s: %s %s.%s failed", self.name, kind, key, method)
                return InternalError(f"{kind}.{method} failed: {type(exc).__name__}")

        return list(await asyncio.gather(*(one(*item) for item in items)))

    async def tell(
        self, kind: str, key: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """:meth:`call` if the entity is resident (and started), else None: pushes between
        entities never activate the entity they push to."""
        slot = self.slots.get((kind, key))
        if slot is None or slot.started is None:
            return None
        return await self.call(kind, key, method, args, kwargs)

    async def entity(self, kind: str, key: str) -> Entity:
        """The entity itself, activated if need be (for tests and the host's own use)."""
        entity = await asyncio.shield((await self._slot(kind, key)).ready)
        self._touched.add((kind, key))  # its metrics are exported, called or not
        return entity

    async def _slot(self, kind: str, key: str) -> Slot:
        ident = (kind, key)
        while True:
            slot = self.slots.get(ident)
            if slot is not None:
                return slot
            stopping = self._stopping.get(ident)
            if stopping is None:
                break
            await asyncio.shield(stopping)
        placed = (await self.placement()).host(kind, key)
        if placed != self.name:
            self.stats.moved[kind] += 1
            raise Moved(f"{kind} {key} is hosted elsewhere, try again")
        slot = self.slots.get(ident)  # another call may have activated it meanwhile
        if slot is None:
            slot = Slot(kind, key, asyncio.get_running_loop().create_future())
            self.slots[ident] = slot
            self._resident[kind] += 1
            asyncio.get_running_loop().create_task(self._activate(slot))
        return slot

    async def _activate(self, slot: Slot) -> None:
        entity: Entity | None = None
        try:
            slot.fence = await self.claims.claim(slot.kind, slot.key, self.name)
            entity = self.kinds[slot.kind](slot.key, slot.fence)
            await entity.start()
        except BaseException as exc:
            self.stats.failed_activations[slot.kind] += 1
            if self.slots.pop((slot.kind, slot.key), None) is not None:
                self._resident[slot.kind] -= 1
            if entity is not None:
                with contextlib.suppress(Exception):
                    await entity.stop()
            if not isinstance(exc, LiveshopError):
                log.warning("%s: cannot activate %s %s: %r", self.name, slot.kind, slot.key, exc)
                exc = Unavailable(f"{slot.kind} {slot.key} could not start, try again")
            slot.ready.set_exception(exc)
            slot.ready.exception()  # retrieved: callers that left do not log it
            return
        self.stats.activations[slot.kind] += 1
        slot.used = time.monotonic()
        slot.ready.set_result(entity)

    # -- passivation --------------------------------------------------------------------------

    def _lost(self, slot: Slot) -> None:
        """Another host owns it now: drop it (its writes would fail anyway)."""
        if self.slots.get((slot.kind, slot.key)) is slot:
            self.stats.fenced[slot.kind] += 1
            log.warning("%s: %s %s was claimed by another host", self.name, slot.kind, slot.key)
            self._begin_stop(slot)

    def _begin_stop(self, slot: Slot) -> asyncio.Future[None]:
        ident = (slot.kind, slot.key)
        del self.slots[ident]
        self._resident[slot.kind] -= 1
        done = asyncio.get_running_loop().create_future()
        self._stopping[ident] = done

        async def stop() -> None:
            try:
                entity = slot.started
                if entity is not None:
                    async with asyncio.timeout(STOP_TIMEOUT):
                        # New calls wait for the stop (the slot is gone); the calls already
                        # in the entity finish first, so none is left waiting on a loop
                        # that stopped or decides on state nobody will save.
                        while slot.calls:
                            await asyncio.sleep(DRAIN_POLL)
                        await entity.stop()
                    self.stats.passivations[slot.kind] += 1
            except BaseException as exc:
                log.warning("%s: %s %s did not stop cleanly: %r", self.name, slot.kind,
                            slot.key, exc)  # fmt: skip
            finally:
                del self._stopping[ident]
                done.set_result(None)

        asyncio.get_running_loop().create_task(stop())
        return done

    async def passivate(self, kind: str, key: str) -> bool:
        """Stop one entity now (if resident): its next call activates it again."""
        slot = self.slots.get((kind, key))
        if slot is None or not slot.ready.done():
            return False
        await self._begin_stop(slot)
        return True

    async def sweep(self) -> int:
        """Passivate what may go: idle long enough, or placed elsewhere now. Returns how many.

        A host may hold a hundred thousand entities: slots are kept in the order of their last
        use, so a sweep stops at the first one used within ``passivate_after`` (every one
        after it was used since); placements are checked again, over all of them, only when
        the directory changed since the last sweep that checked them all; and the loop lets
        calls run every SLICE. (A full walk every few seconds took 50-100 ms of a host's loop
        at 55,000 carts: a burst of slow calls each time.)"""
        now = time.monotonic()
        try:
            placement: Placement | None = await self.placement()
        except Exception as exc:  # the directory is unreachable: keep everything for now
            log.warning("%s: directory unavailable: %r", self.name, exc)
            placement = None
        check = placement is not None and placement != self._checked
        unchecked = False  # a moved entity busy now: check them all again next time
        going: list[Slot] = []
        slices = Slices()
        for slot in list(self.slots.values()):
            if slices.due():
                await asyncio.sleep(0)
            if not check and now - slot.used < self.passivate_after:
                break
            entity = slot.started
            if entity is None:
                continue
            moved = (
                check and placement is not None and placement.host(slot.kind, slot.key) != self.name
            )
            if slot.calls:
                unchecked |= moved
                continue
            if moved:
                self.stats.moved[slot.kind] += 1
                going.append(slot)
            elif (
                slot.kind not in self.never_passivate
                and now - slot.used >= self.passivate_after
                and entity.idle()
            ):
                going.append(slot)
        if check and not unchecked:
            self._checked = placement
        # Only those still resident as they were (between chunks a call may have stopped one).
        going = [s for s in going if self.slots.get((s.kind, s.key)) is s]
        await asyncio.gather(*(self._begin_stop(s) for s in going))
        return len(going)

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("%s: passivation sweep failed", self.name)

    async def close(self) -> None:
        """Stop every entity (a host shutting down cleanly)."""
        await asyncio.gather(
            *(self._begin_stop(s) for s in list(self.slots.values()) if s.ready.done())
        )

    # -- what it holds ------------------------------------------------------------------------

    def resident(self) -> Counter[str]:
        """Entities in memory by kind (kept as counts: a host may hold 100,000)."""
        return +self._resident

    def touched(self) -> set[tuple[str, str]]:
        """The entities called since the last time this was asked."""
        touched, self._touched = self._touched, set()
        return touched

    def mailbox(self) -> int:
        """Calls accepted and not yet answered, over all entities."""
        return self._calls
