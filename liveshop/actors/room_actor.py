"""The room actor: owns one :class:`~liveshop.rooms.room.Room`.

Load on start, apply batches of commands, then once per tick: commit the tick's events and
state in one transaction (group commit), publish one message to Redis, answer the callers
whose events were in it. A caller hears "ok" only after its event is in PostgreSQL, and a
viewer sees an event only after it is in PostgreSQL, so a restart never takes back anything
anyone saw: the epoch only changes if the database itself loses data.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from typing import Any

import msgpack
from redis.exceptions import RedisError

from liveshop import clock, metrics
from liveshop.actors.group_commit import report_failure
from liveshop.actors.resources import Resources
from liveshop.config import Settings
from liveshop.errors import InvalidRequest, LiveshopError, Unavailable
from liveshop.rooms.automod import CHECKS, ChatCheck, Verdict
from liveshop.rooms.commands import (
    AuctionChanged,
    Chat,
    Command,
    GiftSent,
    Pin,
    Reply,
    SendGift,
    StockChanged,
    StreamChanged,
)
from liveshop.rooms.event import Event
from liveshop.rooms.gift import GiftReceipt
from liveshop.rooms.room import Room
from liveshop.storage.owners import Fence, Fenced
from liveshop.storage.pool import TRANSIENT_DB_ERRORS
from liveshop.storage.rooms import RoomStore
from liveshop.storage.skus import SkuStore
from liveshop.storage.wallets import WalletStore
from liveshop.tokens import STAFF_ROLES

log = logging.getLogger(__name__)

#: A state-only change (reaction totals, votes, entries, peak viewers) is persisted at most
#: this often.
STATE_SAVE_INTERVAL = 1.0
#: How long a pin waits for its stock counters (a SKU actor starting); later ones are pushed.
PIN_STOCK_WAIT = 3.0
#: Save failures that say nothing about the tick's data: an outage, or another host owns
#: the room now (Fenced). Never saved event by event, never counted as a stuck tick.
RETRYABLE: tuple[type[BaseException], ...] = (*TRANSIENT_DB_ERRORS, Fenced)
#: Why an event PostgreSQL refused was withdrawn (its sender hears it as invalid_request).
WITHDRAWN_REASON = "this message could not be stored"
#: Offsets of withdrawn events kept to refuse their senders (who are answered right after).
MAX_WITHDRAWN_REMEMBERED = 100_000
#: A tick that cannot be saved even event by event this many times in a row (a bug, not
#: one event's data) is saved with every event withdrawn: the room must move on.
MAX_STUCK_TICKS = 3


def tick_interval(settings: Settings, viewers: int) -> float:
    """How long a room gathers changes before it publishes one message.

    Every push costs one frame per viewer, so a big room publishes less often: from
    ``tick_viewers`` viewers on, the interval grows with the audience (up to ``max_tick``),
    keeping the frames per second the gateways send roughly constant.
    """
    base = settings.tick_interval
    if viewers <= settings.tick_viewers:
        return base
    return min(settings.max_tick, base * viewers / settings.tick_viewers)


def encode_room_message(
    room: Room, events: list[Event], state: dict[str, Any], sent: float
) -> bytes:
    """The one message per tick that gateways turn into a ``room`` push. ``sent`` (Unix
    seconds) is when it left the room: gateways measure publish-to-deliver latency with it."""
    message = {
        "room": room.info.room_id,
        "epoch": room.epoch,
        "events": [e.to_wire() for e in events],
        "state": state,
        "sent": sent,
    }
    packed: bytes = msgpack.packb(message, use_bin_type=True)
    return packed


class RoomActor:
    def __init__(self, room_id: str, res: Resources, fence: Fence) -> None:
        self.room_id = room_id
        self.settings = res.settings
        self.res = res
        self.publisher = res.publisher
        self.pool = res.pool
        self.fence = fence
        self.store = RoomStore(self.pool, fence=fence)
        self.wallets = WalletStore(self.pool)

    async def start(self) -> None:
        room_id, settings = self.room_id, self.settings
        stored = await self.store.load(room_id, history=settings.history_size)
        self.room = Room.restore(
            stored.info,
            epoch=stored.epoch,
            offset=stored.offset,
            state=stored.state,
            history=stored.history,
            history_size=settings.history_size,
            history_age=settings.history_age,
        )
        self._wake = asyncio.Event()
        #: Passivating: the tick loop saves what is left and ends.
        self._stopping = False
        self._apply_lock = asyncio.Lock()
        self.checker: ChatCheck | None = CHECKS[settings.automod]() if settings.automod else None
        self._waiters: list[asyncio.Future[None]] = []
        self._unsaved: list[Event] = []
        #: Offsets of events withdrawn because PostgreSQL refused them (insertion ordered).
        self._withdrawn: dict[int, None] = {}
        #: Ticks in a row that could not be saved even event by event (see _save).
        self._stuck = 0
        self._unsaved_gifts: list[tuple[int, int]] = []
        self._unsaved_state: dict[str, Any] = {}
        self._state_saved_at = 0.0
        self._saved_version = self.room.version
        #: The last offset committed to PostgreSQL.
        self._durable_offset = self.room.offset
        self.batches = 0
        self.commands = 0
        self.flushes = 0
        self.events = 0
        self.publish_errors = 0
        self.commit_errors = 0
        #: Calls accepted and not yet answered (most wait for the tick's commit).
        self.calls = 0
        # Gifts paid for while a previous incarnation died before publishing them.
        for receipt in await self.wallets.unpublished(room_id):
            self.room.apply(GiftSent(receipt), clock.now())
        loop = asyncio.get_running_loop()
        self._loop_task = loop.create_task(self._tick_loop())
        # Stock pushes never wake a passivated room: one coming back asks its pinned
        # product's SKUs for their counters now, instead of showing the ones it saved.
        self._refresh: asyncio.Task[None] | None = None
        if self.room.pinned is not None:
            self._refresh = loop.create_task(self._refresh_stock(self.room.pinned.product_id))
        log.info("room %s loaded at offset %d epoch %s", room_id, self.room.offset, self.room.epoch)

    async def stop(self) -> None:
        """Passivated or moved: stop ticking, then save and publish what the last tick had
        not (callers waiting on it are answered), so nothing anyone sent is left behind."""
        if self._refresh is not None:
            self._refresh.cancel()
        async with self._apply_lock:  # no command is applied after the last tick
            self._stopping = True
            self._wake.set()
            # Never cancelled mid-save: the loop ends after a tick that saved everything.
            await asyncio.gather(self._loop_task, return_exceptions=True)
        for fut in self._waiters:  # not saved (an outage, or fenced): the callers retry
            if not fut.done():
                fut.set_exception(Unavailable("the room moved, try again"))

    def idle(self) -> bool:
        return not self.calls and self._at_rest()

    def __repr__(self) -> str:
        # Ray shows this as the actor's "repr name" in the dashboard and prefixes its log
        # lines with it, so an SRE finds a room's actor by the room's id.
        return f"RoomActor(room={self.room_id})"

    # -- calls from gateways and the API -----------------------------------------------------

    async def handle(self, batch: list[Command]) -> list[Reply | LiveshopError]:
        """Apply a batch; answer once its events are durable (and published)."""
        self.calls += 1
        try:
            return await self._handle(batch)
        finally:
            self.calls -= 1

    async def _handle(self, batch: list[Command]) -> list[Reply | LiveshopError]:
        # Batches are applied one at a time, in arrival order, even though checking chat
        # (which may wait on a model) happens before applying.
        # A pin shows its stock in the same push: the counters are fetched first.
        stock = await self._stock_for_pins(batch)
        async with self._apply_lock:
            settled = await self._settle_gifts(await self._moderate(batch))
            results = self.room.apply_batch([*settled, *stock], clock.now())[: len(settled)]
        self.batches += 1
        self.commands += len(batch)
        if self.room.has_pending_events():
            await self._next_flush()
            return self._refuse_withdrawn(results)
        self._wake.set()
        return results

    async def stock(self, view: dict[str, Any]) -> Reply:
        """A SKU actor's counter for the pinned product; ``watching: false`` if the room
        no longer pins it."""
        return await self._from_actor(StockChanged(view))

    async def auction(self, view: dict[str, Any]) -> Reply:
        """An auction actor's live view of an auction held in this room."""
        return await self._from_actor(AuctionChanged(view))

    async def stream(self, view: dict[str, Any]) -> Reply:
        """The transcoder actor's view of the room's live stream."""
        return await self._from_actor(StreamChanged(view))

    async def activity(self, since: tuple[int, str] | None) -> dict[str, Any]:
        """Counters and chat/pin events for show analytics, and the stream (Room.activity)."""
        return self.room.activity(since, clock.now())

    async def _from_actor(self, command: Command) -> Reply:
        result = (await self.handle([command]))[0]
        if isinstance(result, LiveshopError):
            raise result
        return result

    async def _stock_for_pins(self, batch: list[Command]) -> list[Command]:
        """For the staff's pins in ``batch``: ask the product's SKUs to push their counters
        here from now on, and take their current counters, so that viewers never see a
        pinned product with no stock (``stock: {}``) while the first push is on its way."""
        products = {
            cmd.product.product_id
            for cmd in batch
            if isinstance(cmd, Pin) and self.room.is_staff(cmd.by)
        }
        views = await asyncio.gather(*(self._watch_skus(p) for p in products))
        return [StockChanged(view) for found in views for view in found]

    async def _refresh_stock(self, product_id: str) -> None:
        for view in await self._watch_skus(product_id):
            try:
                await self._from_actor(StockChanged(view))
            except LiveshopError as exc:
                log.info("room %s: stock counter not refreshed: %r", self.room_id, exc)

    async def _watch_skus(self, product_id: str) -> list[dict[str, Any]]:
        """Ask the SKUs of a product being pinned to push their counters here; their
        counters now, or none if they cannot be reached in time (pushes follow)."""
        try:
            skus = await SkuStore(self.pool).ids(product_id=product_id, limit=20, after=None)

            async def watch(sku: str) -> dict[str, Any]:
                view: dict[str, Any] = await self.res.skus.call(sku, "watch", self.room_id)
                return view

            return list(
                await asyncio.wait_for(
                    asyncio.gather(*(watch(sku) for sku in skus)), PIN_STOCK_WAIT
                )
            )
        except Exception as exc:  # the counter is a convenience; the pin itself stands
            log.warning("room %s cannot follow the stock of %s: %r", self.room_id, product_id, exc)
            return []

    async def join(
        self, joins: list[tuple[tuple[int, str] | None, str | None]]
    ) -> list[dict[str, Any] | LiveshopError]:
        """A batch of subscribers' ``(since, user_id)``: for each a snapshot, the events it
        missed, or an error, returned rather than raised so it crosses Ray intact (see
        Room.join_many)."""
        # Never show a subscriber an event that is not yet durable: answer from the room as
        # it is now, once everything up to its offset is committed (events being saved at
        # this moment are neither pending nor unsaved, hence an offset, not a flag).
        results = self.room.join_many(joins, clock.now())
        shown = self.room.offset
        self.calls += 1
        try:
            while self._durable_offset < shown:
                await self._next_flush()
        finally:
            self.calls -= 1
        return self._withdraw_shown(results)

    def _withdraw_shown(
        self, results: list[dict[str, Any] | LiveshopError]
    ) -> list[dict[str, Any] | LiveshopError]:
        """Views built before their events were saved: an event withdrawn meanwhile is shown
        as everyone else sees it (``withdrawn``), never as it was sent."""
        if not self._withdrawn:
            return results
        gone = self._withdrawn

        def patched(view: dict[str, Any]) -> dict[str, Any]:
            view = dict(view)
            if "events" in view:
                view["events"] = [
                    Event(e["offset"], e["kind"], {}, e["ts"]).withdrawn(WITHDRAWN_REASON).to_wire()
                    if e["offset"] in gone
                    else e
                    for e in view["events"]
                ]
            if "recent_chat" in view:
                view["recent_chat"] = [e for e in view["recent_chat"] if e["offset"] not in gone]
            return view

        return [r if isinstance(r, LiveshopError) else patched(r) for r in results]

    async def _moderate(self, batch: list[Command]) -> list[Command]:
        """Ask the automatic moderation check about viewers' chat, within its timeout."""
        checker = self.checker
        if checker is None:
            return batch
        todo = [
            (i, cmd)
            for i, cmd in enumerate(batch)
            if isinstance(cmd, Chat) and cmd.verdict is None and not cmd.by.roles & STAFF_ROLES
        ]
        if not todo:
            return batch

        async def verdict(cmd: Chat) -> Verdict:
            try:
                return await asyncio.wait_for(
                    checker.check(self.room_id, cmd.by.user_id, cmd.text),
                    self.settings.automod_timeout,
                )
            except Exception as exc:  # timeout or a broken check: the room's fallback decides
                log.warning("automod check failed for room %s: %r", self.room_id, exc)
                return Verdict("allow", "automatic moderation did not answer", fallback=True)

        verdicts = await asyncio.gather(*(verdict(cmd) for _, cmd in todo))
        checked = list(batch)
        for (i, cmd), result in zip(todo, verdicts, strict=True):
            checked[i] = dataclasses.replace(cmd, verdict=result)
        return checked

    async def _settle_gifts(self, batch: list[Command]) -> list[Command | LiveshopError]:
        """Move the coins of each gift in PostgreSQL (idempotently) before the room hears of
        it: the room publishes only paid gifts."""
        if not any(isinstance(cmd, SendGift) for cmd in batch):
            return list(batch)
        settled: list[Command | LiveshopError] = []
        for cmd in batch:
            if not isinstance(cmd, SendGift):
                settled.append(cmd)
                continue
            try:
                settled.append(GiftSent(await self._pay(cmd)))
            except LiveshopError as exc:
                settled.append(exc)
            except TRANSIENT_DB_ERRORS:
                settled.append(Unavailable("payments are unavailable, try again"))
        return settled

    async def _pay(self, cmd: SendGift) -> GiftReceipt:
        return await self.wallets.send_gift(
            key=cmd.key,
            room_id=self.room_id,
            sender_id=cmd.by.user_id,
            sender_name=cmd.by.name,
            recipient_id=self.room.gift_recipient(cmd.by),
            gift_id=cmd.gift_id,
            quantity=cmd.quantity,
        )

    async def stats(self) -> dict[str, Any]:
        return self.exported()

    def exported(self) -> dict[str, Any]:
        return {
            "room": self.room_id,
            "offset": self.room.offset,
            "epoch": self.room.epoch,
            "batches": self.batches,
            "commands": self.commands,
            "flushes": self.flushes,
            "events": self.events,
            "publish_errors": self.publish_errors,
            "commit_errors": self.commit_errors,
            "calls": self.calls,
            "viewers": self.room.viewers(clock.now()),
        }

    def _next_flush(self) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._wake.set()
        return fut

    async def _save(
        self, offset: int, events: list[Event], gift_offsets: list[tuple[int, int]]
    ) -> list[Event]:
        """Commit the tick; the events as stored. Data PostgreSQL refuses is never retried as
        it is (that wedged a room for ever): the tick is saved event by event instead."""
        durable = self.room.durable_state()
        try:
            await self.store.save_tick(
                self.room_id,
                epoch=self.room.epoch,
                offset=offset,
                state=durable,
                events=events,
                gift_offsets=gift_offsets,
            )
        except RETRYABLE:
            raise
        except Exception as exc:
            log.error("room %s: PostgreSQL refused its tick: %r", self.room_id, exc)
            try:
                stored = await self._save_one_by_one(
                    offset, events, gift_offsets, withdraw_all=self._stuck >= MAX_STUCK_TICKS
                )
            except RETRYABLE:
                raise
            except Exception:
                self._stuck += 1  # not the data of one event: after a few, withdraw them all
                raise
            self._stuck = 0
            return stored
        self._stuck = 0
        return events

    async def _save_one_by_one(
        self,
        offset: int,
        events: list[Event],
        gift_offsets: list[tuple[int, int]],
        *,
        withdraw_all: bool = False,
    ) -> list[Event]:
        """The tick saved event by event (RoomStore.save_tick_one_by_one); the events as
        stored, the refused ones withdrawn. ``withdraw_all``: a tick that failed again and
        again for a reason not its data's (a bug): every event is withdrawn, so the room
        moves on. Memory changes only once PostgreSQL has committed."""
        stored = [e.withdrawn(WITHDRAWN_REASON) for e in events] if withdraw_all else events
        refused = await self.store.save_tick_one_by_one(
            self.room_id,
            epoch=self.room.epoch,
            offset=offset,
            state=self.room.durable_state(),
            events=stored,
            reason=WITHDRAWN_REASON,
            gift_offsets=gift_offsets,
        )
        gone = events if withdraw_all else refused
        if not gone:
            return events
        placeholders = {e.offset: e for e in self.room.withdraw(gone, WITHDRAWN_REASON)}
        for event in gone:
            self._withdrawn[event.offset] = None
            while len(self._withdrawn) > MAX_WITHDRAWN_REMEMBERED:
                del self._withdrawn[next(iter(self._withdrawn))]
        return [placeholders.get(e.offset, e) for e in events]

    def _refuse_withdrawn(
        self, results: list[Reply | LiveshopError]
    ) -> list[Reply | LiveshopError]:
        """Calls whose event was withdrawn hear why instead of its offset."""
        if not self._withdrawn:
            return results
        return [
            InvalidRequest(f"{WITHDRAWN_REASON}; nothing was done")
            if isinstance(r, dict) and r.get("offset") in self._withdrawn
            else r
            for r in results
        ]

    # -- the tick ----------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        last = 0.0
        while True:
            if self._stopping:
                # Save what is left (state included, whatever its interval); a fenced room
                # cannot, and must not: its new owner has it.
                if self.fence.lost or not (
                    self._waiters or self._unsaved or self.room.version != self._saved_version
                ):
                    return
                await self._flush(final=True)
                continue
            # A room at rest (nobody watching, no poll open, nothing unsaved) sleeps until a
            # command wakes it: a host holds a thousand of them, and ticking each every
            # second would cost the host a thousand wakeups a second for nothing.
            rest = self._at_rest()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), None if rest else self.settings.viewer_report_interval
                )
            self._wake.clear()
            tick = tick_interval(self.settings, self.room.viewers(clock.now()))
            delay = last + tick - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # gather what else arrives within this tick
            last = time.monotonic()
            try:
                await self._flush()
            except Exception:
                log.exception("room %s tick failed", self.room_id)
                await asyncio.sleep(self.settings.tick_interval)
                self._wake.set()

    def _at_rest(self) -> bool:
        return (
            not self._waiters
            and not self._unsaved
            and self.room.version == self._saved_version
            and self.room.quiet(clock.now())
        )

    async def _flush(self, *, final: bool = False) -> None:
        now = clock.now()
        tick = self.room.drain(now)
        waiters, self._waiters = self._waiters, []
        events = self._unsaved + tick.events
        self._unsaved = []
        gift_offsets = self._unsaved_gifts + tick.gift_offsets
        self._unsaved_gifts = []
        version = self.room.version  # taken with `events`, before any await
        state_due = version != self._saved_version and (
            final or time.monotonic() - self._state_saved_at >= STATE_SAVE_INTERVAL
        )
        offset = self.room.offset  # before any await: matches `events`
        if events or state_due:
            started = time.perf_counter()
            try:
                events = await self._save(offset, events, gift_offsets)
            except Exception as exc:
                # Keep everything and retry: nobody is answered or shown anything until it
                # is durable, and no offset is skipped. Callers see a timeout
                # ("unavailable") if an outage lasts.
                self.commit_errors += 1
                report_failure(f"room {self.room_id}", exc)
                self._unsaved = events
                self._unsaved_gifts = gift_offsets
                self._unsaved_state.update(tick.state)
                self._waiters = waiters + self._waiters
                await asyncio.sleep(min(0.2 * 2**self._stuck, 5.0))
                self._wake.set()
                return
            metrics.commit_seconds("room", time.perf_counter() - started)
            self._state_saved_at = time.monotonic()
            self._saved_version = version
        self._durable_offset = offset
        state = {**self._unsaved_state, **tick.state}
        self._unsaved_state = {}
        try:
            if events or state:
                self.flushes += 1
                self.events += len(events)
                await self.publisher.publish(
                    self.room_id, encode_room_message(self.room, events, state, clock.now())
                )
        except (RedisError, OSError) as exc:
            # At-most-once: the events are durable and carry offsets, so subscribers
            # detect the gap and recover from the room.
            self.publish_errors += 1
            log.warning("room %s could not publish: %s", self.room_id, exc)
        finally:
            # Durable is what callers wait for: they are answered whatever publishing did.
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
