"""A live room: the rules for chat, reactions, pins and presence.

No I/O and no clock reads: the actor hands in commands and ``now`` and takes out replies,
events (durable, each with the next offset) and state changes (ephemeral totals such as
reactions and viewers, coalesced per tick). Offsets strictly increase within an epoch.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from liveshop.commerce.product import Product
from liveshop.errors import ClientError, Forbidden, InvalidRequest, LiveshopError
from liveshop.rooms.commands import (
    Actor,
    Chat,
    Command,
    Pin,
    React,
    Reply,
    ReportViewers,
    SystemMessage,
    Unpin,
)
from liveshop.rooms.event import Event
from liveshop.rooms.history import History
from liveshop.tokens import STAFF_ROLES

MAX_CHAT_CHARS = 500
MAX_REACTION_BURST = 100
MAX_REACTION_KINDS = 64
REACTION_KIND = re.compile(r"^[a-z0-9_]{1,32}$")
#: Default history window: how many events, and how old, a reconnecting client can recover.
HISTORY_SIZE = 1000
HISTORY_AGE = 600.0
#: Chat messages included in a snapshot.
SNAPSHOT_CHAT = 50
#: A gateway that has not reported for this long no longer counts towards viewers.
VIEWER_REPORT_TTL = 5.0


@dataclass
class RoomInfo:
    room_id: str
    title: str
    channel_id: str | None = None
    status: str = "live"

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.room_id,
            "title": self.title,
            "channel_id": self.channel_id,
            "status": self.status,
        }


@dataclass
class Tick:
    """What one tick publishes: new events and changed ephemeral state."""

    events: list[Event] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.events or self.state)


class Room:
    def __init__(
        self,
        info: RoomInfo,
        *,
        epoch: str,
        offset: int = 0,
        pinned: Product | None = None,
        reactions: dict[str, int] | None = None,
        peak_viewers: int = 0,
        history: list[Event] | None = None,
        history_size: int = HISTORY_SIZE,
        history_age: float = HISTORY_AGE,
    ) -> None:
        self.info = info
        self.epoch = epoch
        self.offset = offset
        self.pinned = pinned
        self.reactions: Counter[str] = Counter(reactions or {})
        self.peak_viewers = peak_viewers
        self.history = History(history_size, history_age, history or ())
        self._pending_events: list[Event] = []
        self._pending_reactions: Counter[str] = Counter()
        self._viewer_reports: dict[str, tuple[int, float]] = {}
        self._published_viewers = -1

    # -- commands -------------------------------------------------------------------------

    def apply_batch(self, commands: list[Command], now: float) -> list[Reply | LiveshopError]:
        """Apply each command in order; a client error fails that command only."""
        results: list[Reply | LiveshopError] = []
        for command in commands:
            try:
                results.append(self.apply(command, now))
            except ClientError as exc:
                results.append(exc)
        return results

    def apply(self, command: Command, now: float) -> Reply:
        match command:
            case Chat(by=by, text=text):
                return self._chat(by, text, now)
            case React(by=by, kind=kind, count=count):
                return self._react(kind, count)
            case Pin(by=by, product=product):
                self._require_staff(by)
                self.pinned = product
                event = self._emit("pin", {"product": product.card(), "by": by.user_id}, now)
                return {"offset": event.offset}
            case Unpin(by=by):
                self._require_staff(by)
                if self.pinned is None:
                    return {"offset": None}
                self.pinned = None
                event = self._emit("unpin", {"by": by.user_id}, now)
                return {"offset": event.offset}
            case SystemMessage(by=by, text=text):
                self._require_staff(by)
                event = self._emit("system", {"text": _clean_text(text)}, now)
                return {"offset": event.offset}
            case ReportViewers(gateway_id=gateway_id, count=count):
                if count < 0:
                    raise InvalidRequest("viewer count must not be negative")
                self._viewer_reports[gateway_id] = (count, now)
                return {}
        raise InvalidRequest(f"unknown command {type(command).__name__}")

    def _chat(self, by: Actor, text: str, now: float) -> Reply:
        if not by.roles:
            raise Forbidden("your token grants no role in this room")
        event = self._emit(
            "chat",
            {"user": {"id": by.user_id, "name": by.name}, "text": _clean_text(text)},
            now,
        )
        return {"offset": event.offset, "message_id": event.offset}

    def _react(self, kind: str, count: int) -> Reply:
        if not REACTION_KIND.match(kind):
            raise InvalidRequest("reaction kind must be 1-32 of a-z, 0-9, _")
        if not 1 <= count <= MAX_REACTION_BURST:
            raise InvalidRequest(f"reaction count must be 1-{MAX_REACTION_BURST}")
        if kind not in self.reactions and len(self.reactions) >= MAX_REACTION_KINDS:
            raise InvalidRequest("too many distinct reaction kinds in this room")
        self.reactions[kind] += count
        self._pending_reactions[kind] += count
        return {}

    @staticmethod
    def _require_staff(by: Actor) -> None:
        if not by.roles & STAFF_ROLES:
            raise Forbidden("only the host, co-hosts, moderators or services may do this")

    def _emit(self, kind: str, data: dict[str, Any], now: float) -> Event:
        self.offset += 1
        event = Event(offset=self.offset, kind=kind, data=data, ts_ms=int(now * 1000))
        self.history.append(event)
        self._pending_events.append(event)
        return event

    # -- ticks and views ------------------------------------------------------------------

    def has_pending_events(self) -> bool:
        return bool(self._pending_events)

    def viewers(self, now: float) -> int:
        return sum(c for c, at in self._viewer_reports.values() if now - at <= VIEWER_REPORT_TTL)

    def drain(self, now: float) -> Tick:
        """Everything to publish since the last drain: one message per room per tick."""
        tick = Tick(events=self._pending_events)
        self._pending_events = []
        if self._pending_reactions:
            tick.state["reactions"] = dict(self.reactions)
            tick.state["reaction_burst"] = dict(self._pending_reactions)
            self._pending_reactions = Counter()
        self._viewer_reports = {
            g: (c, at)
            for g, (c, at) in self._viewer_reports.items()
            if now - at <= VIEWER_REPORT_TTL
        }
        viewers = self.viewers(now)
        if viewers != self._published_viewers:
            self._published_viewers = viewers
            self.peak_viewers = max(self.peak_viewers, viewers)
            tick.state["viewers"] = viewers
            tick.state["peak_viewers"] = self.peak_viewers
        return tick

    def snapshot(self, now: float) -> dict[str, Any]:
        chat = [e.to_wire() for e in self.history if e.kind in ("chat", "system")]
        return {
            **self._current(now),
            "recovered": False,
            "recent_chat": chat[-SNAPSHOT_CHAT:],
        }

    def join(self, since: tuple[int, str] | None, now: float) -> dict[str, Any]:
        """What a subscriber gets: the events it missed since ``(offset, epoch)`` with
        ``recovered: true``, or a fresh snapshot with ``recovered: false`` when the gap is
        older than the history window, the epoch changed, or it asked for no recovery."""
        if since is not None:
            offset, epoch = since
            missed = self.history.since(offset, self.offset, now) if epoch == self.epoch else None
            if missed is not None:
                return {
                    **self._current(now),
                    "recovered": True,
                    "events": [e.to_wire() for e in missed],
                }
        return self.snapshot(now)

    def _current(self, now: float) -> dict[str, Any]:
        return {
            "room": self.info.to_wire(),
            "epoch": self.epoch,
            "offset": self.offset,
            "pinned": self.pinned.card() if self.pinned else None,
            "viewers": self.viewers(now),
            "peak_viewers": self.peak_viewers,
            "reactions": dict(self.reactions),
        }

    def durable_state(self) -> dict[str, Any]:
        """The part of the room persisted beside its events."""
        return {
            "pinned": self.pinned.card() if self.pinned else None,
            "reactions": dict(self.reactions),
            "peak_viewers": self.peak_viewers,
        }

    @classmethod
    def restore(
        cls,
        info: RoomInfo,
        *,
        epoch: str,
        offset: int,
        state: dict[str, Any],
        history: list[Event],
        history_size: int = HISTORY_SIZE,
        history_age: float = HISTORY_AGE,
    ) -> Room:
        pinned = state.get("pinned")
        return cls(
            info,
            epoch=epoch,
            offset=offset,
            pinned=Product.from_card(pinned) if pinned else None,
            reactions=state.get("reactions") or {},
            peak_viewers=int(state.get("peak_viewers") or 0),
            history=history,
            history_size=history_size,
            history_age=history_age,
        )


def _clean_text(text: str) -> str:
    cleaned = text.strip()
    if not cleaned:
        raise InvalidRequest("message must not be empty")
    if len(cleaned) > MAX_CHAT_CHARS:
        raise InvalidRequest(f"message longer than {MAX_CHAT_CHARS} characters")
    return cleaned
