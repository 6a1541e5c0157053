"""The auction actor: owns one :class:`~liveshop.commerce.auction.Auction`.

Bids are decided in memory in arrival order, written in one transaction per group of batches
(group commit) and only then answered; the live view (price, leader, clock, recent bids) is
pushed to the auction's room once per tick. When the clock runs out the actor settles, each
step durable and idempotent so a restart picks up where it stopped: the result and, for a
sale, the winner's order on the held unit (one transaction); the SKU commits the held unit to
that order (or releases it when nothing was sold); then a payment attempt with the winner's
newest saved payment method. A failed payment leaves the order pending for the winner to pay
(unpaid orders are cancelled after the payment window and the unit goes back on sale).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from liveshop import clock
from liveshop.actors.group_commit import (
    CommitRefused,
    GroupCommit,
    OneByOne,
    drain_and_stop,
    report_failure,
)
from liveshop.actors.resources import Resources
from liveshop.commerce.auction import Auction, BidPlaced
from liveshop.commerce.inventory import Commit, Release
from liveshop.errors import (
    AuctionNotFound,
    ClientError,
    LiveshopError,
    ReservationNotFound,
    Unavailable,
)
from liveshop.storage.auctions import AuctionStore
from liveshop.storage.owners import Fence
from liveshop.storage.pool import TRANSIENT_DB_ERRORS

log = logging.getLogger(__name__)

#: How often the clock is looked at: the end is seen within this (the snipe drill needs it
#: well under the extension window).
CLOCK_INTERVAL = 0.05
#: A bid as gateways batch it: (bidder, amount, max_amount, key, room it is made in).
Bid = tuple[str, int, int | None, str, str | None]


class AuctionActor:
    def __repr__(self) -> str:
        # The dashboard's "repr name" and the log prefix (see RoomActor.__repr__).
        return f"AuctionActor(auction={self.auction_id})"

    def __init__(self, auction_id: str, res: Resources, fence: Fence) -> None:
        self.auction_id = auction_id
        self.settings = res.settings
        self.res = res
        self.pool = res.pool
        self.store = AuctionStore(self.pool, fence=fence)

    async def start(self) -> None:
        auction_id = self.auction_id
        self.stored = await self.store.load(auction_id)
        self.auction = Auction.replay(self.stored.terms, self.stored.bids, self.stored.ended)
        self.cashier = self.res.cashier
        self._stale = False
        self._reload_lock = asyncio.Lock()
        self.group: GroupCommit[tuple[list[BidPlaced], dict[str, Any]]] = GroupCommit(
            take=self._take,
            save=lambda batch: self.store.save_bids(self.auction_id, *batch),
            committed=self._committed,
            failed=self._failed,
            error=Unavailable("the bid could not be saved, try again with the same key"),
        )
        self.one_by_one: OneByOne[Bid] = OneByOne(self.group, f"auction {auction_id}")
        self._push_due = asyncio.Event()
        self._push_due.set()
        self._shown: dict[str, Any] | None = None
        #: The view as of the last commit: viewers never see a bid that is not durable.
        self._committed_view = self.auction.view(clock.now())
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.group.run()),
            loop.create_task(self._clock_loop()),
            loop.create_task(self._push_loop()),
        ]

    async def stop(self) -> None:
        await drain_and_stop(self.group, self._tasks)

    def idle(self) -> bool:
        """Settled to the end (result, unit and payment), nothing unsaved or unshown."""
        stored = self.stored
        return (
            stored.ended
            and stored.stock_done
            and stored.payment_done
            and not self._stale
            and not self.auction.pending
            and not self.group.in_flight
            and not self._push_due.is_set()
        )

    # -- calls from gateways and the API ------------------------------------------------------

    async def handle(self, batch: list[Bid]) -> list[dict[str, Any] | LiveshopError]:
        """A batch of ``(bidder, amount, max_amount, key, room)``; answered once committed.
        ``room`` is where the bid is made: only the auction's own room takes its bids."""
        if self._stale:
            await self._reload()
        if self.one_by_one.active:  # after the await: see SkuActor._handle
            return await self._one_by_one(batch)
        results: list[dict[str, Any] | LiveshopError] = []
        for bid in batch:
            try:
                results.append(self._bid(bid))
            except ClientError as exc:
                results.append(exc)
        if self.auction.pending or self.group.in_flight:
            try:
                await self.group.wait()
            except CommitRefused:  # see SkuActor._handle: the culprit alone is refused
                return await self._one_by_one(batch)
        return results

    def _bid(self, bid: Bid) -> dict[str, Any]:
        bidder, amount, max_amount, key, room_id = bid
        if room_id is not None and room_id != self.stored.room_id:
            raise AuctionNotFound(f"no auction {self.auction_id!r} in room {room_id!r}")
        return self.auction.bid(bidder, amount, max_amount, key, clock.now())

    async def _one_by_one(self, batch: list[Bid]) -> list[dict[str, Any] | LiveshopError]:
        async def prepare() -> None:
            if self._stale:
                await self._reload()

        return await self.one_by_one.run(batch, self._bid, prepare)

    async def view(self) -> dict[str, Any]:
        view = self.auction.view(clock.now())
        return {**view, "room_id": self.stored.room_id, "sku": self.stored.sku,
                "result": self.auction.result() if self.auction.ended else None,
                "order": self.stored.order_id}  # fmt: skip

    def _take(self) -> tuple[list[BidPlaced], dict[str, Any]] | None:
        bids = self.auction.drain()
        if not bids or self._stale:  # void bids (see SkuActor._take): never written
            return None
        return bids, self.auction.view(clock.now())

    def _committed(self, batch: tuple[list[BidPlaced], dict[str, Any]]) -> None:
        self._committed_view = batch[1]
        self._push_due.set()

    async def _shown_view(self) -> dict[str, Any]:
        if self.auction.pending or self.group.in_flight:
            return {**self._committed_view, "room_id": self.stored.room_id, "sku": self.stored.sku}
        return await self.view()

    async def views(self, batch: list[None]) -> list[dict[str, Any]]:
        """:meth:`view` for a batch of readers (a room full of bidders: one call)."""
        view = await self.view()
        return [view] * len(batch)

    # -- failures -----------------------------------------------------------------------------

    def _failed(self, exc: Exception) -> None:
        report_failure(f"auction {self.auction_id}", exc)
        self._stale = True

    async def _reload(self) -> None:
        """Memory back to PostgreSQL after a failed commit: one reload at a time (the clock
        loop and bidders both ask), and only once no commit is in flight, so a load never
        misses a bid being written nor restores a snapshot older than one."""
        async with self._reload_lock:
            if not self._stale:
                return
            await self.group.idle()
            try:
                self.stored = await self.store.load(self.auction_id)
            except TRANSIENT_DB_ERRORS:
                raise Unavailable("the auction is unavailable, try again") from None
            self.auction = Auction.replay(self.stored.terms, self.stored.bids, self.stored.ended)
            self._stale = False
            self._push_due.set()

    # -- the clock and the end ----------------------------------------------------------------

    async def _clock_loop(self) -> None:
        phase = None
        while True:
            try:
                if self._stale:
                    # A failed commit near the end: reload here too, or an auction nobody
                    # bids on again would never close (and never settle).
                    try:
                        await self._reload()
                    except Unavailable:  # PostgreSQL away: try again in a second
                        await asyncio.sleep(1.0)
                        continue
                if self.auction.ended:
                    await self._finish()
                    if self.stored.stock_done and self.stored.payment_done:
                        return
                elif not self._stale and clock.now() >= self.auction.ends_at:
                    await self._close()
                current = self.auction.phase(clock.now())
                if current != phase:
                    phase = current
                    self._push_due.set()
            except Exception:
                log.exception("auction %s: settling failed; retrying", self.auction_id)
                await asyncio.sleep(1.0)
            await asyncio.sleep(CLOCK_INTERVAL)

    async def _close(self) -> None:
        # Bids decided before the end are committed first; one of them may have extended it.
        await self.group.wait()
        if clock.now() < self.auction.ends_at:
            return
        result = self.auction.close(clock.now())
        if result is None:
            return
        try:
            order_id = await self.store.settle(
                self.auction_id, result, room_id=self.stored.room_id, sku=self.stored.sku,
                reservation_id=self.stored.reservation_id,
                product_id=await self._product_id(), at=clock.now(),
            )  # fmt: skip
        except Exception:
            self.auction.ended = False  # not durable: try again
            raise
        self.stored.ended, self.stored.order_id = True, order_id
        log.info("auction %s ended: %s", self.auction_id, result)
        self._push_due.set()

    async def _product_id(self) -> str:
        product_id: str = await self.pool.fetchval(
            "SELECT product_id FROM skus WHERE id = $1", self.stored.sku
        )
        return product_id

    async def _finish(self) -> None:
        """After the end: the held unit goes to the order (or back), then the payment."""

        stored = self.stored
        if not stored.stock_done:
            rid = stored.reservation_id
            command = Commit(rid, stored.order_id) if stored.order_id else Release(rid)
            [outcome] = await self.res.skus.batch(stored.sku, [command])
            if isinstance(outcome, LiveshopError) and not isinstance(outcome, ReservationNotFound):
                raise outcome
            # ReservationNotFound: committed (or released) by an earlier incarnation.
            await self.store.mark(self.auction_id, stock_done=True)
            stored.stock_done = True
        if not stored.payment_done:
            if stored.order_id is not None:
                result = self.auction.result()
                with contextlib.suppress(ClientError):  # no saved card, declined: pay later
                    await self.cashier.pay(
                        stored.order_id, result["winner"], None, f"auction:{self.auction_id}"
                    )
            await self.store.mark(self.auction_id, payment_done=True)
            stored.payment_done = True

    # -- pushes to the room -------------------------------------------------------------------

    async def _push_loop(self) -> None:

        while True:
            await self._push_due.wait()
            await asyncio.sleep(self.settings.tick_interval)  # coalesce a tick of bids
            self._push_due.clear()
            view = await self._shown_view()
            if view == self._shown:
                continue
            try:
                # The room is live while its auction runs: the push activates it if need be.
                await self.res.rooms.call(self.stored.room_id, "auction", view)
                self._shown = view
            except Exception as exc:  # the room restarts: show it again later
                log.info("auction %s could not reach its room: %r", self.auction_id, exc)
                await asyncio.sleep(0.5)
                self._push_due.set()
