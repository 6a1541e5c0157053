"""A 24/7 channel: its programming window, what it plays, the run-of-show of the show on air,
reminders and the operators' emergency controls. No I/O, no clock.

The channel actor loads the shows around now, calls :meth:`Channel.tick` every second with
the streams that are on air, and carries out what the tick says: save shows that started or
ended, run the cues that came due, send reminders, and publish the route when it changed.
Viewers follow the channel through its feed room (``channel:<id>``): every route change is a
``route_changed`` event there, so a player that reconnects learns what it missed.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from liveshop.errors import InvalidRequest, NotFound
from liveshop.rooms.router import SLATE, Override, Replay, Route, route
from liveshop.rooms.runofshow import Cue, RunOfShow
from liveshop.rooms.schedule import Show, now_and_next, zone

FEED_PREFIX = "channel:"
#: Reminders go out this long before a show starts (seconds); a late channel sends only
#: the nearest one that is still before the start.
REMINDER_LEADS = (900.0, 60.0)
SLUG = re.compile(r"^[A-Za-z0-9_.-]{1,48}$")
MAX_REASON_CHARS = 500


def feed_room(channel_id: str) -> str:
    """The room viewers subscribe to in order to follow a channel."""
    return FEED_PREFIX + channel_id


@dataclass(frozen=True)
class ChannelInfo:
    channel_id: str
    title: str
    category: str = "general"  # Deals, Beauty, Tech, Home, Collectibles, Fashion, ...
    region: str = "global"  # a regional edition: Americas, EMEA, APAC, ...
    tz: str = "UTC"
    artwork_url: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not SLUG.match(self.channel_id):
            raise InvalidRequest("a channel id is 1-48 of A-Z, a-z, 0-9, _ . -")
        if not self.title.strip():
            raise InvalidRequest("a channel needs a title")
        zone(self.tz)

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.channel_id, "title": self.title, "category": self.category,
            "region": self.region, "tz": self.tz, "artwork_url": self.artwork_url,
            "description": self.description, "feed_room": feed_room(self.channel_id),
        }  # fmt: skip


def route_to_wire(r: Route, now: float) -> dict[str, Any]:
    """A route as players get it: ``offset`` is the position at ``at``, so a player joining
    later seeks to ``offset + (its now - at)``."""
    return {"source": r.source, "show_id": r.show_id, "room_id": r.room_id,
            "playlist": r.playlist, "offset": round(r.offset, 3), "at": now}  # fmt: skip


def route_key(route: dict[str, Any]) -> tuple[Any, ...]:
    """What plays, from a route on the wire: a replay's moving position is not a change."""
    return route["source"], route["show_id"], route["room_id"], route["playlist"]


def override_to_wire(o: Override | None) -> dict[str, Any] | None:
    if o is None:
        return None
    return {"kind": o.kind, "room_id": o.room_id, "by": o.by, "reason": o.reason, "at": o.at}


def override_from_wire(raw: dict[str, Any] | None) -> Override | None:
    if not raw:
        return None
    return Override(raw["kind"], raw.get("room_id"), raw.get("by", ""), raw.get("reason", ""),
                    float(raw.get("at", 0.0)))  # fmt: skip


@dataclass
class ChannelTick:
    """What one tick asks the actor to do."""

    started: list[Show] = field(default_factory=list)
    ended: list[Show] = field(default_factory=list)
    #: Cues that came due, with the show they belong to, in firing order.
    cues: list[tuple[Show, Cue]] = field(default_factory=list)
    #: Run-of-shows changed (fired or stale-skipped cues) to persist.
    runs: list[str] = field(default_factory=list)
    #: ``(show, lead)`` reminders to send: followers hear the show starts in ``lead`` s.
    reminders: list[tuple[Show, float]] = field(default_factory=list)
    #: Set when what the channel plays, or its now/next, changed: the view to publish.
    view: dict[str, Any] | None = None


