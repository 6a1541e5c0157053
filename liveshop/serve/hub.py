"""A gateway's local view of the rooms its sockets watch, and the broadcast to them.

The broker delivers one message per room per tick; the hub decodes it once, encodes the
push once per wire codec, frames it once and writes the same bytes to every live socket.
Sockets still joining (snapshot in flight) buffer messages so that nothing between the
snapshot and the live stream is lost or shown twice.

The broker is at-most-once: a message Redis dropped (an outage, a reconnect) shows up as a
jump in offsets. The hub fills such a gap itself, once for all its sockets, by asking the room
for what it missed before passing anything newer on; a million viewers resubscribing on their
own after a Redis blip would be a storm. Clients still check offsets (the gap the hub could
not fill reaches them as a jump, and they recover with ``since``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import msgpack
from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from liveshop import clock
from liveshop.protocol import Codec, encode_frame, room_push

log = logging.getLogger(__name__)

Message = dict[str, Any]
#: What a room published after ``(offset, epoch)``: its answer to a recovering subscriber.
Fetch = Callable[[str, tuple[int, str]], Awaitable[dict[str, Any]]]
#: How long a gap repair may ask the room; the room's sockets get nothing meanwhile.
REPAIR_TIMEOUT = 3.0

_OPEN = State.OPEN


def server_frame(payload: str | bytes) -> bytes:
    """One unmasked, unfragmented WebSocket frame as a server sends it (text for JSON, binary
    for msgpack), serialized once per push instead of once per socket."""
    if isinstance(payload, str):
        return Frame(Opcode.TEXT, payload.encode()).serialize(mask=False, extensions=[])
    return Frame(Opcode.BINARY, payload).serialize(mask=False, extensions=[])


def write_all(conns: Iterable[ServerConnection], frame: bytes) -> None:
    """Write a ready frame to every open socket. ``websockets.broadcast`` would build the same
    frame again for each socket; at 10,000 viewers that per-socket work is most of a push.
    Safe because the gateway never sends fragmented messages or uses extensions (no
    compression), and every other write goes through the connection at once, in order."""
    for ws in conns:
        if ws.protocol.state is _OPEN:
            try:  # noqa: SIM105 - contextlib.suppress costs more than the write
                ws.transport.write(frame)
            except Exception:  # closed under us: its reader sees the close
                pass


class RoomFeed:
    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self.live: dict[Codec, set[ServerConnection]] = {codec: set() for codec in Codec}
        self.joining: dict[ServerConnection, list[dict[str, Any]]] = {}
        #: Sockets past their join whose snapshot may be ahead of the broker: the message that
        #: carried the snapshot's last events can still be on its way through Redis (the reply
        #: came over Ray). They skip events at or below their offset until one newer arrives.
        self.catching_up: dict[ServerConnection, tuple[Codec, int]] = {}
        #: Sockets of the room's staff (hosts, moderators): they also get staff-only pushes.
        self.staff: dict[ServerConnection, Codec] = {}
        #: The last event this feed passed on, from the broker or a repair: the next message
        #: should start right after it. None until the first message with events.
        self.epoch: str | None = None
        self.offset: int | None = None
        #: Messages held back while a gap is filled from the room (None: no repair running).
        self.held: list[Message] | None = None
        #: Redis came back during a repair: ask the room once more when it ends.
        self.resync_due = False

    def __len__(self) -> int:
        live = sum(len(c) for c in self.live.values())
        return live + len(self.joining) + len(self.catching_up)

    def begin_join(self, ws: ServerConnection) -> None:
        self.joining[ws] = []

    def finish_join(
        self, ws: ServerConnection, codec: Codec, offset: int, *, staff: bool = False
    ) -> None:
        """The socket was sent everything up to ``offset`` (its reply): send it what its
        buffer holds after that, then let it catch up with the broker. Call with no await
        between the reply and this, so that no message falls in between."""
        buffer = self.joining.pop(ws, None)
        if buffer is None:
            return  # it left (or closed) while joining
        if staff:
            self.staff[ws] = codec
        for message in buffer:
            push = room_push(
                self.room_id, message["epoch"], message["events"], message.get("state") or {}
            )
            _, offset = self._send_after(ws, codec, offset, message, push, {})
        self.catching_up[ws] = (codec, offset)

    def members(self) -> list[ServerConnection]:
        live = [ws for conns in self.live.values() for ws in conns]
        return live + list(self.joining) + list(self.catching_up)

    def remove(self, ws: ServerConnection) -> None:
        self.joining.pop(ws, None)
        self.staff.pop(ws, None)
        self.catching_up.pop(ws, None)
        for conns in self.live.values():
            conns.discard(ws)

    def gap_before(self, message: Message) -> bool:
        """Events between the last one passed on and this message's first are missing."""
        events = message["events"]
        return bool(
            events
            and self.offset is not None
            and message["epoch"] == self.epoch
            and events[0]["offset"] > self.offset + 1
        )

    def fresh(self, message: Message) -> Message | None:
        """``message`` without the events already passed on (after a repair, the held
        messages overlap what it fetched); None if nothing is left to send."""
        events = message["events"]
        if (
            self.offset is None
            or message["epoch"] != self.epoch
            or not events
            or events[0]["offset"] > self.offset
        ):
            return message
        newer = [e for e in events if e["offset"] > self.offset]
        if not newer and not message.get("state"):
            return None
        return {**message, "events": newer}

    def advance(self, message: Message) -> None:
        if message["epoch"] != self.epoch:
            self.epoch, self.offset = message["epoch"], None
        if message["events"]:
            self.offset = message["events"][-1]["offset"]

    def deliver(self, message: dict[str, Any]) -> int:
        push = room_push(
            self.room_id, message["epoch"], message["events"], message.get("state") or {}
        )
        sent = 0
        frames: dict[Codec, bytes] = {}
        for codec, conns in self.live.items():
            if conns:
                frames[codec] = server_frame(encode_frame(push, codec))
                write_all(conns, frames[codec])
                sent += len(conns)
        if self.catching_up:
            sent += self._catch_up(message, push, frames)
        for buffer in self.joining.values():
            buffer.append(message)
        return sent

    def deliver_staff(self, push: dict[str, Any]) -> int:
        """A staff-only push (live show analytics): encoded once per codec, no offsets (each
        one replaces the last, so a missed one is not recovered)."""
        frames: dict[Codec, bytes] = {}
        for ws, codec in self.staff.items():
            frame = frames.get(codec)
            if frame is None:
                frame = frames[codec] = server_frame(encode_frame(push, codec))
            write_all((ws,), frame)
        return len(self.staff)

    def _catch_up(
        self, message: dict[str, Any], push: dict[str, Any], frames: dict[Codec, bytes]
    ) -> int:
        sent = 0
        for ws, (codec, offset) in list(self.catching_up.items()):
            wrote, after = self._send_after(ws, codec, offset, message, push, frames)
            if not wrote:
                continue
            sent += 1
            if after > offset:  # it got an event it did not have: in step with the broker
                del self.catching_up[ws]
                self.live[codec].add(ws)
        return sent

    def _send_after(
        self,
        ws: ServerConnection,
        codec: Codec,
        offset: int,
        message: dict[str, Any],
        push: dict[str, Any],
        frames: dict[Codec, bytes],
    ) -> tuple[bool, int]:
        """Write to ``ws`` what ``message`` holds after ``offset`` (newer events, and the state):
        whether anything was written, and the offset the socket then holds."""
        events = message["events"]
        state = message.get("state")
        if not events or events[0]["offset"] > offset:
            if not events and not state:
                return False, offset
            frame = frames.get(codec)  # the same bytes every live socket gets
            if frame is None:
                frame = frames[codec] = server_frame(encode_frame(push, codec))
            write_all((ws,), frame)
            return True, events[-1]["offset"] if events else offset
        newer = [e for e in events if e["offset"] > offset]
        if not newer and not state:
            return False, offset
        own = room_push(self.room_id, message["epoch"], newer, state or {})
        write_all((ws,), server_frame(encode_frame(own, codec)))
        return True, newer[-1]["offset"] if newer else offset


