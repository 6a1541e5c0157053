"""The directory of entity hosts, as every caller and host sees it: read from PostgreSQL
(``entity_hosts``, written by `liveshop up` and when the cluster's ``actors`` units change)
at most every ``directory_ttl`` seconds, so a change reaches everyone within that."""

from __future__ import annotations

import asyncio
import logging
import time

from liveshop.config import Settings
from liveshop.mesh.placement import Placement
from liveshop.storage.owners import OwnerStore

log = logging.getLogger(__name__)

#: Hosts on a cluster that declares no ``actors`` units and names no count.
DEFAULT_HOSTS = 2


def configured(settings: Settings, units: float = 0.0) -> Placement:
    """The hosts `liveshop up` publishes: ``entity_hosts`` if set, else one per ``actors``
    unit the cluster declares, else DEFAULT_HOSTS; plus one per dedicated entity."""
    count = settings.entity_hosts or int(units) or DEFAULT_HOSTS
    return Placement.default(count, settings.dedicated_entities)


class Directory:
    def __init__(self, owners: OwnerStore, settings: Settings) -> None:
        self.owners = owners
        self.settings = settings
        self._current: Placement | None = None
        self._read_at = -1e18
        self._reading: asyncio.Future[Placement] | None = None

    def expire(self) -> None:
        """Read it again on next use (a host said an entity is placed elsewhere now)."""
        self._read_at = -1e18

    async def placement(self) -> Placement:
        if (
            self._current is not None
            and time.monotonic() - self._read_at < self.settings.directory_ttl
        ):
            return self._current
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read())
        reading = self._reading
        try:
            return await asyncio.shield(reading)
        finally:
            if self._reading is reading and reading.done():
                self._reading = None

    async def _read(self) -> Placement:
        try:
            rows = await self.owners.hosts()
        except Exception as exc:
            if self._current is None:
                raise
            # Keep placing by the last directory: hosts fence what it gets wrong.
            log.warning("entity directory unreadable, keeping the last one: %r", exc)
            return self._current
        self._current = Placement.of(rows) if rows else configured(self.settings)
        self._read_at = time.monotonic()
        return self._current