@dataclass
class Audit:
    """One operator action: who, when, why, what (stored, and shown to the channel)."""

    action: str
    by: str
    reason: str
    at: float
    show_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Channel:
    def __init__(
        self,
        info: ChannelInfo,
        *,
        shows: list[Show] | None = None,
        replays: list[Replay] | None = None,
        override: Override | None = None,
        runs: dict[str, RunOfShow] | None = None,
        reminded: set[tuple[str, float]] | None = None,
        loop_anchor: float = 0.0,
        reminder_leads: tuple[float, ...] = REMINDER_LEADS,
    ) -> None:
        self.info = info
        self.shows: dict[str, Show] = {s.show_id: s for s in shows or ()}
        self.replays = list(replays or ())
        self.override = override
        self.runs: dict[str, RunOfShow] = dict(runs or {})
        self.reminded: set[tuple[str, float]] = set(reminded or ())
        self.loop_anchor = loop_anchor
        self.reminder_leads = tuple(sorted(reminder_leads, reverse=True))
        self.route: Route | None = None
        #: When :attr:`route` was computed: its offset is the position then.
        self.routed_at = 0.0
        #: Rooms whose chat an operator froze (thawed together, whatever is on air then).
        self.frozen: set[str] = set()
        self._published: tuple[Any, ...] | None = None

    # -- the window the actor keeps loaded ----------------------------------------------------

    def load(self, shows: list[Show], replays: list[Replay] | None = None) -> None:
        """Replace the window with what storage holds now (after a calendar change)."""
        self.shows = {s.show_id: s for s in shows}
        if replays is not None:
            self.replays = list(replays)

    def run_of(self, show: Show) -> RunOfShow:
        run = self.runs.get(show.show_id)
        if run is None or run.starts_at != show.starts_at:  # a moved show moves its cues
            run = RunOfShow(show.starts_at, dict(run.cues) if run else {}, run.log if run else [])
            self.runs[show.show_id] = run
        return run

    def show(self, show_id: str) -> Show:
        found = self.shows.get(show_id)
        if found is None:
            raise NotFound(f"no show {show_id!r} on channel {self.info.channel_id!r} now")
        return found

    def on_air(self, now: float) -> Show | None:
        """The show whose slot this is (live or premiere), whatever is on screen."""
        for s in sorted(self.shows.values(), key=lambda s: s.starts_at):
            if s.on_air(now):
                return s
        return None

    def show_in_room(self, room_id: str, now: float) -> Show:
        """The show a host controls from its room: the one on air there, else the next."""
        mine = sorted((s for s in self.shows.values() if s.room_id == room_id and s.active),
                      key=lambda s: s.starts_at)  # fmt: skip
        for s in mine:
            if s.on_air(now):
                return s
        upcoming = [s for s in mine if s.starts_at > now]
        if not upcoming:
            raise NotFound(f"no show on air or coming in room {room_id!r}")
        return upcoming[0]

    # -- every second ---------------------------------------------------------------------------

    def tick(self, now: float, live_rooms: dict[str, str]) -> ChannelTick:
        out = ChannelTick()
        for s in list(self.shows.values()):
            if s.status == "scheduled" and s.starts_at <= now < s.ends_at:
                s = self.shows[s.show_id] = dataclasses.replace(s, status="live")
                out.started.append(s)
            if s.status in ("scheduled", "live") and s.ends_at <= now:
                s = self.shows[s.show_id] = dataclasses.replace(s, status="ended", ended_at=now)
                out.ended.append(s)
        self.route = route(
            list(self.shows.values()), now, live_rooms=live_rooms, replays=self.replays,
            loop_anchor=self.loop_anchor, override=self.override,
        )  # fmt: skip
        self.routed_at = now
        current = self.on_air(now)
        # Cues fire while their show is what the channel plays: not before the host's stream
        # is up, not while an operator has cut away (stale ones are then skipped).
        if current is not None and current.show_id in self.runs:
            run = self.run_of(current)
            before = len(run.log)
            if self.route.show_id == current.show_id:
                out.cues = [(current, cue) for cue in run.due(now)]
            else:
                run.skip_stale(now)
            if len(run.log) != before:
                out.runs.append(current.show_id)
        out.reminders = self._reminders(now)
        view = self.view(now)
        key = self._view_key(view)
        if key != self._published:
            self._published = key
            out.view = view
        return out

    def _reminders(self, now: float) -> list[tuple[Show, float]]:
        due = []
        for s in self.shows.values():
            if s.status != "scheduled" or s.starts_at <= now:
                continue
            leads = [lead for lead in self.reminder_leads if now >= s.starts_at - lead
                     and (s.show_id, lead) not in self.reminded]  # fmt: skip
            if leads:
                self.reminded.update((s.show_id, lead) for lead in leads)
                due.append((s, leads[-1]))  # the nearest: the others are past
        return due

    def republish(self) -> None:
        """Publishing the last view failed: the next tick publishes it again."""
        self._published = None

    def view(self, now: float) -> dict[str, Any]:
        """What the channel's viewers see: the channel, what plays, now and next."""
        slot = now_and_next(self.shows.values(), now).get(self.info.channel_id, {})
        playing = self.route or Route(SLATE)
        on_now, up_next = slot.get("now"), slot.get("next")
        return {
            "channel": self.info.to_wire(),
            "route": route_to_wire(playing, self.routed_at if self.route else now),
            "now": on_now.to_wire() if on_now else None,
            "next": up_next.to_wire() if up_next else None,
            "override": override_to_wire(self.override),
        }

    @staticmethod
    def _view_key(view: dict[str, Any]) -> tuple[Any, ...]:
        return (
            route_key(view["route"]),
            (view["now"] or {}).get("show_id"), (view["next"] or {}).get("show_id"),
            (view["now"] or {}).get("status"), view["override"], view["channel"],
        )  # fmt: skip

    # -- emergency controls -----------------------------------------------------------------------

    def cut_to_slate(self, by: str, reason: str, now: float) -> Audit:
        self.override = Override("slate", None, by, _reason(reason), now)
        return Audit("cut_to_slate", by, self.override.reason, now, self._current_id(now))

    def switch_to(self, room_id: str, by: str, reason: str, now: float) -> Audit:
        """Show another room's stream on this channel (it plays once that stream is on air;
        the slate until then)."""
        self.override = Override("stream", room_id, by, _reason(reason), now)
        return Audit("switch_stream", by, self.override.reason, now, self._current_id(now),
                     {"room_id": room_id})  # fmt: skip

    def resume(self, by: str, reason: str, now: float) -> Audit:
        """Lift the override: the channel follows its schedule again."""
        if self.override is None:
            raise NotFound("the channel follows its schedule already")
        lifted = override_to_wire(self.override)
        self.override = None
        return Audit("resume", by, _reason(reason), now, self._current_id(now), {"lifted": lifted})

    def end_show(self, show_id: str | None, by: str, reason: str, now: float) -> tuple[Show, Audit]:
        """End ``show_id`` (None: the show on air) now."""
        if show_id is None:
            show_id = self._current_id(now)
            if show_id is None:
                raise NotFound("no show on air to end")
        s = self.show(show_id)
        if not s.active:
            raise InvalidRequest(f"show {show_id!r} is already {s.status}")
        ended = self.shows[show_id] = dataclasses.replace(s, status="ended", ended_at=now)
        return ended, Audit("end_show", by, _reason(reason), now, show_id)

    def freeze_chat(
        self, frozen: bool, by: str, reason: str, now: float
    ) -> tuple[list[str], Audit]:
        """The rooms whose chat to freeze: the channel's feed and the show on air; to thaw:
        those and every room frozen before."""
        current = self.on_air(now)
        rooms = [feed_room(self.info.channel_id)]
        if current is not None and current.room_id:
            rooms.append(current.room_id)
        if frozen:
            self.frozen.update(rooms)
        else:
            rooms += sorted(self.frozen - set(rooms))
            self.frozen.clear()
        action = "freeze_chat" if frozen else "unfreeze_chat"
        return rooms, Audit(action, by, _reason(reason), now, self._current_id(now),
                            {"rooms": rooms})  # fmt: skip

    def _current_id(self, now: float) -> str | None:
        current = self.on_air(now)
        return current.show_id if current else None


def _reason(reason: str) -> str:
    cleaned = reason.strip()
    if not cleaned:
        raise InvalidRequest("say why: emergency controls are audited")
    return cleaned[:MAX_REASON_CHARS]
