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


def start_hosts(settings: Settings, timeout: float = 120.0) -> Placement:
    """Publish the directory for this cluster and start every host in it (blocking; for
    `liveshop up`): one per ``actors`` unit (or ``entity_hosts``), plus the dedicated ones.
    Returns once each host answers."""
    from liveshop.mesh.directory import configured
    from liveshop.mesh.options import ACTOR_RESOURCE

    units = 0.0
    if ACTOR_RESOURCE in settings.placement:
        units = float(ray.cluster_resources().get(ACTOR_RESOURCE, 0))  # type: ignore[no-untyped-call]
        units -= len(settings.dedicated_entities)  # dedicated hosts take their units too
    placement = configured(settings, max(0.0, units))
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
