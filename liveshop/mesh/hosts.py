"""How a process reaches entities: the directory places ``kind:key`` on a host; the host's
Ray actor is looked up once (created if missing) and cached; an :class:`EntityHandle`
carries calls to it. One ``Hosts`` per process and database pool."""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
from typing import Any

import asyncpg
import ray

from liveshop.config import NAMESPACE, Settings
from liveshop.mesh.directory import Directory
from liveshop.mesh.handle import EntityHandle
from liveshop.mesh.options import HOST_ACTOR_OPTIONS, placed
from liveshop.mesh.placement import Placement
from liveshop.storage.owners import OwnerStore

log = logging.getLogger(__name__)


@functools.cache
def _host_class() -> Any:
    # The host actor lives above this layer (it runs the actors' entity classes), so the
    # class is looked up by name when a host must be created, never imported from here.
    return ray.remote(importlib.import_module("liveshop.actors.host").EntityHost)


def get_host(name: str) -> Any | None:
    """The running host ``name`` (blocking GCS lookup), or None."""
    try:
        return ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        return None


def create_host(name: str, settings: Settings) -> Any:
    """Get or create the detached host ``name`` (blocking GCS call)."""
    options = placed(HOST_ACTOR_OPTIONS, settings)
    return _host_class().options(name=name, get_if_exists=True, **options).remote(name, settings)


class Hosts:
    def __init__(self, settings: Settings, owners: OwnerStore) -> None:
        self.settings = settings
        self.directory = Directory(owners, settings)
        self._hosts: dict[str, Any] = {}
        self._lookups: dict[str, asyncio.Future[Any]] = {}

    async def placement(self) -> Placement:
        return await self.directory.placement()

    async def handle(self, kind: str, key: str) -> EntityHandle:
        name = (await self.directory.placement()).host(kind, key)
        return EntityHandle(await self.host(name), name, kind, key)

    async def host(self, name: str) -> Any:
        handle = self._hosts.get(name)
        if handle is not None:
            return handle
        pending = self._lookups.get(name)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(create_host, name, self.settings))
            self._lookups[name] = pending
            pending.add_done_callback(lambda _: self._lookups.pop(name, None))
        handle = await asyncio.shield(pending)
        self._hosts[name] = handle
        return handle

    async def existing(self, name: str) -> Any | None:
        """The host's handle if it exists (never creates it: health and stats only look)."""
        handle = self._hosts.get(name)
        if handle is None:
            handle = await asyncio.to_thread(get_host, name)
        return handle

    async def stats(self) -> list[dict[str, Any]]:
        """Every host's stats (EntityHost.stats), or ``{"host", "error"}`` for one that does
        not answer."""
        names = (await self.placement()).hosts

        async def one(name: str) -> dict[str, Any]:
            try:
                handle = await self.existing(name)
                if handle is None:
                    return {"host": name, "error": "not running"}
                stats: dict[str, Any] = await asyncio.wait_for(
                    handle.stats.remote(), HEALTH_TIMEOUT
                )
                return stats
            except Exception as exc:
                return {"host": name, "error": f"{type(exc).__name__}: {exc}"}

        return list(await asyncio.gather(*(one(n) for n in names)))

    def forget(self, name: str) -> None:
        """The host died for good (killed without restart): look it up anew next time."""
        self._hosts.pop(name, None)


#: Per pool (by id; asyncpg pools take no weak references): pools live as long as their
#: process, a handful per process.
_shared: dict[int, tuple[asyncpg.Pool, Hosts]] = {}


def hosts_for(settings: Settings, pool: asyncpg.Pool) -> Hosts:
    """This process's Hosts for ``pool`` (one directory cache and handle cache, shared by
    every client built on that pool)."""
    entry = _shared.get(id(pool))
    if entry is None or entry[0] is not pool:
        entry = _shared[id(pool)] = (pool, Hosts(settings, OwnerStore(pool)))
    return entry[1]


#: How long a host may take to answer a health check (seconds).
HEALTH_TIMEOUT = 3.0


async def down(hosts: Hosts) -> list[str]:
    """The hosts in the directory that do not answer, or cannot reach PostgreSQL (their
    entities cannot start): what health reports instead of "ok". Every host is asked at
    once; an unreadable directory counts as every host down."""
    try:
        names = (await hosts.placement()).hosts
    except Exception:
        return ["directory"]

    async def check(name: str) -> str | None:
        try:
            handle = await hosts.existing(name)
            if handle is None:
                return name
            await asyncio.wait_for(handle.ping.remote(), HEALTH_TIMEOUT)
            return None
        except Exception:
            return name

    return [n for n in await asyncio.gather(*(check(n) for n in names)) if n is not None]


