"""How a process reaches entities: the directory places ``kind:key`` on a host; the host's
Ray actor is looked up once and cached; an :class:`EntityHandle` carries calls to it. One
``Hosts`` per process and database pool. (Starting hosts is liveshop/actors/hosting.py's.)"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import ray

from liveshop.config import NAMESPACE, Settings
from liveshop.errors import Unavailable
from liveshop.mesh.directory import Directory
from liveshop.mesh.handle import EntityHandle
from liveshop.mesh.placement import Placement
from liveshop.storage.owners import OwnerStore
from liveshop.storage.pool import create_pool

log = logging.getLogger(__name__)

#: How long a host may take to answer a health check or stats (seconds).
HEALTH_TIMEOUT = 3.0


def get_host(name: str) -> Any | None:
    """The running host ``name`` (blocking GCS lookup), or None."""
    try:
        return ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        return None


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
        """The host's Ray actor (looked up once per process; concurrent first lookups share
        one GCS call). Hosts are started by `liveshop up` and the API's keeper
        (liveshop/actors/hosting.py), and Ray restarts them: one that is not running is
        ``unavailable`` here, never started by a caller."""
        handle = self._hosts.get(name)
        if handle is not None:
            return handle
        pending = self._lookups.get(name)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(get_host, name))
            self._lookups[name] = pending
            pending.add_done_callback(lambda _: self._lookups.pop(name, None))
        handle = await asyncio.shield(pending)
        if handle is None:
            raise Unavailable(f"entity host {name} is not running, try again")
        self._hosts[name] = handle
        return handle

    async def ask_all(self, method: str) -> dict[str, Any]:
        """``method`` of every host in the directory, at once: its answer, or the exception
        (a host not running or not answering within HEALTH_TIMEOUT)."""
        names = (await self.placement()).hosts

        async def one(name: str) -> Any:
            try:
                handle = await self.host(name)
                return await asyncio.wait_for(getattr(handle, method).remote(), HEALTH_TIMEOUT)
            except Exception as exc:
                return exc

        return dict(zip(names, await asyncio.gather(*(one(n) for n in names)), strict=True))

    async def stats(self) -> list[dict[str, Any]]:
        """Every host's stats (EntityHost.stats), or ``{"host", "error"}`` for one that does
        not answer."""
        return [
            {"host": name, "error": f"{type(r).__name__}: {r}"} if isinstance(r, Exception) else r
            for name, r in (await self.ask_all("stats")).items()
        ]

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


async def down(hosts: Hosts) -> list[str]:
    """The hosts in the directory that do not answer, or cannot reach PostgreSQL (their
    entities cannot start): what health reports instead of "ok". An unreadable directory
    counts as every host down."""
    try:
        answers = await hosts.ask_all("ping")
    except Exception:
        return ["directory"]
    return [name for name, r in answers.items() if isinstance(r, Exception)]


async def locate(settings: Settings, kind: str, key: str) -> str:
    """The name of the host ``kind:key`` is placed on now (for drills, tests and operators:
    kill a SKU's host during a sale, find a room's process)."""
    assert settings.database_url is not None
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        placement = await Directory(OwnerStore(pool), settings).placement()
    finally:
        await pool.close()
    return placement.host(kind, key)
