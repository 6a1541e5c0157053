"""Group commit for actors that decide in memory and must not answer before PostgreSQL has
the decision: callers wait for the next commit; one commit is in flight at a time and takes
everything decided since the previous one.

``take()`` drains what was decided (None when nothing was), ``save(batch)`` writes it in one
transaction, ``committed(batch)`` runs after a successful save, ``failed(exc)`` after a failed
one (the owner then treats its memory as stale). On failure every caller waiting for that
commit, and every caller who arrived meanwhile (their decisions may build on it), gets
``error``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from liveshop.errors import LiveshopError
from liveshop.storage.pool import TRANSIENT_DB_ERRORS

log = logging.getLogger(__name__)

T = TypeVar("T")


class GroupCommit(Generic[T]):
    def __init__(
        self,
        *,
        take: Callable[[], T | None],
        save: Callable[[T], Awaitable[None]],
        committed: Callable[[T], None],
        failed: Callable[[Exception], None],
        error: LiveshopError,
    ) -> None:
        self._take = take
        self._save = save
        self._committed = committed
        self._failed = failed
        self._error = error
        self._waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self.in_flight = False
        self.commits = 0

    def wait(self) -> asyncio.Future[None]:
        """Resolves once everything decided before this call is committed."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._wake.set()
        return fut

    def poke(self) -> None:
        """Something was decided that nobody waits for (an expiry): commit it soon."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            waiters, self._waiters = self._waiters, []
            batch = self._take()
            if batch is None and not waiters:
                continue
            self.in_flight = True
            try:
                if batch is not None:
                    await self._save(batch)
                    self.commits += 1
            except Exception as exc:
                self._failed(exc)
                for fut in waiters + self._waiters:
                    if not fut.done():
                        fut.set_exception(self._error)
                self._waiters = []
                continue
            finally:
                self.in_flight = False
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
            if batch is not None:
                self._committed(batch)


def report_failure(who: str, exc: Exception) -> None:
    """Log a failed commit: an outage briefly, anything else with its traceback."""
    if isinstance(exc, TRANSIENT_DB_ERRORS):
        log.warning("%s cannot commit: %s", who, exc)
    else:
        log.error("%s failed to commit", who, exc_info=exc)
