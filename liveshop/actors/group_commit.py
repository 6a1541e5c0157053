"""Group commit for actors that decide in memory and must not answer before PostgreSQL has
the decision: callers wait for the next commit, which takes everything decided since the
previous one.

``take()`` drains what was decided (None when nothing was), ``save(batch)`` writes it in one
transaction, ``committed(batch)`` runs after a successful save, ``failed(exc)`` after a failed
one (the owner then treats its memory as stale). On failure every caller waiting for that
commit, and every caller who arrived meanwhile (their decisions may build on it), gets
``error``.

``depth`` commits may be in flight at once (pipelining: the next batch's rows are written
while the previous transaction finishes). Then ``save`` must chain them: a transaction may
only commit after the one before it did, and must fail if that one failed (the SKU store
does it with a compare-and-set on a version the previous commit sets). Completions, and so
``committed`` and the answers, come in order.
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
        depth: int = 1,
    ) -> None:
        self._take = take
        self._save = save
        self._committed = committed
        self._failed = failed
        self._error = error
        self._waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(depth)
        #: The previous commit's task: each commit finishes after it (answers in order).
        self._last: asyncio.Task[bool] | None = None
        self._flying = 0
        self.commits = 0

    @property
    def in_flight(self) -> bool:
        return self._flying > 0

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
            await self._slots.acquire()
            self._wake.clear()
            waiters, self._waiters = self._waiters, []
            batch = self._take()
            if batch is None and not waiters:
                self._slots.release()
                continue
            self._flying += 1
            self._last = asyncio.get_running_loop().create_task(
                self._commit(batch, waiters, self._last)
            )

    async def _commit(
        self,
        batch: T | None,
        waiters: list[asyncio.Future[None]],
        before: asyncio.Task[bool] | None,
    ) -> bool:
        """True when this commit (and every one before it) succeeded."""
        try:
            saving = asyncio.ensure_future(self._save(batch)) if batch is not None else None
            ok_before = True if before is None else await asyncio.shield(before)
            error: Exception | None = None
            if saving is not None:
                try:
                    await saving
                except Exception as exc:
                    error = exc
            if error is None and not ok_before:
                error = RuntimeError("an earlier commit failed")
            if error is not None:
                if ok_before:  # report the first failure only
                    self._failed(error)
                for fut in waiters + self._waiters:
                    if not fut.done():
                        fut.set_exception(self._error)
                self._waiters = []
                return False
            if batch is not None:
                self.commits += 1
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
            if batch is not None:
                self._committed(batch)
            return True
        finally:
            self._flying -= 1
            self._slots.release()
            if self._last is asyncio.current_task():
                self._last = None


def report_failure(who: str, exc: Exception) -> None:
    """Log a failed commit: an outage briefly, anything else with its traceback."""
    if isinstance(exc, TRANSIENT_DB_ERRORS):
        log.warning("%s cannot commit: %s", who, exc)
    else:
        log.error("%s failed to commit", who, exc_info=exc)