async def _publish(settings: Settings, placement: Placement) -> None:
    from liveshop.storage.pool import create_pool

    assert settings.database_url is not None
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        rows: list[tuple[str, str | None]] = [(name, None) for name in placement.slots]
        rows += [(name, entity) for entity, name in placement.dedicated.items()]
        await OwnerStore(pool).publish_hosts(rows)
    finally:
        await pool.close()


def wanted(settings: Settings) -> Placement:
    """The hosts this cluster should run now (blocking GCS call): one per ``actors`` unit
    when the cluster declares them (minus the dedicated hosts' units), else
    ``entity_hosts`` or DEFAULT_HOSTS; plus one per dedicated entity."""
    from liveshop.mesh.directory import configured
    from liveshop.mesh.options import ACTOR_RESOURCE

    units = 0.0
    if ACTOR_RESOURCE in settings.placement:
        units = float(ray.cluster_resources().get(ACTOR_RESOURCE, 0))  # type: ignore[no-untyped-call]
        # Dedicated hosts take their units too; at least one slot whatever is left.
        units = max(1.0, units - len(settings.dedicated_entities))
    return configured(settings, units)


def start_hosts(settings: Settings, timeout: float = 120.0) -> Placement:
    """Publish the directory for this cluster and start every host in it (blocking; for
    `liveshop up`): one per ``actors`` unit (or ``entity_hosts``), plus the dedicated ones.
    Returns once each host answers."""
    placement = wanted(settings)
    asyncio.run(_publish(settings, placement))
    handles = [create_host(name, settings) for name in placement.hosts]
    ray.get([h.ping.remote() for h in handles], timeout=timeout)
    return placement


async def locate(settings: Settings, kind: str, key: str) -> str:
    """The name of the host ``kind:key`` is placed on now (for drills, tests and operators:
    kill a SKU's host during a sale, find a room's process)."""
    from liveshop.mesh.directory import configured
    from liveshop.storage.pool import create_pool

    assert settings.database_url is not None
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        rows = await OwnerStore(pool).hosts()
    finally:
        await pool.close()
    placement = Placement.of(rows) if rows else configured(settings)
    return placement.host(kind, key)


#: How often the API compares the hosts with the cluster's ``actors`` units (seconds).
KEEP_HOSTS_EVERY = 5.0


async def keep_hosts(settings: Settings, pool: asyncpg.Pool) -> None:
    """Hosts follow the cluster (run by each API replica; they agree, as they compute the
    same thing): a node joining with ``actors`` units adds hosts and the directory, and
    about 1/n of the entities move to them; a node leaving shrinks it, and the hosts no
    longer listed hand their entities over and leave. Entities move by passivation on the
    old host and activation on the new one, fenced, so none is written by both."""
    from liveshop.mesh.options import ACTOR_RESOURCE

    if ACTOR_RESOURCE not in settings.placement or settings.entity_hosts:
        return  # a fixed count: `liveshop up` published it
    owners = OwnerStore(pool)
    retiring: set[asyncio.Task[None]] = set()
    while True:
        await asyncio.sleep(KEEP_HOSTS_EVERY)
        try:
            placement = await asyncio.to_thread(wanted, settings)
            rows = await owners.hosts()
            if Placement.of(rows) == placement:
                continue
            for name in placement.hosts:  # up before anything is placed on them
                await asyncio.to_thread(create_host, name, settings)
            new_rows: list[tuple[str, str | None]] = [(n, None) for n in placement.slots]
            new_rows += [(n, e) for e, n in placement.dedicated.items()]
            await owners.publish_hosts(new_rows)
            log.info("entity hosts now %s", ", ".join(placement.hosts))
            for name, _ in rows:
                if name not in placement.hosts:
                    task = asyncio.ensure_future(_retire(name))
                    retiring.add(task)
                    task.add_done_callback(retiring.discard)
        except Exception as exc:
            log.warning("cannot match the entity hosts to the cluster: %r", exc)


#: How long a host no longer listed may take to hand its entities over (seconds).
RETIRE_TIMEOUT = 60.0


async def _retire(name: str) -> None:
    """Ask the host to hand its entities over and leave; one that cannot (it died with its
    node and waits for a unit it will not get) is killed instead."""
    handle = await asyncio.to_thread(get_host, name)
    if handle is None:
        return
    try:
        await asyncio.wait_for(handle.retire.remote(), RETIRE_TIMEOUT)
    except Exception as exc:
        log.info("host %s did not retire (%r): killed", name, exc)
        ray.kill(handle, no_restart=True)
