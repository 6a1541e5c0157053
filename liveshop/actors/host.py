"""The entity host: one Ray actor process hosting many rooms, SKUs, auctions, carts and
channels (liveshop/mesh/host.py holds the life cycle; this is its Ray shell).

Its entities share one bounded PostgreSQL pool, one Redis publisher and the clients they
push to each other with. It exports per host: entities resident by kind, activations,
passivations, fenced drops, mailbox depth and connections in use; and per room and SKU their
own gauges, for the ones that were used since the last export (and all of them every
minute), so ten thousand idle SKUs cost no work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import ray

from liveshop import gctune, metrics
from liveshop.actors.auction_actor import AuctionActor
from liveshop.actors.cart_actor import CartActor
from liveshop.actors.channel_actor import ChannelActor
from liveshop.actors.resources import Resources
from liveshop.actors.room_actor import RoomActor
from liveshop.actors.sku_actor import SkuActor
from liveshop.config import Settings
from liveshop.mesh.host import Entity, Factory, Host, ManyItem, Slices
from liveshop.mesh.hosts import hosts_for
from liveshop.mesh.room_client import RoomClient
from liveshop.mesh.sku_client import SkuClient
from liveshop.payments.cashier import Cashier
from liveshop.storage.auctions import AuctionStore
from liveshop.storage.broker import RedisPublisher
from liveshop.storage.channels import ChannelStore
from liveshop.storage.owners import Fence, OwnerStore
from liveshop.storage.pool import connect_retrying
from liveshop.storage.rooms import RoomStore
from liveshop.storage.skus import SkuStore

log = logging.getLogger(__name__)

#: The entity classes by kind.
KINDS: Mapping[str, type[Any]] = {
    "room": RoomActor,
    "sku": SkuActor,
    "auction": AuctionActor,
    "cart": CartActor,
    "channel": ChannelActor,
}
#: Channels run 24/7: a host keeps every channel placed on it running.
ALWAYS_ON = frozenset({"channel"})
#: Per-entity metrics: kind -> (tag, gauges, counters).
ENTITY_METRICS = {
    "room": ("room", metrics.ROOM_GAUGES, metrics.ROOM_COUNTERS),
    "sku": ("sku", metrics.SKU_GAUGES, metrics.SKU_COUNTERS),
}
#: Every entity's metrics are exported at least this often (seconds), used or not.
FULL_EXPORT_EVERY = 60.0
#: How often the host measures its event loop's lag, and what counts as a stall (seconds).
LAG_PROBE = 0.05
LAG_STALL = 0.02
#: How often a host looks for entities placed on it that must run without being called.
KEEP_RUNNING_EVERY = 10.0


def factories(res: Resources) -> dict[str, Factory]:
    """How a host builds each kind of entity over its shared resources."""

    def of(cls: type[Any]) -> Factory:
        def make(key: str, fence: Fence) -> Entity:
            entity: Entity = cls(key, res, fence)
            return entity

        return make

    return {kind: of(cls) for kind, cls in KINDS.items()}


class EntityHost:
    def __repr__(self) -> str:
        # The dashboard's "repr name" and the log prefix.
        return f"EntityHost({self.name})"

    async def __init__(self, name: str, settings: Settings) -> None:  # type: ignore[misc]
        assert settings.database_url and settings.redis_url
        self.name = name
        self.settings = settings
        self.pool = await connect_retrying(
            settings.database_url, max_size=settings.host_pool_size, who=name
        )
        self.res = Resources(
            host=name,
            settings=settings,
            pool=self.pool,
            publisher=RedisPublisher(settings.redis_url),
            rooms=RoomClient(settings, RoomStore(self.pool)),
            skus=SkuClient(settings, SkuStore(self.pool)),
            cashier=Cashier.using(settings, self.pool),
        )
        self.hosts = hosts_for(settings, self.pool)
        self.host = Host(
            name,
            factories(self.res),
            OwnerStore(self.pool),
            self.hosts.placement,
            passivate_after=settings.passivate_after,
            never_passivate=ALWAYS_ON,
        )
        self._exporters: dict[tuple[str, str], metrics.Exporter] = {}
        self._host_export = metrics.Exporter({"host": name}, metrics.HOST_GAUGES, {})
        self._kind_exports = {
            kind: metrics.Exporter(
                {"host": name, "kind": kind}, metrics.HOST_KIND_GAUGES, metrics.HOST_KIND_COUNTERS
            )
            for kind in KINDS
        }
        gctune.tune()
        self._long_lived = gctune.LongLived()
        self._gc = gctune.Pauses()
        #: Event-loop stalls over LAG_STALL (every entity here waited that long), and the
        #: longest: the tail latency of everything the host serves.
        self._stalls = 0
        self._longest_lag = 0.0
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.host.run(min(5.0, max(0.5, settings.passivate_after / 4)))),
            loop.create_task(self._export_loop()),
            loop.create_task(self._keep_running()),
            loop.create_task(self._watch_lag()),
            loop.create_task(self._long_lived.run()),
        ]
        log.info("%s up", name)

    # -- calls --------------------------------------------------------------------------------

    async def call(
        self, kind: str, key: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        return await self.host.call(kind, key, method, args, kwargs)

    async def call_many(self, kind: str, items: list[ManyItem]) -> list[Any]:
        return await self.host.call_many(kind, items)

    async def tell(
        self, kind: str, key: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        return await self.host.tell(kind, key, method, args, kwargs)

    async def passivate_matching(self, fragments: list[str]) -> int:
        """Passivate the resident entities whose ``kind:key`` holds any of ``fragments``
        (tests retire theirs; operators drain a show)."""
        going = [
            (kind, key)
            for kind, key in list(self.host.slots)
            if any(f in f"{kind}:{key}" for f in fragments)
        ]
        done = await asyncio.gather(*(self.host.passivate(k, key) for k, key in going))
        return sum(done)

    async def retire(self) -> int:
        """The directory no longer lists this host: once the directory read here says so,
        hand every entity over (each saves what it has), then leave for good."""
        while self.name in (await self.hosts.placement()).hosts:
            self.hosts.directory.expire()
            await asyncio.sleep(self.settings.directory_ttl)
        moved = len(self.host.slots)
        await self.host.close()
        log.info("%s retired, %d entities handed over", self.name, moved)
        asyncio.get_running_loop().call_later(0.5, self._exit)
        return moved

    def _exit(self) -> None:
        ray.kill(ray.get_runtime_context().current_actor, no_restart=True)

    async def stats(self) -> dict[str, Any]:
        stats = self.host.stats
        return {
            "host": self.name,
            "resident": dict(self.host.resident()),
            "activations": dict(stats.activations),
            "passivations": dict(stats.passivations),
            "failed_activations": dict(stats.failed_activations),
            "fenced": dict(stats.fenced),
            "moved": dict(stats.moved),
            **self._gauges(),
            "gc": {**self._gc.view(), "reclaims": self._long_lived.reclaims},
            "loop_lag": {"stalls": self._stalls, "longest": self._longest_lag},
        }

    async def ping(self) -> bool:
        """The host runs and reaches PostgreSQL (health)."""
        await self.pool.fetchval("SELECT 1")
        return True

    # -- background ---------------------------------------------------------------------------

    async def _keep_running(self) -> None:
        """Activate the entities placed here that must run without being called: channels
        (24/7), SKUs with holds to lapse or a deal to start or end, auctions not settled.
        After this host started (a restart), and whenever the directory hands it more."""
        channels, skus, auctions = (
            ChannelStore(self.pool), SkuStore(self.pool), AuctionStore(self.pool)
        )  # fmt: skip
        while True:
            try:
                placement = await self.hosts.placement()
                wanted = [("channel", i.channel_id) for i in await channels.list_channels()]
                wanted += [("sku", sku) for sku in await skus.timed(time.time())]
                wanted += [("auction", a) for a in await auctions.unsettled()]
                for kind, key in wanted:
                    if (
                        placement.host(kind, key) == self.name
                        and (kind, key) not in self.host.slots
                    ):
                        with contextlib.suppress(Exception):  # logged by the host
                            await self.host.entity(kind, key)
            except Exception as exc:
                log.warning("%s: cannot start its clocked entities yet: %r", self.name, exc)
            await asyncio.sleep(KEEP_RUNNING_EVERY)

    async def _watch_lag(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(LAG_PROBE)
            lag = time.monotonic() - started - LAG_PROBE
            if lag >= LAG_STALL:
                self._stalls += 1
                self._longest_lag = max(self._longest_lag, lag)

    async def _export_loop(self) -> None:
        full_at = time.monotonic()
        while True:
            await asyncio.sleep(metrics.EXPORT_INTERVAL)
            try:
                await self._export(full=time.monotonic() - full_at >= FULL_EXPORT_EVERY)
            except Exception:
                log.exception("%s: metrics export failed", self.name)
            if time.monotonic() - full_at >= FULL_EXPORT_EVERY:
                full_at = time.monotonic()

    def _gauges(self) -> dict[str, int]:
        """metrics.HOST_GAUGES, as they are now."""
        return {
            "mailbox": self.host.mailbox(),
            "db_connections": self.pool.get_size() - self.pool.get_idle_size(),
            "db_pool_size": self.pool.get_max_size(),
        }

    async def _export(self, *, full: bool) -> None:
        stats = self.host.stats
        self._host_export.export(self._gauges())
        resident = self.host.resident()
        for kind, exporter in self._kind_exports.items():
            exporter.export({
                "resident": resident.get(kind, 0),
                "activations": stats.activations[kind],
                "passivations": stats.passivations[kind],
                "failed_activations": stats.failed_activations[kind],
                "fenced": stats.fenced[kind],
            })  # fmt: skip
        # The rooms and SKUs called since the last export; all of them now and then (every
        # resident one was called, or activated by the host, once: it has an exporter).
        touched = self.host.touched()
        idents = {*self._exporters, *touched} if full else touched
        slices = Slices()
        for ident in list(idents):
            if slices.due():
                await asyncio.sleep(0)  # a hundred thousand entities: let calls run
            spec = ENTITY_METRICS.get(ident[0])
            slot = self.host.slots.get(ident)
            if spec is None or slot is None or (entity := slot.started) is None:
                continue
            if ident not in self._exporters:
                tag, gauges, counters = spec
                self._exporters[ident] = metrics.Exporter({tag: ident[1]}, gauges, counters)
            self._exporters[ident].export(entity.exported())  # type: ignore[attr-defined]
        if full:
            for ident in [i for i in self._exporters if i not in self.host.slots]:
                del self._exporters[ident]
