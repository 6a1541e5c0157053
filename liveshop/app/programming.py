"""Channels, shows and show operations as the HTTP API and the gateway offer them: who may
do what, and which store or channel actor does it. The rules of programming live in
``liveshop/rooms/`` (schedule, channel, run-of-show); this module only wires them up.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import secrets
from typing import Any

import asyncpg

from liveshop import clock
from liveshop.app.ops import require_host
from liveshop.commerce.listing import PROMOTIONS
from liveshop.config import Settings
from liveshop.errors import Forbidden, InvalidRequest, LiveshopError, NotFound
from liveshop.mesh.channel_client import ChannelClient
from liveshop.rooms.channel import ChannelInfo, feed_room
from liveshop.rooms.runofshow import Cue, RunOfShow, cue_operation
from liveshop.rooms.schedule import Availability, Recurrence, Show, now_and_next
from liveshop.storage.channels import ChannelStore
from liveshop.storage.products import ProductStore
from liveshop.storage.rooms import RoomStore
from liveshop.tokens import STAFF_ROLES, Identity, Role

log = logging.getLogger(__name__)

#: The grid looks this far ahead for each channel's next show.
GRID_HORIZON = 7 * 86400.0
#: Recurring templates are booked this many days ahead when created (the channel actor then
#: keeps a rolling 14 days booked).
TEMPLATE_DAYS = 14
CONTROLS = ("cut_to_slate", "switch_stream", "resume", "end_show", "freeze_chat",
            "unfreeze_chat")  # fmt: skip
CUE_CHANGES = ("fire", "skip", "reschedule")


#: Who runs a channel's emergency controls: its host (the channel's owner) or a service, by
#: token role on the feed room ``channel:<id>`` (or ``*``). Chat moderators are not enough:
#: these controls take the channel off air.
OPERATOR_ROLES = frozenset({Role.HOST, Role.SERVICE})


def require_operator(who: Identity, channel_id: str) -> None:
    if not who.roles_in(feed_room(channel_id)) & OPERATOR_ROLES:
        raise Forbidden(f"only the operators of channel {channel_id!r} may do this")


def require_staff(who: Identity, room_id: str) -> None:
    if not who.roles_in(room_id) & STAFF_ROLES:
        raise Forbidden("only the room's host, co-hosts, moderators or services may see this")


class Programming:
    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self.settings = settings
        self.store = ChannelStore(pool)
        self.rooms = RoomStore(pool)
        self.products = ProductStore(pool)
        self.channels = ChannelClient(settings, self.store)

    # -- channels -----------------------------------------------------------------------------

    async def save_channel(self, info: ChannelInfo) -> dict[str, Any]:
        await self.store.save_channel(info, epoch=secrets.token_hex(4))
        # Its actor starts now (it runs 24/7: starting a process can take seconds on a busy
        # node, so nobody waits for it) and picks up the new details.
        await self.channels.actor(info.channel_id)
        await self._tell(info.channel_id)
        return info.to_wire()

    async def _tell(self, channel_id: str) -> None:
        """The calendar changed: the channel's actor reloads it now. Best effort: what is
        stored is decided, and an actor that is starting (or busy) loads it by itself (at
        start, and every 30 s)."""
        try:
            await self.channels.run(channel_id, "refresh")
        except LiveshopError as exc:
            log.warning("channel %s will pick the change up later: %s", channel_id, exc)

    async def ensure_actors(self) -> None:
        """Every channel is running (its host starts the channels placed on it; this is the
        belt to those braces: a call activates a channel that is not)."""
        for info in await self.store.list_channels():
            try:
                await self.channels.run(info.channel_id, "view")
            except LiveshopError as exc:
                log.warning("channel %s is not running yet: %s", info.channel_id, exc)

    async def keep_actors_running(self, every: float = 30.0) -> None:
        while True:
            try:
                await self.ensure_actors()
            except Exception as exc:  # PostgreSQL away: next round
                log.warning("cannot check channel actors: %r", exc)
            await asyncio.sleep(every)

    async def grid(
        self, now: float, *, category: str | None = None, region: str | None = None
    ) -> list[dict[str, Any]]:
        """TV-style: every channel with the show on now and the next one."""
        channels = await self.store.list_channels(category=category, region=region)
        slots = now_and_next(await self.store.upcoming(now, GRID_HORIZON), now)
        out = []
        for info in channels:
            slot = slots.get(info.channel_id, {})
            on_now, up_next = slot.get("now"), slot.get("next")
            out.append({"channel": info.to_wire(),
                        "now": on_now.to_wire() if on_now else None,
                        "next": up_next.to_wire() if up_next else None})  # fmt: skip
        return out

    async def control(
        self, who: Identity, channel_id: str, action: str, reason: str,
        room_id: str | None = None, show_id: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        if action not in CONTROLS:
            raise InvalidRequest(f"a control is one of {', '.join(CONTROLS)}")
        require_operator(who, channel_id)
        return await self.channels.run(channel_id, "control", action, who.user_id, reason,
                                       room_id=room_id, show_id=show_id)  # fmt: skip

    # -- shows --------------------------------------------------------------------------------

    async def book(self, show: Show, cues: list[dict[str, Any]]) -> dict[str, Any]:
        """Book a show (its room is made with it unless it names one), add its cues, and
        tell its channel."""
        if not await self.store.channel_exists(show.channel_id):
            raise NotFound(f"no channel {show.channel_id!r}")
        own_room = show.room_id is None
        if own_room:
            show = dataclasses.replace(show, room_id=show.show_id)
        assert show.room_id is not None
        run = RunOfShow(show.starts_at)
        for cue in cues:  # refused before anything is booked
            cue_operation(cue["action"], cue.get("params") or {}, show.room_id)
            run.add(Cue(cue["cue_id"], float(cue["at"]), cue["action"], cue.get("params") or {}))
        await self.store.book(show, create_room=own_room, epoch=secrets.token_hex(4), run=run)
        await self._tell(show.channel_id)
        return show.to_wire()

    async def edit(self, show_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Move, retitle, recast or cancel a show (conflicts checked as for booking)."""
        old, _ = await self.store.show(show_id)
        if old.status in ("ended", "cancelled"):
            raise InvalidRequest(f"show {show_id!r} is {old.status}: it can no longer change")
        if "status" in changes and changes["status"] != "cancelled":
            raise InvalidRequest("a show's status changes only to 'cancelled' here")
        on_air = old.status == "live" or old.on_air(clock.now())  # the actor may lag a tick
        if on_air and ({"starts_at", "channel_id", "status"} & set(changes)):
            raise InvalidRequest("a show on air cannot move or be cancelled: end it "
                                 "(the end_show control) or change its end")  # fmt: skip
        show = dataclasses.replace(old, **changes)
        await self.store.book(show, create_room=False, epoch="", replacing=True)
        for channel_id in {old.channel_id, show.channel_id}:
            await self._tell(channel_id)
        return show.to_wire()

    async def template(
        self, template_id: str, recurrence: Recurrence, make: Show, days: int
    ) -> dict[str, Any]:
        if not await self.store.channel_exists(make.channel_id):
            raise NotFound(f"no channel {make.channel_id!r}")
        now = clock.now()
        first = dt.datetime.combine(recurrence.first_day, dt.time(), dt.UTC).timestamp() - 86400
        until = max(first, now) + days * 86400
        booked, clashes = await self.store.create_template(
            template_id, recurrence, make, now=now, until=until, epoch=secrets.token_hex(4)
        )
        await self._tell(make.channel_id)
        return {
            "template": template_id,
            "booked": [s.to_wire() for s in booked],
            "clashes": [{"show": s.to_wire(), "conflict": c.to_wire()} for s, c in clashes],
        }

    async def set_availability(self, user_id: str, hours: Availability) -> None:
        await self.store.set_availability(user_id, hours)

    # -- run-of-show and analytics, by show (HTTP) or by room (the host's socket) ---------------

    async def cue(
        self, who: Identity, op: str, cue_id: str, *, show_id: str | None = None,
        room_id: str | None = None, at: float | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        if op not in CUE_CHANGES:
            raise InvalidRequest(f"a cue can be {', '.join(CUE_CHANGES)}")
        channel_id, room = await self._where(show_id, room_id)
        require_host(who, room, "run-of-show cues")
        return await self.channels.run(channel_id, "cue", show_id, room_id, op, cue_id,
                                       who.user_id, at)  # fmt: skip

    async def add_cue(self, who: Identity, show_id: str, cue: dict[str, Any]) -> dict[str, Any]:
        channel_id, room = await self._where(show_id, None)
        require_host(who, room, "run-of-show cues")
        await self._allowed(cue, room)
        return await self.channels.run(channel_id, "add_cue", show_id, cue)

    async def run_of_show(
        self, who: Identity, *, show_id: str | None = None, room_id: str | None = None
    ) -> dict[str, Any]:
        channel_id, room = await self._where(show_id, room_id)
        require_staff(who, room)
        return await self.channels.run(channel_id, "run_of_show", show_id, room_id)

    async def analytics(
        self, who: Identity, *, show_id: str | None = None, room_id: str | None = None
    ) -> dict[str, Any]:
        channel_id, room = await self._where(show_id, room_id)
        require_staff(who, room)
        return await self.channels.run(channel_id, "show_analytics", show_id, room_id)

    async def analytics_allowed(self, who: Identity, show_id: str) -> None:
        _, room = await self._where(show_id, None)
        require_staff(who, room)

    async def _allowed(self, cue: dict[str, Any], room: str) -> None:
        """A cue that pins or sells a product needs the room to be one its seller allows
        (commerce/listing.py): refused now rather than when it fires (where it is checked
        again, as any operation is)."""
        op, params = cue_operation(cue["action"], cue.get("params") or {}, room)
        if op == "pin_product":
            (await self.products.listing(params.product_id, room)).require("pin")
        elif op in PROMOTIONS:
            (await self.products.sku_listing(params.sku, room)).require(PROMOTIONS[op])

    async def _where(self, show_id: str | None, room_id: str | None) -> tuple[str, str]:
        """The channel, and the room whose roles decide, of a show or a room."""
        if show_id is not None:
            show, _ = await self.store.show(show_id)
            if show.room_id is None:
                raise NotFound(f"show {show_id!r} has no room")
            return show.channel_id, show.room_id
        assert room_id is not None
        info = await self.rooms.get_room(room_id)
        if info.channel_id is None:
            raise NotFound(f"room {room_id!r} is not on a channel")
        return info.channel_id, room_id
