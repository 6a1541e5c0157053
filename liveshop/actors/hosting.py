"""Starting entity hosts and keeping their number matched to the cluster: `liveshop up`
publishes the directory and starts every host in it; each API replica then follows the
cluster's ``actors`` units (a node joining adds hosts, one leaving retires some). Here, above
the entity layer, because it creates :class:`~liveshop.actors.host.EntityHost` actors."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import ray

from liveshop.actors.host import EntityHost
from liveshop.config import Settings
from liveshop.mesh.directory import configured
from liveshop.mesh.hosts import get_host
from liveshop.mesh.options import ACTOR_RESOURCE, HOST_ACTOR_OPTIONS, placed
from liveshop.mesh.placement import Placement
from liveshop.storage.owners import OwnerStore
from liveshop.storage.pool import create_pool

log = logging.getLogger(__name__)

_HOST = ray.remote(EntityHost)


def create_host(name: str, settings: Settings) -> Any:
    """Get or create the detached host ``name`` (blocking GCS call)."""
    options = placed(HOST_ACTOR_OPTIONS, settings)
    return _HOST.options(name=name, get_if_exists=True, **options).remote(name, settings)


async def _publish(settings: Settings, placement: Placement) -> None:
    assert settings.database_url is not None
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        await OwnerStore(pool).publish_hosts(placement.rows())
    finally:
        await pool.close()


def wanted(settings: Settings) -> Placement:
    """The hosts this cluster should run now (blocking GCS call): one per ``actors`` unit
    when the cluster declares them (minus the dedicated hosts' units), else
    ``entity_hosts`` or DEFAULT_HOSTS; plus one per dedicated entity."""
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


#: How often the API compares the hosts with the cluster's ``actors`` units (seconds).
KEEP_HOSTS_EVERY = 5.0


async def keep_hosts(settings: Settings, pool: asyncpg.Pool) -> None:
    """Hosts follow the cluster (run by each API replica; they agree, as they compute the
    same thing): a node joining with ``actors`` units adds hosts and the directory, and
    about 1/n of the entities move to them; a node leaving shrinks it, and the hosts no
    longer listed hand their entities over and leave. Entities move by passivation on the
    old host and activation on the new one, fenced, so none is written by both."""
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
            await owners.publish_hosts(placement.rows())
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
