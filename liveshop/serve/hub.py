"""A gateway's local view of the rooms its sockets watch, and the broadcast to them.

The broker delivers one message per room per tick; the hub decodes it once, encodes the
push once per wire codec, frames it once and writes the same bytes to every live socket.
Sockets still joining (snapshot in flight) buffer messages so that nothing between the
snapshot and the live stream is lost or shown twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import msgpack
from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from liveshop.protocol import Codec, encode_frame, room_push

log = logging.getLogger(__name__)

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
        self.messages_in = 0
        self.frames_out = 0

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
        self.frames_out += feed.deliver(message)
        if self.on_ban is not None:
            for event in message["events"]:
                if event["kind"] == "user_banned":
                    self.on_ban(room_id, event["user_id"])
