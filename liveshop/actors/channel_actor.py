"""The channel actor: owns one :class:`~liveshop.rooms.channel.Channel` and runs it every
second.

Each tick: ask the rooms that could be on screen whether their stream is on air, let the
channel decide what plays, then carry it out — save shows that started or ended, run the cues
that came due (as the viewer operations they name, through the rooms and commerce), send
reminders, publish the route to the channel's feed room and the show's room, and count the
show's analytics (pushed to the host's sockets every second, stored every minute and at the
end). Operators' emergency controls and hosts' cue changes come in as calls and take effect
at once, not at the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

import msgpack
from redis.exceptions import RedisError

from liveshop import clock
from liveshop.actors.resources import Resources
from liveshop.app.commerce import Commerce
from liveshop.app.ops import command_for
from liveshop.errors import Forbidden, InternalError, InvalidRequest, LiveshopError, NotFound
from liveshop.protocol import ROOM_OPS
from liveshop.rooms.analytics import ShowAnalytics
from liveshop.rooms.channel import (
    Channel,
    ChannelTick,
    feed_room,
    override_from_wire,
    override_to_wire,
)
from liveshop.rooms.commands import Actor, ChannelChanged, ChatSettings, QueueProduct
from liveshop.rooms.runofshow import Cue, RunOfShow, cue_operation
from liveshop.rooms.schedule import Show
from liveshop.storage.channels import ChannelStore
from liveshop.storage.owners import Fence
from liveshop.storage.products import ProductStore
from liveshop.storage.rooms import RoomStore
from liveshop.tokens import ANY_ROOM, Identity, Role

log = logging.getLogger(__name__)

#: The shows the actor keeps in memory: from a day back to two days ahead, reloaded this
#: often (and at once when the calendar changes through the API).
WINDOW_BEHIND, WINDOW_AHEAD, RELOAD_EVERY = 86400.0, 2 * 86400.0, 30.0
#: Recurring templates are booked this far ahead, checked this often.
TEMPLATE_HORIZON, TEMPLATE_CHECK_EVERY = 14 * 86400.0, 3600.0
#: Analytics reach the host every second (three queries for the sales totals), however
#: often the channel ticks; they are stored every minute.
ANALYTICS_EVERY, ANALYTICS_SAVE_EVERY = 1.0, 60.0
ON_AIR = ("live", "slate")


def staff_push(room_id: str, report: dict[str, Any]) -> bytes:
    """A message gateways deliver only to the room's staff sockets (hosts, moderators)."""
    packed: bytes = msgpack.packb(
        {"room": room_id, "staff": {"push": "analytics", "room": room_id, "analytics": report}},
        use_bin_type=True,
    )
    return packed


