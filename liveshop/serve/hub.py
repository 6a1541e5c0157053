"""A gateway's local view of the rooms its sockets watch, and the broadcast to them.

The broker delivers one message per room per tick; the hub decodes it once, encodes the
push once per wire codec and hands the same frame to every live socket with
``websockets.broadcast``. Sockets still joining (snapshot in flight) buffer messages so that
nothing between the snapshot and the live stream is lost or shown twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgpack
from websockets.asyncio.server import ServerConnection, broadcast

from liveshop.protocol import Codec, encode_frame, room_push

log = logging.getLogger(__name__)


class RoomFeed:
    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self.live: dict[Codec, set[ServerConnection]] = {codec: set() for codec in Codec}
        self.joining: dict[ServerConnection, list[dict[str, Any]]] = {}

    def __len__(self) -> int:
        return sum(len(c) for c in self.live.values()) + len(self.joining)

    def begin_join(self, ws: ServerConnection) -> None:
        self.joining[ws] = []

    def finish_join(self, ws: ServerConnection, codec: Codec) -> list[dict[str, Any]]:
        """Move a joining socket to the live set; return what it buffered meanwhile.

        No await happens between taking the buffer and going live, so no message falls in
        between: later messages reach the socket through the broadcast.
        """
        buffered = self.joining.pop(ws, [])
        self.live[codec].add(ws)
        return buffered

    def members(self) -> list[ServerConnection]:
        return [ws for conns in self.live.values() for ws in conns] + list(self.joining)

    def remove(self, ws: ServerConnection) -> None:
        self.joining.pop(ws, None)
        for conns in self.live.values():
            conns.discard(ws)

    def deliver(self, message: dict[str, Any]) -> int:
        push = room_push(
            self.room_id, message["epoch"], message["events"], message.get("state") or {}
        )
        sent = 0
        for codec, conns in self.live.items():
            if conns:
                broadcast(conns, encode_frame(push, codec))
                sent += len(conns)
        for buffer in self.joining.values():
            buffer.append(message)
        return sent


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
        self.frames_out += feed.deliver(message)
        if self.on_ban is not None:
            for event in message["events"]:
                if event["kind"] == "user_banned":
                    self.on_ban(room_id, event["user_id"])
