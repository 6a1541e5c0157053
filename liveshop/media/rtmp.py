"""The server side of RTMP publishing, without I/O: bytes in, events and bytes out.

What OBS, hardware encoders and FFmpeg do when they publish: handshake, ``connect``,
``releaseStream``/``FCPublish``/``createStream``, ``publish <stream key>``, then audio, video
and metadata messages. The caller decides whether a stream key may publish (``accept`` or
``reject``), so the listener can check keys against the database and refuse a second
publisher; FFmpeg's own listen mode accepts any key, which is why liveshop speaks RTMP
itself. Media messages come out as FLV tags, untouched.

Limits guard the server from a hostile peer: message and chunk sizes are capped and
anything malformed raises :class:`~liveshop.errors.BadStream`.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Any

from liveshop.errors import BadStream
from liveshop.media import amf
from liveshop.media.flv import AUDIO, SCRIPT, VIDEO, Tag

HANDSHAKE_SIZE = 1536
VERSION = 3
#: A video message (one coded frame) above this is refused: 4K intra frames fit easily.
MAX_MESSAGE = 8 * 1024 * 1024
MAX_CHUNK_SIZE = 1 << 24
OUT_CHUNK_SIZE = 4096
WINDOW = 2_500_000

SET_CHUNK_SIZE, ABORT, ACK, USER_CONTROL, WINDOW_ACK_SIZE, PEER_BANDWIDTH = 1, 2, 3, 4, 5, 6
AMF0_DATA, AMF3_COMMAND, AMF0_COMMAND = 18, 17, 20
PUBLISH_STREAM_ID = 1


@dataclass(frozen=True)
class PublishRequested:
    """The publisher asked to go live on ``key``; answer with accept() or reject()."""

    app: str
    key: str


@dataclass(frozen=True)
class Media:
    tag: Tag


@dataclass(frozen=True)
class Unpublished:
    """The publisher ended the stream cleanly (``FCUnpublish``/``deleteStream``)."""


Event = PublishRequested | Media | Unpublished


@dataclass
class _ChunkStream:
    timestamp: int = 0
    delta: int = 0
    length: int = 0
    kind: int = 0
    stream_id: int = 0
    extended: bool = False
    buffer: bytearray = field(default_factory=bytearray)


class RtmpServerSession:
    def __init__(self) -> None:
        self._in = bytearray()
        self._out = bytearray()
        self._state = "c0c1"
        self._chunk_size = 128
        self._streams: dict[int, _ChunkStream] = {}
        self._received = 0
        self._acked = 0
        self._peer_window = 0
        self.app = ""
        self.key: str | None = None
        self.publishing = False
        self._publish_txn = 0.0
        self._chunk_size_out = 128
        self._deciding = False

    # -- public API ----------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Event]:
        """Events from ``data`` (and bytes buffered before it). Parsing pauses after a
        :class:`PublishRequested` until ``accept``/``reject``: call ``receive(b"")`` then to
        get the events a pipelining publisher sent right behind its ``publish``."""
        self._in += data
        self._received += len(data)
        events: list[Event] = []
        while True:
            before = len(self._in)
            if self._state == "c0c1":
                self._handshake_c0c1()
            elif self._state == "c2":
                if len(self._in) < HANDSHAKE_SIZE:
                    break
                del self._in[:HANDSHAKE_SIZE]  # C2 echoes S1; nothing in it to check
                self._state = "chunks"
            elif not self._deciding:
                self._read_chunk(events)
            if len(self._in) == before or self._deciding:
                break
        if self._peer_window and self._received - self._acked >= self._peer_window:
            self._acked = self._received
            self._send(2, ACK, struct.pack(">I", self._received & 0xFFFFFFFF))
        return events

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def accept(self) -> None:
        """Let the pending ``publish`` go live."""
        self.publishing, self._deciding = True, False
        self._status("status", "NetStream.Publish.Start", "the stream is now published")

    def reject(self, code: str, description: str) -> None:
        """Refuse the pending ``publish`` (the caller closes the connection after sending
        this): ``NetStream.Publish.BadName`` for a wrong key or one already live."""
        self._deciding = False
        self._status("error", code, description)

    # -- handshake -----------------------------------------------------------------------

    def _handshake_c0c1(self) -> None:
        if not self._in:
            return
        if self._in[0] != VERSION:
            raise BadStream(f"not RTMP (version byte {self._in[0]})")
        if len(self._in) < 1 + HANDSHAKE_SIZE:
            return
        c1 = bytes(self._in[1 : 1 + HANDSHAKE_SIZE])
        del self._in[: 1 + HANDSHAKE_SIZE]
        # S1: our time, zero version (so clients skip the digest scheme), random bytes.
        s1 = b"\x00" * 8 + os.urandom(HANDSHAKE_SIZE - 8)
        self._out += bytes([VERSION]) + s1 + c1  # S0, S1, S2 (= C1)
        self._state = "c2"

    # -- chunks --------------------------------------------------------------------------

    def _read_chunk(self, events: list[Event]) -> None:
        data = self._in
        if not data:
            return
        pos = 1
        fmt, csid = data[0] >> 6, data[0] & 0x3F
        if csid == 0:
            if len(data) < 2:
                return
            csid, pos = 64 + data[1], 2
        elif csid == 1:
            if len(data) < 3:
                return
            csid, pos = 64 + data[1] + data[2] * 256, 3
        header = (11, 7, 3, 0)[fmt]
        if len(data) < pos + header:
            return
        cs = self._streams.get(csid)
        if cs is None:
            if fmt != 0:
                raise BadStream(f"chunk stream {csid} starts without a full header")
            cs = self._streams[csid] = _ChunkStream()
        new_message = not cs.buffer
        ts_field = int.from_bytes(data[pos : pos + 3], "big") if fmt < 3 else 0
        length, kind, stream_id = cs.length, cs.kind, cs.stream_id
        if fmt <= 1:
            length = int.from_bytes(data[pos + 3 : pos + 6], "big")
            kind = data[pos + 6]
        if fmt == 0:
            stream_id = int.from_bytes(data[pos + 7 : pos + 11], "little")
        pos += header
        extended = ts_field == 0xFFFFFF if fmt < 3 else cs.extended
        if extended:
            if len(data) < pos + 4:
                return
            if fmt < 3:
                ts_field = int.from_bytes(data[pos : pos + 4], "big")
            pos += 4
        if length > MAX_MESSAGE:
            raise BadStream(f"message of {length} bytes is over the {MAX_MESSAGE} limit")
        size = min(self._chunk_size, length - len(cs.buffer)) if length else 0
        if len(data) < pos + size:
            return  # wait for the whole chunk before changing any state
        if new_message:
            if fmt == 0:
                cs.timestamp, cs.delta = ts_field, 0
            elif fmt in (1, 2):
                cs.delta = ts_field
                cs.timestamp += ts_field
            else:
                cs.timestamp += cs.delta
        cs.length, cs.kind, cs.stream_id, cs.extended = length, kind, stream_id, extended
        cs.buffer += data[pos : pos + size]
        del data[: pos + size]
        if len(cs.buffer) >= cs.length:
            body = bytes(cs.buffer)
            cs.buffer.clear()
            self._message(cs.kind, cs.timestamp, cs.stream_id, body, events)

    def _message(self, kind: int, ts: int, stream_id: int, body: bytes, out: list[Event]) -> None:
        if kind == SET_CHUNK_SIZE:
            if len(body) < 4:
                raise BadStream("short Set Chunk Size")
            size = struct.unpack(">I", body[:4])[0] & 0x7FFFFFFF
            if not 1 <= size <= MAX_CHUNK_SIZE:
                raise BadStream(f"chunk size {size} out of range")
            self._chunk_size = size
        elif kind == ABORT:
            if len(body) >= 4:
                aborted = self._streams.get(struct.unpack(">I", body[:4])[0])
                if aborted is not None:
                    aborted.buffer.clear()
        elif kind == WINDOW_ACK_SIZE:
            if len(body) >= 4:
                self._peer_window = struct.unpack(">I", body[:4])[0]
        elif kind in (AUDIO, VIDEO):
            if self.publishing and body:
                out.append(Media(Tag(kind, ts, body)))
        elif kind == AMF0_DATA:
            if self.publishing:
                values = amf.decode(body)
                if values and values[0] == "@setDataFrame":
                    # The publisher's metadata: a decoder wants it as plain onMetaData.
                    body = amf.encode(*values[1:])
                out.append(Media(Tag(SCRIPT, ts, body)))
        elif kind in (AMF0_COMMAND, AMF3_COMMAND):
            if kind == AMF3_COMMAND:
                body = body[1:]  # an AMF3 command is AMF0 after one format byte
            self._command(amf.decode(body), stream_id, out)
        # ACK, USER_CONTROL (ping) and others need no answer from a publishing server.

    # -- commands ------------------------------------------------------------------------

    def _command(self, values: list[Any], stream_id: int, out: list[Event]) -> None:
        if len(values) < 2 or not isinstance(values[0], str):
            raise BadStream("malformed RTMP command")
        name, txn = values[0], values[1] if isinstance(values[1], float) else 0.0
        if name == "connect":
            params = values[2] if len(values) > 2 and isinstance(values[2], dict) else {}
            self.app = str(params.get("app", ""))[:256]
            self._send(2, WINDOW_ACK_SIZE, struct.pack(">I", WINDOW))
            self._send(2, PEER_BANDWIDTH, struct.pack(">IB", WINDOW, 2))
            self._send(2, SET_CHUNK_SIZE, struct.pack(">I", OUT_CHUNK_SIZE))
            self._chunk_size_out = OUT_CHUNK_SIZE
            self._invoke(
                "_result", txn,
                {"fmsVer": "FMS/3,0,1,123", "capabilities": 31},
                {"level": "status", "code": "NetConnection.Connect.Success",
                 "description": "Connection succeeded.", "objectEncoding": 0},
            )  # fmt: skip
        elif name == "createStream":
            self._invoke("_result", txn, None, PUBLISH_STREAM_ID)
        elif name == "publish":
            key = values[3] if len(values) > 3 else None
            if not isinstance(key, str) or not key:
                raise BadStream("publish without a stream key")
            if self.key is not None:
                raise BadStream("a second publish on one connection")
            self.key = key.split("?", 1)[0][:256]
            self._publish_txn = txn
            self._deciding = True
            out.append(PublishRequested(self.app, self.key))
        elif name in ("FCUnpublish", "deleteStream", "closeStream"):
            if self.publishing:
                self.publishing = False
                out.append(Unpublished())
        elif name in ("releaseStream", "FCPublish") and txn:
            self._invoke("_result", txn, None)
        # Anything else (getStreamLength, checkBandwidth, ...) is not for a publisher.

    # -- output --------------------------------------------------------------------------

    def _status(self, level: str, code: str, description: str) -> None:
        info = {"level": level, "code": code, "description": description}
        self._invoke("onStatus", self._publish_txn, None, info, stream_id=PUBLISH_STREAM_ID)

    def _invoke(self, *values: Any, stream_id: int = 0) -> None:
        self._send(3, AMF0_COMMAND, amf.encode(*values), stream_id)

    def _send(self, csid: int, kind: int, body: bytes, stream_id: int = 0) -> None:
        header = struct.pack(">B", csid) + b"\x00\x00\x00" + len(body).to_bytes(3, "big")
        header += bytes([kind]) + struct.pack("<I", stream_id)
        size = self._chunk_size_out
        self._out += header + body[:size]
        for at in range(size, len(body), size):
            self._out += bytes([0xC0 | csid]) + body[at : at + size]
