"""A lean WebSocket client for load generation: one asyncio protocol per connection.

The benchmark viewers must not be the bottleneck: on a 2-core machine they share the cores with
the server under test, and the ``websockets`` client costs a task, a queue hop and a frame
object per message. Here a socket is one ``asyncio.Protocol``: the upgrade request is written
by hand, server frames (unmasked, never compressed: both servers run without compression) are
parsed in ``data_received`` and handed to a callback as bytes. Client frames are masked with a
random key as RFC 6455 requires. Requests wait for their reply by ``id``.

Used by ``bench_room.py``; it speaks the liveshop protocol's msgpack subprotocol, which the
bare baseline server speaks too.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable
from typing import Any

import msgpack
from websockets.frames import apply_mask  # the C speed-up when built
from websockets.utils import accept_key

SUBPROTOCOL = "liveshop.v1.msgpack"
_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0, 1, 2, 8, 9, 10
MAX_MESSAGE = 4 * 1024 * 1024

#: Called with (socket, decoded message) for every push (a message without a reply ``id``).
OnPush = Callable[["LeanSocket", dict[str, Any]], None]
#: Called with the socket once the connection is gone.
OnClose = Callable[["LeanSocket"], None]


class Closed(Exception):
    """The connection closed; ``code`` is the close code received, if any."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"closed {code if code is not None else 'without close frame'} {reason}")
        self.code = code


class LeanSocket(asyncio.Protocol):
    """One client connection. ``filter`` (bytes) skips decoding pushes that do not contain
    it; ``on_raw``, when set, gets every push undecoded instead of ``on_push``; ``owner`` is
    the caller's (e.g. the viewer this socket belongs to)."""

    def __init__(
        self, host: str, port: int, path: str, on_push: OnPush | None, on_close: OnClose | None
    ) -> None:
        self.host, self.port, self.path = host, port, path
        self.on_push = on_push
        self.on_close = on_close
        self.owner: Any = None
        self.on_raw: Callable[[LeanSocket, bytes], None] | None = None
        self.filter: bytes | None = None
        self.transport: asyncio.Transport | None = None
        self._key = base64.b64encode(os.urandom(16))
        self._buf = bytearray()
        self._upgraded = False
        self._fragments: list[bytes] = []
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.close_code: int | None = None
        self.closed = False

    # -- opening and requests ---------------------------------------------------------------

    @classmethod
    async def open(
        cls, url: str, on_push: OnPush | None = None, on_close: OnClose | None = None
    ) -> LeanSocket:
        assert url.startswith("ws://"), "loopback benchmarks use ws://"
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.rpartition(":")
        sock = cls(host, int(port), "/" + path, on_push, on_close)
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: sock, host, int(port))
        await sock._opened
        return sock

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for its reply; an error reply raises RuntimeError."""
        rid = message["id"]
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        self.send(message)
        try:
            reply = await fut
        finally:
            self._waiting.pop(rid, None)
        if "error" in reply:
            raise RuntimeError(f"{message.get('op')} failed: {reply['error'].get('code')}")
        result: dict[str, Any] = reply.get("result") or {}
        return result

    def send(self, message: dict[str, Any]) -> None:
        self._write_frame(_OP_BINARY, msgpack.packb(message))

    def close(self, code: int = 1000) -> None:
        """Send a close frame and drop the connection (the benchmark does not wait)."""
        if self.transport is not None and not self.closed:
            self._write_frame(_OP_CLOSE, code.to_bytes(2, "big"))
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _write_frame(self, opcode: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise Closed(self.close_code, "cannot send")
        n = len(payload)
        if n < 126:
            header = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        self.transport.write(header + mask + apply_mask(payload, mask))

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self._key.decode()}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        if not self._upgraded:
            self._buf += data
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buf[:end]).decode("latin-1")
            rest = bytes(self._buf[end + 4 :])
            self._buf.clear()
            error = self._check_upgrade(head)
            if error:
                self._fail(error)
                return
            self._upgraded = True
            self._opened.set_result(None)
            if not rest:
                return
            data = rest
        buf = self._buf
        if buf:
            buf += data
            data = bytes(buf)
            buf.clear()
        pos, size = 0, len(data)
        while size - pos >= 2:
            b0, b1 = data[pos], data[pos + 1]
            n, head = b1 & 0x7F, 2
            if n == 126:
                if size - pos < 4:
                    break
                n, head = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
            elif n == 127:
                if size - pos < 10:
                    break
                n, head = int.from_bytes(data[pos + 2 : pos + 10], "big"), 10
            if n > MAX_MESSAGE:
                self._fail(f"frame of {n} bytes")
                return
            end = pos + head + n
            if end > size:
                break
            self._frame(b0, data[pos + head : end])
            pos = end
        if pos < size:
            buf += data[pos:]

    def _frame(self, b0: int, payload: bytes) -> None:
        opcode = b0 & 0x0F
        if opcode in (_OP_TEXT, _OP_BINARY, _OP_CONT):
            if not b0 & 0x80:  # not final: keep the pieces
                self._fragments.append(payload)
                return
            if self._fragments:
                payload = b"".join((*self._fragments, payload))
                self._fragments.clear()
            self._message(payload)
        elif opcode == _OP_PING:
            self._write_frame(_OP_PONG, payload)
        elif opcode == _OP_CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if self.transport is not None:
                self.transport.close()

    def _message(self, payload: bytes) -> None:
        waiting = self._waiting
        if not waiting:
            if self.on_raw is not None:
                self.on_raw(self, payload)
                return
            if self.filter is not None and self.filter not in payload:
                return  # a push this reader does not need to look at
        message = msgpack.unpackb(payload)
        rid = message.get("id")
        if rid is not None and rid in waiting:
            fut = waiting.pop(rid)
            if not fut.done():
                fut.set_result(message)
        elif "push" in message and self.on_push is not None:
            self.on_push(self, message)

    def _check_upgrade(self, head: str) -> str | None:
        status, *lines = head.split("\r\n")
        if " 101 " not in status + " ":
            return f"upgrade refused: {status}"
        headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
        if headers.get("sec-websocket-accept") != accept_key(self._key.decode()):
            return "bad Sec-WebSocket-Accept"
        if headers.get("sec-websocket-protocol") != SUBPROTOCOL:
            return f"server did not select {SUBPROTOCOL}"
        return None

    def _fail(self, why: str) -> None:
        if not self._opened.done():
            self._opened.set_exception(ConnectionError(why))
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        error = Closed(self.close_code)
        if not self._opened.done():
            self._opened.set_exception(ConnectionError(f"connection lost: {exc}"))
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(error)
        self._waiting.clear()
        if self.on_close is not None:
            self.on_close(self)