class ChannelActor:
    def __repr__(self) -> str:
        # The dashboard's "repr name" and the log prefix (see RoomActor.__repr__).
        return f"ChannelActor(channel={self.channel_id})"

    def __init__(self, channel_id: str, res: Resources, fence: Fence) -> None:
        self.channel_id = channel_id
        self.settings = res.settings
        self.pool = res.pool
        self.store = ChannelStore(self.pool, fence=fence)
        self.room_store = RoomStore(self.pool)
        self.rooms = res.rooms
        self.products = ProductStore(self.pool)
        self.commerce = Commerce(res.settings, self.pool)
        self.publisher = res.publisher

    async def start(self) -> None:
        channel_id = self.channel_id
        info, override = await self.store.channel(channel_id)
        self.identity = Identity(f"channel:{channel_id}", info.title,
                                 {ANY_ROOM: frozenset({Role.SERVICE})}, float("inf"))  # fmt: skip
        self.channel = Channel(info, override=override_from_wire(override))
        #: Who the channel's own actions (cues, queued products, the route) are by.
        self.by = Actor(self.identity.user_id, self.identity.name, frozenset({Role.SERVICE}))
        self.analytics: dict[str, ShowAnalytics] = {}
        self._streams: dict[str, dict[str, Any] | None] = {}
        self._unsaved: dict[str, Show] = {}
        self._sent_to: set[str] = set()
        self._loaded_at = self._templates_at = self._analytics_saved_at = -1e18
        self._counted_at = -1e18
        self._lock = asyncio.Lock()
        await self._load(clock.now())
        self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())
        log.info("channel %s running", channel_id)

    async def stop(self) -> None:
        """Moved to another host (channels run 24/7 and are never passivated for idling):
        stop between ticks, never in the middle of carrying a decision out."""
        async with self._lock:
            self._ticker.cancel()
        await asyncio.gather(self._ticker, return_exceptions=True)
        await self.commerce.close()

    def idle(self) -> bool:
        return False

    # -- calls ----------------------------------------------------------------------------------

    async def refresh(self) -> dict[str, Any]:
        """The calendar changed (through the API): reload it and publish at once."""
        async with self._lock:
            await self._load(clock.now())
            await self._step()
        return self.channel.view(clock.now())

    async def view(self) -> dict[str, Any]:
        return self.channel.view(clock.now())

    async def control(
        self,
        action: str,
        by: str,
        reason: str,
        *,
        room_id: str | None = None,
        show_id: str | None = None,
    ) -> dict[str, Any]:
        """An operator's emergency control, in force for every viewer when this returns."""
        now = clock.now()
        async with self._lock:
            chat_rooms: list[str] = []
            frozen = False
            ended: Show | None = None
            # Applied in memory, then saved; if saving fails the channel is put back as it
            # was and the operator hears "unavailable" (retry), never a change half made.
            before = (self.channel.override, dict(self.channel.shows), set(self.channel.frozen))
            match action:
                case "cut_to_slate":
                    entry = self.channel.cut_to_slate(by, reason, now)
                case "switch_stream":
                    if not room_id:
                        raise InvalidRequest("switch_stream names the room whose stream to show")
                    target = await self.room_store.get_room(room_id)  # room_not_found
                    if target.channel_id != self.channel_id:
                        # A channel airs its own rooms' streams, never another host's.
                        raise Forbidden(f"room {room_id!r} is not on this channel")
                    entry = self.channel.switch_to(room_id, by, reason, now)
                case "resume":
                    entry = self.channel.resume(by, reason, now)
                case "end_show":
                    ended, entry = self.channel.end_show(show_id, by, reason, now)
                case "freeze_chat" | "unfreeze_chat":
                    frozen = action == "freeze_chat"
                    chat_rooms, entry = self.channel.freeze_chat(frozen, by, reason, now)
                case _:
                    raise InvalidRequest(f"unknown control {action!r}")
            # Audited and saved before anyone is told: an override survives a restart.
            overrides = action in ("cut_to_slate", "switch_stream", "resume")
            try:
                audit_id = await self.store.control(
                    self.channel_id, entry, ended=ended,
                    override=override_to_wire(self.channel.override) if overrides else None,
                    set_override=overrides,
                )  # fmt: skip
            except BaseException:
                self.channel.override, self.channel.shows, self.channel.frozen = before
                raise
            operator = Actor(by, by, frozenset({Role.SERVICE}))
            await asyncio.gather(
                *(
                    self.rooms.send(room, ChatSettings(operator, frozen=frozen))
                    for room in chat_rooms
                )
            )
            if ended is not None:
                await self._show_ended(ended, now)
            await self._step()
        return {"audit": {"id": audit_id, **entry.to_wire()}, "channel": self.channel.view(now)}

    async def add_cue(self, show_id: str, cue: dict[str, Any]) -> dict[str, Any]:
        async with self._lock:
            show, run = await self._run(show_id)
            if not show.room_id:
                raise InvalidRequest("this show has no room to run cues in")
            cue_operation(cue["action"], cue.get("params") or {}, show.room_id)
            run.add(Cue(cue["cue_id"], float(cue["at"]), cue["action"], cue.get("params") or {}))
            await self.store.save_run(show_id, run)
            return run.cues[cue["cue_id"]].to_wire()

    async def run_of_show(self, show_id: str | None, room_id: str | None) -> dict[str, Any]:
        show, run = await self._run(self._show_id(show_id, room_id, clock.now()))
        return {"show_id": show.show_id, "starts_at": run.starts_at,
                "cues": sorted((c.to_wire() for c in run.cues.values()),
                               key=lambda c: (c["at"], c["cue_id"])),
                "log": run.log}  # fmt: skip

    async def cue(
        self,
        show_id: str | None,
        room_id: str | None,
        op: str,
        cue_id: str,
        by: str,
        at: float | None = None,
    ) -> dict[str, Any]:
        """A host fires, skips or moves a cue live (``room_id``: the show on air there)."""
        now = clock.now()
        async with self._lock:
            show_id = self._show_id(show_id, room_id, now)
            show, run = await self._run(show_id)
            result: dict[str, Any] = {}
            match op:
                case "fire":
                    cue = run.fire(cue_id, now, by=by)
                    await self.store.save_run(show_id, run)
                    result = await self._perform(show, run, cue, now)
                case "skip":
                    cue = run.skip(cue_id, now, by=by)
                case "reschedule":
                    if at is None:
                        raise InvalidRequest("reschedule needs the cue's new 'at'")
                    cue = run.reschedule(cue_id, at, now, by=by)
                case _:
                    raise InvalidRequest(f"unknown cue operation {op!r}")
            await self.store.save_run(show_id, run)
        return {"show_id": show_id, "cue": cue.to_wire(), **({"result": result} if result else {})}

    async def show_analytics(self, show_id: str | None, room_id: str | None) -> dict[str, Any]:
        """The show's live report if it is on air here, else the stored one."""
        now = clock.now()
        show_id = self._show_id(show_id, room_id, now)
        live = self.analytics.get(show_id)
        if live is not None:
            return live.report(now)
        stored = await self.store.analytics(show_id)
        if stored is None:
            raise NotFound(f"no analytics for show {show_id!r} yet")
        return stored[0]

    # -- the tick ---------------------------------------------------------------------------

    async def _tick_forever(self) -> None:
        """Reading the rooms and counting the show's sales happen outside the lock, so an
        operator's control waits at most for a decision being carried out, not for them."""
        while True:
            started = time.monotonic()
            try:
                await self._poll_streams(clock.now())
                async with self._lock:
                    await self._step()
                await self._count(clock.now())
            except Exception:
                log.exception("channel %s tick failed", self.channel_id)
            await asyncio.sleep(
                max(0.05, self.settings.channel_tick - (time.monotonic() - started))
            )

    async def _step(self) -> None:
        """Decide with the streams last read, and carry it out (under the lock)."""
        now = clock.now()
        if now - self._loaded_at >= RELOAD_EVERY:
            await self._load(now)
        if now - self._templates_at >= TEMPLATE_CHECK_EVERY:
            await self._extend_templates(now)
        live_rooms = {r: v["hls"] for r, v in self._streams.items()
                      if v and v.get("status") in ON_AIR and v.get("hls")}  # fmt: skip
        tick = self.channel.tick(now, live_rooms)
        await self._carry_out(tick, now)

    async def _carry_out(self, tick: ChannelTick, now: float) -> None:
        for show in tick.started + tick.ended:
            self._unsaved[show.show_id] = show
        for show in tick.started:
            await self._begin_analytics(show, now)
            await self._queue_products(show)
        for show in tick.ended:
            await self._show_ended(show, now)
        for show_id, show in list(self._unsaved.items()):
            try:
                await self.store.set_status(show)
                del self._unsaved[show_id]
            except Exception as exc:  # kept, retried next tick
                log.warning("channel %s cannot save show %s yet: %r", self.channel_id, show_id, exc)
        # Fired cues are saved before they run: after a crash a cue may be lost, never run
        # twice (a second flash deal is worse than a missed one; the host can fire it).
        for show_id in {s.show_id for s, _ in tick.cues} | set(tick.runs):
            await self.store.save_run(show_id, self.channel.runs[show_id])
        for show, cue in tick.cues:
            await self._perform(show, self.channel.run_of(show), cue, now)
        for show_id in {s.show_id for s, _ in tick.cues}:
            await self.store.save_run(show_id, self.channel.runs[show_id])  # the outcomes
        for show, lead in tick.reminders:
            covers = [other for other in self.channel.reminder_leads if other >= lead]
            try:
                sent = await self.store.remind(show, lead, now, covers=covers)
                log.info("channel %s reminded %d followers of %s", self.channel_id, sent,
                         show.show_id)  # fmt: skip
            except Exception as exc:  # forget it was sent: try again next tick
                self.channel.reminded.discard((show.show_id, lead))
                log.warning("channel %s reminder failed: %r", self.channel_id, exc)
        if tick.view is not None:
            await self._publish(tick.view, now)

    async def _publish(self, view: dict[str, Any], now: float) -> None:
        """The feed room, the show on air and the room that was on air before hear of it."""
        current = self.channel.on_air(now)
        targets = {feed_room(self.channel_id)} | ({current.room_id} if current and current.room_id
                                                  else set())  # fmt: skip
        rooms = sorted(targets | self._sent_to)
        changed = ChannelChanged(view)
        sent = await asyncio.gather(*(self.rooms.send(room, changed) for room in rooms),
                                    return_exceptions=True)  # fmt: skip
        for room, result in zip(rooms, sent, strict=True):
            if isinstance(result, BaseException):
                log.warning("channel %s cannot tell room %s: %r", self.channel_id, room, result)
                self.channel.republish()  # the next tick tries again
        self._sent_to = targets - {feed_room(self.channel_id)}

    async def _perform(self, show: Show, run: RunOfShow, cue: Cue, now: float) -> dict[str, Any]:
        """Run a fired cue as the viewer operation it names; the outcome goes to its log."""
        assert show.room_id is not None
        try:
            op, params = cue_operation(cue.action, cue.params, show.room_id)
            if op in ROOM_OPS:
                result = await self.rooms.send(
                    show.room_id, await command_for(op, self.by, params, self.products)
                )
            else:
                result = await self.commerce.run(op, self.identity, params)
        except Exception as exc:  # the cue failed; the show (and the other cues) go on
            error = exc if isinstance(exc, LiveshopError) else InternalError(repr(exc))
            run.outcome(cue.cue_id, now, {"code": error.code, "message": error.message})
            log.warning("cue %s of show %s failed: %s", cue.cue_id, show.show_id, error.message)
            return {"error": error.to_dict()}
        run.outcome(cue.cue_id, now, None)
        return result

    async def _queue_products(self, show: Show) -> None:
        """A show's products go into its room's queue when it starts, for the host to pin."""
        if not show.room_id:
            return
        for product_id in show.products:
            try:
                product = await self.products.promotable(product_id, show.room_id, "queue")
                await self.rooms.send(show.room_id, QueueProduct(self.by, product))
            except LiveshopError as exc:  # unknown, already queued, queue full: the show goes on
                log.info("show %s cannot queue %s: %s", show.show_id, product_id, exc.message)

    async def _show_ended(self, show: Show, now: float) -> None:
        """Its final analytics are stored; a live show's recording becomes a replay."""
        stats = self.analytics.pop(show.show_id, None)
        if stats is not None:
            await self._read_sales(show, stats)
            await self._save_analytics(show, stats, now, final=True)
        stream = self._streams.get(show.room_id or "")
        if show.kind == "live" and stream and stream.get("replay") and stream.get("started_at"):
            seconds = min(now, show.ends_at) - max(float(stream["started_at"]), show.starts_at)
            if seconds > 0:
                await self.store.set_recording(show.show_id, stream["replay"], seconds)
                self.channel.replays = await self.store.replays(self.channel_id, now)

    # -- analytics and streams ------------------------------------------------------------------

    async def _poll_streams(self, now: float) -> None:
        """Which rooms that could be on screen have their stream on air (from the rooms)."""
        # Shows still marked live include one whose slot just ended: its stream tells the
        # tick its recording.
        wanted = {s.room_id for s in self.channel.shows.values() if s.room_id
                  and s.kind == "live" and (s.on_air(now) or s.status == "live")}  # fmt: skip
        if self.channel.override is not None and self.channel.override.room_id:
            wanted.add(self.channel.override.room_id)
        current = self.channel.on_air(now)
        counted = current.room_id if current is not None else None
        if counted:
            wanted.add(counted)
        stats = self.analytics.get(current.show_id) if current is not None else None
        since = (stats.offset, stats.epoch) if stats and stats.epoch else None
        rooms = sorted(wanted)
        read = await asyncio.gather(
            *(self.rooms.call(room, "activity", since if room == counted else None)
              for room in rooms),
            return_exceptions=True,
        )  # fmt: skip
        for room, activity in zip(rooms, read, strict=True):
            if isinstance(activity, BaseException):  # the last known stream stands
                log.warning("channel %s cannot read room %s: %r", self.channel_id, room, activity)
                continue
            self._streams[room] = activity["stream"]
            if current is not None and room == counted:
                self._feed(current, activity, now)
        for room in set(self._streams) - wanted:
            del self._streams[room]

    async def _begin_analytics(self, show: Show, now: float) -> None:
        """The room's counters as the show starts are its baseline: viewers who join before
        the first regular read (a second away) count as the show's. Best effort: a room that
        cannot be read now gets its baseline at the first read, as before."""
        if not show.room_id or show.show_id in self.analytics:
            return
        try:
            activity = await self.rooms.call(show.room_id, "activity", None)
        except LiveshopError as exc:
            log.warning("channel %s cannot read room %s: %r", self.channel_id, show.room_id, exc)
            return
        self._feed(show, activity, now)

    def _feed(self, show: Show, activity: dict[str, Any], now: float) -> None:
        if not self.channel.shows.get(show.show_id, show).on_air(now):
            return  # ended while the room was read: its final report is stored
        stats = self.analytics.get(show.show_id)
        if stats is None:
            stats = self.analytics[show.show_id] = ShowAnalytics(show.show_id)
        if not activity["gap"] and stats.epoch == activity["epoch"]:
            stats.room_events(activity["events"])
        stats.skip_to(activity["epoch"], activity["offset"])  # other kinds are not counted
        stats.sample(now, activity["viewers"], activity["unique_viewers"], activity["reactions"])

    async def _count(self, now: float) -> None:
        current = self.channel.on_air(now)
        if current is None or current.room_id is None or current.show_id not in self.analytics:
            return
        if now - self._counted_at < ANALYTICS_EVERY:
            return
        self._counted_at = now
        stats = self.analytics[current.show_id]
        await self._read_sales(current, stats)
        report = stats.report(now)
        with contextlib.suppress(RedisError, OSError):
            await self.publisher.publish(current.room_id, staff_push(current.room_id, report))
        if now - self._analytics_saved_at >= ANALYTICS_SAVE_EVERY:
            async with self._lock:  # not over the final report of a show ended meanwhile
                if self.analytics.get(current.show_id) is stats:
                    await self._save_analytics(current, stats, now, final=False)

    async def _read_sales(self, show: Show, stats: ShowAnalytics) -> None:
        if show.room_id:
            stats.sales(**await self.store.sales(show.room_id, show.starts_at, show.ends_at))

    async def _save_analytics(
        self, show: Show, stats: ShowAnalytics, now: float, *, final: bool
    ) -> None:
        """Store the report as it stands (its sales were just read)."""
        report = stats.report(now)
        minute = int((min(now, show.ends_at) - show.starts_at) // 60)
        await self.store.save_analytics(show.show_id, {**report, "final": final},
                                        stats.to_state(), minute)  # fmt: skip
        self._analytics_saved_at = now

    # -- loading --------------------------------------------------------------------------

    async def _load(self, now: float) -> None:
        self.channel.info, _ = await self.store.channel(self.channel_id)  # edits reach us
        window = await self.store.window(self.channel_id, now - WINDOW_BEHIND, now + WINDOW_AHEAD)
        shows = [self._unsaved.get(s.show_id, s) for s, _ in window]
        # Cue state lives here while a show is on air: keep it over what storage returns.
        runs = {s.show_id: self.channel.runs.get(s.show_id, run) for s, run in window}
        self.channel.runs = runs
        self.channel.load(shows, await self.store.replays(self.channel_id, now))
        self.channel.reminded |= await self.store.reminded([s.show_id for s in shows])
        for show in shows:
            if show.on_air(now) and show.show_id not in self.analytics:
                stored = await self.store.analytics(show.show_id)
                if stored is not None:
                    self.analytics[show.show_id] = ShowAnalytics.from_state(stored[1])
        self._loaded_at = now

    async def _extend_templates(self, now: float) -> None:
        self._templates_at = now  # a template that fails waits for the next round
        for template_id in await self.store.templates_due(self.channel_id, now + TEMPLATE_HORIZON):
            try:
                booked, clashes = await self.store.extend_template(
                    template_id, now=now, until=now + TEMPLATE_HORIZON, epoch=secrets.token_hex(4)
                )
            except Exception:
                log.exception("template %s cannot be extended", template_id)
                continue
            for show, clash in clashes:
                log.warning("template %s skips %s: %s holds the slot", template_id,
                            show.show_id, clash.show_id)  # fmt: skip
            if booked:
                self._loaded_at = -1e18  # reload on the next tick

    def _show_id(self, show_id: str | None, room_id: str | None, now: float) -> str:
        """The show named, or the one a host controls from ``room_id`` (on air, else next)."""
        if show_id is not None:
            return show_id
        assert room_id is not None
        return self.channel.show_in_room(room_id, now).show_id

    async def _run(self, show_id: str) -> tuple[Show, RunOfShow]:
        """A show's run-of-show: the live copy when it is in the window, else storage's."""
        show = self.channel.shows.get(show_id)
        if show is not None:
            return show, self.channel.run_of(show)
        stored, run = await self.store.show(show_id)
        if stored.channel_id != self.channel_id:
            raise NotFound(f"show {show_id!r} is not on channel {self.channel_id!r}")
        return stored, run
