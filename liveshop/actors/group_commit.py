"""Group commit for actors that decide in memory and must not answer before PostgreSQL has
the decision: callers wait for the next commit, which takes everything decided since the
previous one.

``take()`` drains what was decided (None when nothing was), ``save(batch)`` writes it in one
transaction, ``committed(batch)`` runs after a successful save, ``failed(exc)`` after a failed
one (the owner then treats its memory as stale). On failure every caller waiting for that
commit, and every caller who arrived meanwhile (their decisions may build on it), gets
``error``.

A commit refused for its *data* (PostgreSQL cannot store a value, a constraint fails — any
error that is neither an outage nor a ``stale`` conflict meaning memory is out of date) is
never retried as it was: its waiters, and those of the commits chained after it, get
:class:`CommitRefused`, and the owner decides their requests again one at a time
(:class:`OneByOne`), so the one request that cannot be stored is refused to its sender and
every other one commits.

``depth`` commits may be in flight at once (pipelining: the next batch's rows are written
while the previous transaction finishes). Then ``save`` must chain them: a transaction may
only commit after the one before it did, and must fail if that one failed (the SKU store
does it with a compare-and-set on a version the previous commit sets). Completions, and so
``committed`` and the answers, come in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from liveshop.errors import ClientError, InvalidRequest, LiveshopError, Unavailable
from liveshop.storage.pool import REFUSED_DATA_ERRORS, TRANSIENT_DB_ERRORS

log = logging.getLogger(__name__)

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741


class CommitRefused(Unavailable):
    """The commit holding your decision was refused for the data in it (not an outage):
    the owner decides the request again on its own (OneByOne). Never reaches a client."""


class EarlierCommitFailed(Exception):
    """This commit was chained after one that failed, so it rolled back too."""

    def __init__(self, root: Exception) -> None:
        super().__init__("an earlier commit failed")
        self.root = root


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
        stale: tuple[type[Exception], ...] = (),
    ) -> None:
        self._take = take
        self._save = save
        self._committed = committed
        self._failed = failed
        self._error = error
        #: Failures meaning "memory is out of date" (reload and retry), not "bad data".
        self._stale = stale
        self._waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(depth)
        #: The previous commit's task: each commit finishes after it (answers in order); its
        #: result is the root failure, or None.
        self._last: asyncio.Task[Exception | None] | None = None
        self._flying = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.commits = 0

    @property
    def in_flight(self) -> bool:
        return self._flying > 0

    async def idle(self) -> None:
        """Until no commit is in flight: an owner reloads from PostgreSQL only then, or a
        commit still writing could land on what it loads (or after it, on a version it
        reuses)."""
        await self._idle.wait()

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
            self._idle.clear()
            self._last = asyncio.get_running_loop().create_task(
                self._commit(batch, waiters, self._last)
            )

    def refused(self, exc: Exception) -> bool:
        """A failure that retrying the same data cannot cure. Not an outage, a conflict, nor
        an Unavailable of our own (Fenced: another host owns the entity now, and its callers
        must retry there, not be told their data is bad)."""
        return not isinstance(exc, (*TRANSIENT_DB_ERRORS, *self._stale, Unavailable))

    async def _commit(
        self,
        batch: T | None,
        waiters: list[asyncio.Future[None]],
        before: asyncio.Task[Exception | None] | None,
    ) -> Exception | None:
        """None when this commit (and every one before it) succeeded, else the first
        failure."""
        try:
            saving = asyncio.ensure_future(self._save(batch)) if batch is not None else None
            failed_before = None if before is None else await asyncio.shield(before)
            error: Exception | None = None
            if saving is not None:
                try:
                    await saving
                except Exception as exc:
                    error = exc
            if failed_before is not None:
                error = EarlierCommitFailed(failed_before)
            if error is not None:
                root = error.root if isinstance(error, EarlierCommitFailed) else error
                if failed_before is None or batch is not None:
                    # Every failed batch leaves memory ahead of PostgreSQL, also one chained
                    # after a failure that the owner may have reloaded from meanwhile.
                    self._failed(error)
                answer = CommitRefused(self._error.message) if self.refused(root) else self._error
                for fut in waiters + self._waiters:
                    if not fut.done():
                        fut.set_exception(answer)
                self._waiters = []
                return root
            if batch is not None:
                self.commits += 1
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
            if batch is not None:
                self._committed(batch)
            return None
        finally:
            self._flying -= 1
            if self._flying == 0:
                self._idle.set()
            self._slots.release()
            if self._last is asyncio.current_task():
                self._last = None


class OneByOne(Generic[I]):
    """Requests whose commit was refused for its data, decided again in smaller commits
    until the culprit is alone: halves, then halves of the half that fails (a bisection:
    about 2·log2(n) commits for one bad request among n). The culprit is refused to its
    sender (``invalid_request``); every other request commits. While it runs, new requests
    wait and then take the same path, so nothing is grouped with a request under
    suspicion."""

    def __init__(self, group: GroupCommit[Any], what: str) -> None:
        self.group = group
        self.what = what
        self._lock = asyncio.Lock()
        self.refusals = 0

    @property
    def active(self) -> bool:
        return self._lock.locked()

    async def run(
        self,
        items: Sequence[I],
        decide: Callable[[I], Any],
        prepare: Callable[[], Awaitable[None]],
    ) -> list[Any]:
        """``decide`` decides one item in memory (a client error refuses it alone);
        ``prepare`` runs before each attempt (the owner reloads there when a failed commit
        left its memory stale)."""
        async with self._lock:
            # Whatever was decided before is committed (or refused) first, on its own.
            with contextlib.suppress(LiveshopError):
                await self.group.wait()
            results: list[Any] = [None] * len(items)
            await self._settle(list(range(len(items))), items, decide, prepare, results)
            return results

    async def _settle(
        self,
        indexes: list[int],
        items: Sequence[I],
        decide: Callable[[I], Any],
        prepare: Callable[[], Awaitable[None]],
        results: list[Any],
    ) -> None:
        await prepare()
        decided: dict[int, Any] = {}
        for i in indexes:
            try:
                decided[i] = decide(items[i])
            except ClientError as exc:
                results[i] = exc
        try:
            await self.group.wait()
        except CommitRefused:
            # Every decision here is void (the owner reloads): decide them all again, in
            # halves, refusals included (they may have been refused for a void decision).
            if len(indexes) == 1:
                self.refusals += 1
                log.warning("%s refused a request PostgreSQL cannot store", self.what)
                results[indexes[0]] = InvalidRequest(
                    f"{self.what}: this request cannot be stored; nothing was done"
                )
                return
            half = len(indexes) // 2
            await self._settle(indexes[:half], items, decide, prepare, results)
            await self._settle(indexes[half:], items, decide, prepare, results)
            return
        except Unavailable as exc:  # an outage meanwhile: temporary for these
            for i in indexes:
                results[i] = exc
            return
        for i, result in decided.items():
            results[i] = result


def report_failure(who: str, exc: Exception) -> None:
    """Log a failed commit: an outage briefly, data PostgreSQL refused in one line (the
    request is refused on its own: no traceback per attempt), anything else with its
    traceback."""
    if isinstance(exc, EarlierCommitFailed):
        log.info("%s: a commit rolled back after the one before it failed", who)
        return
    if isinstance(exc, TRANSIENT_DB_ERRORS):
        log.warning("%s cannot commit: %s", who, exc)
    elif isinstance(exc, REFUSED_DATA_ERRORS):
        log.error("%s: PostgreSQL refused the data of a commit: %r", who, exc)
    else:
        log.error("%s failed to commit", who, exc_info=exc)


async def drain_and_stop(group: GroupCommit[Any], tasks: list[asyncio.Task[Any]]) -> None:
    """An entity with a group commit leaving memory: the commits in flight finish (their
    callers are waiting, and everything decided is then in PostgreSQL), then its loops
    stop."""
    with contextlib.suppress(Exception):
        await group.idle()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