class Hub:
    def __init__(self) -> None:
        self.feeds: dict[str, RoomFeed] = {}
        #: Called with (room, user) for every ban event delivered, after the broadcast.
        self.on_ban: Callable[[str, str], None] | None = None
        #: Asks a room for what it published after an offset; without it gaps pass through.
        self.fetch: Fetch | None = None
        #: Called with each room message's age (seconds since the room sent it) on delivery.
        self.observe: Callable[[float], None] | None = None
        self.messages_in = 0
        self.frames_out = 0
        self.gaps_repaired = 0
        self.gaps_unrepaired = 0
        self._repairs: set[asyncio.Task[None]] = set()

    def feed(self, room_id: str) -> RoomFeed:
        feed = self.feeds.get(room_id)
        if feed is None:
            feed = self.feeds[room_id] = RoomFeed(room_id)
        return feed

    def on_message(self, room_id: str, payload: bytes) -> None:
        """Called by the broker subscriber for every room message."""
        self.messages_in += 1
        feed = self.feeds.get(room_id)
        if feed is None:
            return
        try:
            message = msgpack.unpackb(payload, raw=False)
        except Exception:
            log.error("undecodable message on room %s dropped", room_id)
            return
        staff = message.get("staff")
        if staff is not None:
            self.frames_out += feed.deliver_staff(staff)
            return
        if feed.held is not None:  # a repair is running: keep the order
            feed.held.append(message)
        elif self.fetch is not None and feed.gap_before(message):
            feed.held = [message]
            self._repair(feed)
        else:
            self._deliver(feed, message)

    def resync(self) -> None:
        """The broker connection came back: whatever rooms published meanwhile is lost, and
        a room that publishes nothing more would never show the gap. Ask each room now (a
        feed already being repaired asks once more when that repair ends)."""
        if self.fetch is None:
            return
        for feed in self.feeds.values():
            if feed.offset is None:
                continue
            if feed.held is None:
                feed.held = []
                self._repair(feed)
            else:
                feed.resync_due = True

    def _deliver(self, feed: RoomFeed, message: Message) -> None:
        fresh = feed.fresh(message)
        if fresh is None:
            return
        self.frames_out += feed.deliver(fresh)
        feed.advance(fresh)
        if self.on_ban is not None:
            for event in fresh["events"]:
                if event["kind"] == "user_banned":
                    self.on_ban(feed.room_id, event["user_id"])
        sent = fresh.get("sent")
        if sent is not None and self.observe is not None:
            self.observe(clock.now() - sent)

    def _repair(self, feed: RoomFeed) -> None:
        task = asyncio.get_running_loop().create_task(self._fill(feed))
        self._repairs.add(task)
        task.add_done_callback(self._repairs.discard)

    async def _fill(self, feed: RoomFeed) -> None:
        """Fetch what the feed missed and pass it on, then what was held meanwhile; again if
        the held messages jump once more (a second lost message) or Redis came back
        meanwhile. A repair that fails passes everything on: no loop, clients take over."""
        while True:
            feed.resync_due = False
            repaired = await self._fetch_missed(feed)
            held, feed.held = feed.held or [], None
            if self.feeds.get(feed.room_id) is not feed:
                return  # nobody watches it any more
            for i, message in enumerate(held):
                if repaired and feed.gap_before(message):
                    feed.held = held[i:]
                    break
                self._deliver_safely(feed, message)
            else:
                if not (repaired and feed.resync_due):
                    return
                feed.held = []

    async def _fetch_missed(self, feed: RoomFeed) -> bool:
        """Pass on what the room published after the feed's offset; False if it could not
        say (away, too slow, the gap older than its history, a new epoch)."""
        assert self.fetch is not None and feed.offset is not None and feed.epoch is not None
        epoch = feed.epoch
        try:
            # Bounded: every socket of the room waits meanwhile.
            result = await asyncio.wait_for(
                self.fetch(feed.room_id, (feed.offset, epoch)), REPAIR_TIMEOUT
            )
        except Exception as exc:  # the room is away: the clients' own checks take over
            log.warning("room %s: cannot fill a broker gap: %r", feed.room_id, exc)
            result = None
        if result is None or not result.get("recovered") or result["epoch"] != epoch:
            self.gaps_unrepaired += 1
            return False
        if result["events"] and self.feeds.get(feed.room_id) is feed:
            self.gaps_repaired += 1
            self._deliver_safely(feed, {"epoch": epoch, "events": result["events"], "state": {}})
        return True

    def _deliver_safely(self, feed: RoomFeed, message: Message) -> None:
        try:
            self._deliver(feed, message)
        except Exception:  # one bad message must not lose the rest of a repair
            log.exception("room %s: delivery after a repair failed", feed.room_id)
