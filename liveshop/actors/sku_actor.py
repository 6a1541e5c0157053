"""The SKU actor: owns one :class:`~liveshop.commerce.inventory.Inventory`.

Group commit: a batch of buys and holds is decided at once, in memory; the decisions of every
batch that arrived meanwhile are written in one PostgreSQL transaction; then every buyer is
answered. Nobody hears "yes" before their decision is committed. If a commit fails (the
database went away, or an ambiguous commit), the callers of every decision not known to be
committed get ``unavailable`` and the actor reloads from PostgreSQL before it decides anything
else: the database, not memory, is the truth. A retry with the same idempotency key then gets
the stored answer if the decision had in fact committed, or a fresh decision if it had not.

After each commit the stock counter (and the flash deal) is pushed to every room that pins the
SKU's product, coalesced to one push per room per tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from liveshop import clock, metrics
from liveshop.actors.group_commit import (
    CommitRefused,
    EarlierCommitFailed,
    GroupCommit,
    OneByOne,
    drain_and_stop,
    report_failure,
)
from liveshop.actors.resources import Resources
from liveshop.commerce.inventory import Changes, Inventory, ReturnStock, SkuCommand
from liveshop.errors import ClientError, LiveshopError, Unavailable
from liveshop.storage.owners import Fence, Fenced
from liveshop.storage.pool import TRANSIENT_DB_ERRORS
from liveshop.storage.skus import ReturnAlreadyApplied, SkuStore, StaleVersion, Turn

log = logging.getLogger(__name__)

#: One commit: the SKU row, the changes, the view and counts after them, (version, next),
#: and its turn among the batches in flight.
Batch = tuple[dict[str, Any], Changes, dict[str, Any], dict[str, int], tuple[int, int], Turn]

#: The clock loop's longest sleep: hold expiry and deal start/end are seen within this.
CLOCK_INTERVAL = 0.25
PRUNE_INTERVAL = 60.0


class SkuActor:
    def __init__(self, sku: str, res: Resources, fence: Fence) -> None:
        self.sku = sku
        self.settings = res.settings
        self.res = res
        self.pool = res.pool
        self.store = SkuStore(self.pool, fence=fence)

    async def start(self) -> None:
        sku = self.sku
        self.watchers: set[str] = set(await self.store.watchers(sku))
        stored = await self.store.load(sku, now=clock.now())
        self.inventory = Inventory.restore(stored)
        #: The version the last batch taken will set (see SkuStore.save).
        self._version: int = stored.state["version"]
        self._turn: Turn | None = None
        self.group = GroupCommit(
            depth=2,
            take=self._take,
            save=self._save,
            committed=self._committed,
            failed=self._failed,
            error=Unavailable("stock could not be saved, try again with the same key"),
            stale=(StaleVersion, ReturnAlreadyApplied),
        )
        self.one_by_one: OneByOne[SkuCommand] = OneByOne(self.group, f"SKU {sku}")
        #: Set when a commit failed: memory may hold decisions PostgreSQL does not.
        self._stale = False
        self._reload_lock = asyncio.Lock()
        #: While requests are decided one by one (a commit was refused for its data): memory,
        #: version and applied returns as last committed, taken before each attempt. A
        #: refused attempt goes back to it instead of loading the SKU again (which reads
        #: every answer of the day: seconds per refusal under a stream of them).
        self._checkpoint: tuple[Inventory, int, set[str]] | None = None
        #: The view as of the last commit: what rooms are shown (never an uncommitted count).
        self._view = self.inventory.snapshot(clock.now())
        self._counts = self.inventory.counts()
        self._push_due = asyncio.Event()
        #: Set after each batch: it may have taken a hold or set a deal the clock must time.
        self._clock_wake = asyncio.Event()
        #: When the clock loop means to wake next (clock time).
        self._clock_until = 0.0
        #: Stock returns applied by this incarnation (a return is never applied twice).
        self._returned: set[str] = set()
        self._returns_lock = asyncio.Lock()
        self.decisions = 0
        self.batches = 0
        #: Calls accepted and not yet answered (waiting for their group commit, mostly).
        self.calls = 0
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.group.run()),
            loop.create_task(self._clock_loop()),
            loop.create_task(self._push_loop()),
            loop.create_task(self.take_returns()),
        ]
        if self.watchers:
            self._push_due.set()
        log.info("SKU %s loaded: %s", sku, self.inventory.counts())

    async def stop(self) -> None:
        await drain_and_stop(self.group, self._tasks)

    def idle(self) -> bool:
        """No holds or returns pending, no deal to start or end, nothing unsaved or unsent:
        the SKU's clock has nothing to do, so it may leave memory."""
        inventory = self.inventory
        return (
            not self.calls
            and not self._stale
            and not inventory.changes
            and not self.group.in_flight
            and not self._push_due.is_set()
            and inventory.next_due(clock.now()) is None  # no hold to lapse, no deal to come
        )

    def __repr__(self) -> str:
        # The dashboard's "repr name" and the log prefix: find a SKU's actor by its id.
        return f"SkuActor(sku={self.sku})"

    # -- calls from gateways and the API ------------------------------------------------------

    async def handle(self, batch: list[SkuCommand]) -> list[dict[str, Any] | LiveshopError]:
        """Decide a batch; answer once every decision in it is committed."""
        self.calls += 1
        try:
            return await self._handle(batch)
        finally:
            self.calls -= 1

    async def _handle(self, batch: list[SkuCommand]) -> list[dict[str, Any] | LiveshopError]:
        self.batches += 1
        self.decisions += len(batch)
        if self._stale:
            await self._reload()
        # After any await: a bisection under way takes this batch too (decided from here on
        # without awaiting, so nothing joins a commit under suspicion).
        if self.one_by_one.active:
            return await self._one_by_one(batch)
        now = clock.now()
        inventory = self.inventory
        results: list[dict[str, Any] | LiveshopError] = []
        for cmd in batch:
            try:
                results.append(inventory.apply(cmd, now))
            except ClientError as exc:
                results.append(exc)
        self._time_changes(now)
        # A replayed answer may belong to the commit in flight: wait for it as well.
        if inventory.changes or self.group.in_flight:
            try:
                await self.group.wait()
            except CommitRefused:
                # Something in the commit cannot be stored: these decisions are void (the
                # actor reloads); decide them again alone, so only the culprit is refused.
                return await self._one_by_one(batch)
        return results

    async def _one_by_one(self, batch: list[SkuCommand]) -> list[dict[str, Any] | LiveshopError]:
        async def prepare() -> None:
            while True:
                if self._stale:
                    await self._reload()
                await self.group.idle()
                if not self._stale:  # idle and current: memory is what PostgreSQL holds
                    break
            self._checkpoint = (self.inventory.copy(), self._version, set(self._returned))

        try:
            return await self.one_by_one.run(
                batch, lambda cmd: self.inventory.apply(cmd, clock.now()), prepare
            )
        finally:
            self._time_changes(clock.now())

    async def take_returns(self) -> int:
        """Put back the units of cancelled or returned orders owed to this SKU (the
        canceller pokes; the API's reconciler pokes SKUs with returns left waiting, in case a
        poke was lost); answers once committed."""
        async with self._returns_lock:
            if self._stale:
                await self._reload()
            due = [r for r in await self.store.returns_due(self.sku) if r[0] not in self._returned]
            now = clock.now()
            for ref, buyer_id, quantity, deal_id in due:
                try:
                    self.inventory.apply(ReturnStock(ref, buyer_id, quantity, deal_id), now)
                except ClientError:
                    log.exception("SKU %s cannot take back %s", self.sku, ref)
                    continue
                self._returned.add(ref)
            if due:
                await self.group.wait()
            return len(due)

    async def view(self) -> dict[str, Any]:
        """The committed counter, deal and counts, for services and operators."""
        return {**self._view, **self._counts, "watchers": sorted(self.watchers)}

    async def views(self, batch: list[None]) -> list[dict[str, Any]]:
        """:meth:`view` for a batch of readers (viewers asking at once: one call)."""
        view = await self.view()
        return [view] * len(batch)

    async def watch(self, room_id: str) -> dict[str, Any]:
        """A room pinned this SKU's product: push it the counter now and after each change."""
        if room_id not in self.watchers:
            await self.store.watch(self.sku, room_id)
            self.watchers.add(room_id)
        self._push_due.set()
        return self._view

    async def stats(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "batches": self.batches,
            "decisions": self.decisions,
            "commits": self.group.commits,
            "calls": self.calls,
            **self.inventory.counts(),
        }

    def exported(self) -> dict[str, int]:
        # Committed counts only, like the counter rooms are shown.
        return {**self._counts, "decisions": self.decisions, "batches": self.batches,
                "calls": self.calls}  # fmt: skip

    # -- group commit -------------------------------------------------------------------------

    def _take(self) -> Batch | None:
        """What to commit, with the view and counts it leads to (shown once committed) and
        the versions that chain it to the batch before."""
        changes = self.inventory.drain()
        if not changes or self._stale:
            # Stale: decided on top of a failed commit, so void (their callers were told
            # so): never written. The reload brings memory back to PostgreSQL.
            return None
        inventory = self.inventory
        version = (self._version, self._version + 1)
        self._version += 1
        turn = Turn(self._turn.mine if self._turn is not None else None)
        self._turn = turn
        return (
            inventory.row(), changes, inventory.snapshot(clock.now()), inventory.counts(),
            version, turn,
        )  # fmt: skip

    async def _save(self, batch: Batch) -> None:
        started = time.perf_counter()
        await self.store.save(batch[0], batch[1], version=batch[4], turn=batch[5])
        metrics.commit_seconds("sku", time.perf_counter() - started)

    def _committed(self, batch: Batch) -> None:
        self._checkpoint = None  # PostgreSQL moved past it
        _, _, view, self._counts, _, _ = batch
        if view != self._view:
            self._view = view
            self._push_due.set()

    def _failed(self, exc: Exception) -> None:
        """Every decision since the last good commit is void: reload before deciding again."""
        report_failure(f"SKU {self.sku}", exc)
        self._stale = True
        root = exc.root if isinstance(exc, EarlierCommitFailed) else exc
        if not self.group.refused(root):
            # An outage or a conflict: PostgreSQL may hold more than the checkpoint.
            self._checkpoint = None

    async def _reload(self) -> None:
        async with self._reload_lock:
            if not self._stale:
                return
            await self.group.idle()  # a chained commit still writing would race the load
            if self._checkpoint is not None:
                # Only refusals since it was taken: nothing after it reached PostgreSQL.
                self.inventory, self._version, self._returned = self._checkpoint
                self._checkpoint = None
                self._turn = None
                self._stale = False
                return
            try:
                stored = await self.store.load(self.sku, now=clock.now())
            except TRANSIENT_DB_ERRORS:
                raise Unavailable("stock is unavailable, try again") from None
            self.inventory = Inventory.restore(stored)
            self._version = stored.state["version"]
            self._turn = None
            self._returned.clear()  # what memory applied but PostgreSQL did not is due again
            self._stale = False
            self._view = self.inventory.snapshot(clock.now())
            self._counts = self.inventory.counts()
            self._push_due.set()
            self._time_changes(clock.now())
            log.info("SKU %s reloaded: %s", self.sku, self.inventory.counts())

    # -- time: hold expiry, deal start and end, old answers -----------------------------------

    async def _clock_loop(self) -> None:
        """Sleeps until the inventory's next timed change (a hold lapsing, the deal starting
        or ending) or a batch that may have set one: ten thousand SKUs at rest in one host
        cost nothing between their answer prunes."""
        pruned_at = time.monotonic()
        phase = self._deal_phase()
        while True:
            due = self.inventory.next_due(clock.now())
            wait = PRUNE_INTERVAL if due is None else due - clock.now()
            if self._stale:
                wait = CLOCK_INTERVAL
            wait = min(PRUNE_INTERVAL, max(CLOCK_INTERVAL, wait))
            self._clock_until = clock.now() + wait
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._clock_wake.wait(), wait)
            self._clock_wake.clear()
            self._clock_until = 0.0  # awake: nothing to wake it for
            if self._stale:
                # Reload here too: holds must expire and deals start even if nobody buys.
                with contextlib.suppress(Unavailable):
                    await self._reload()
                continue
            now = clock.now()
            if self.inventory.expire(now):
                self.group.poke()
            if time.monotonic() - pruned_at >= PRUNE_INTERVAL:
                self.inventory.prune_answers(now)
                pruned_at = time.monotonic()
            if self._deal_phase() != phase:
                phase = self._deal_phase()
                self._view = {**self._view, "deal": self.inventory.snapshot(now)["deal"]}
                self._push_due.set()

    def _time_changes(self, now: float) -> None:
        """Wake the clock if what was just decided is due before it means to wake."""
        due = self.inventory.next_due(now)
        if due is not None and due < self._clock_until:
            self._clock_wake.set()

    def _deal_phase(self) -> str | None:
        deal = self.inventory.deal
        return deal.phase(clock.now()) if deal is not None else None

    # -- pushes to rooms ----------------------------------------------------------------------

    async def _push_loop(self) -> None:
        while True:
            await self._push_due.wait()
            await asyncio.sleep(self.settings.tick_interval)  # coalesce a tick of changes
            self._push_due.clear()
            view = self._view
            if not self.watchers:
                continue
            try:
                await self._push(view)
            except Exception:
                log.exception("SKU %s could not push its counter", self.sku)

    async def _push(self, view: dict[str, Any]) -> None:
        for room_id in list(self.watchers):
            try:
                reply = await self.res.rooms.tell(room_id, "stock", view)
            except LiveshopError as exc:
                log.info("SKU %s could not reach room %s: %r", self.sku, room_id, exc)
                continue
            if reply is None:
                continue  # not resident: it reads the counter when it loads
            if not reply.get("watching"):
                # The room pins something else now: only that clear "no" drops it.
                self.watchers.discard(room_id)
                with contextlib.suppress(Fenced, *TRANSIENT_DB_ERRORS):
                    await self.store.unwatch(self.sku, room_id)
