"""A test client that speaks the public protocol: request/reply by id, pushes queued."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from typing import Any

import msgpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from liveshop.protocol import SUBPROTOCOL_MSGPACK

Push = dict[str, Any]


class Client:
    def __init__(
        self, ws: ClientConnection, binary: bool, on_push: Callable[[Push], None] | None = None
    ) -> None:
        self.ws = ws
        self.binary = binary
        #: Called with each push as it arrives (besides keeping it in ``pushes``).
        self.on_push = on_push
        #: The ``connect`` result (user, expiry, the gateway that answered).
        self.hello: dict[str, Any] = {}
        self.pushes: list[Push] = []
        self.replies: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self.orphans: list[dict[str, Any]] = []  # replies nobody waited for (e.g. id null)
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def open(
        cls,
        url: str,
        token: str | None = None,
        *,
        binary: bool = False,
        on_push: Callable[[Push], None] | None = None,
        **kwargs: Any,
    ) -> Client:
        protocols = [Subprotocol(SUBPROTOCOL_MSGPACK)] if binary else None
        ws = await connect(url, subprotocols=protocols, compression=None, **kwargs)
        client = cls(ws, binary, on_push)
        if token is not None:
            try:
                reply = await client.request("connect", token=token)
                assert "result" in reply, reply
            except BaseException:
                await client.close()
                raise
            client.hello = reply["result"]
        return client

    @property
    def closed(self) -> bool:
        return self._reader.done()

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                message = msgpack.unpackb(frame) if self.binary else json.loads(frame)
                if "push" in message:
                    self.pushes.append(message)
                    if self.on_push is not None:
                        self.on_push(message)
                elif message.get("id") in self.replies:
                    self.replies.pop(message["id"]).set_result(message)
                else:
                    self.orphans.append(message)
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            # Nobody will answer these now: fail them instead of letting them time out.
            for fut in self.replies.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection closed"))
            self.replies.clear()
        self._changed.set()

    def encode(self, message: dict[str, Any]) -> str | bytes:
        return msgpack.packb(message) if self.binary else json.dumps(message)

    async def send_raw(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    async def request(self, op: str, timeout: float = 15.0, **params: Any) -> dict[str, Any]:
        rid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.replies[rid] = fut
        try:
            await self.ws.send(self.encode({"id": rid, "op": op, **params}))
            return await asyncio.wait_for(fut, timeout)
        finally:
            self.replies.pop(rid, None)

    async def result(self, op: str, **params: Any) -> dict[str, Any]:
        reply = await self.request(op, **params)
        assert "result" in reply, reply
        result: dict[str, Any] = reply["result"]
        return result

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        async def loop() -> Any:
            while True:
                value = predicate()
                if value:
                    return value
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(loop(), timeout)

    def events(self, room: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for p in self.pushes
            if p["push"] == "room" and room in (None, p["room"])
            for e in p["events"]
        ]

    async def wait_event(self, kind: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for event in self.events():
                if event["kind"] == kind and all(event.get(k) == v for k, v in match.items()):
                    return event
            return None

        event: dict[str, Any] = await self.wait_for(find, timeout)
        return event

    async def wait_closed(self, timeout: float = 10.0) -> int | None:
        await asyncio.wait_for(self.ws.wait_closed(), timeout)
        return self.ws.close_code

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)
        self._reader.cancel()
        # The caller's own cancellation still propagates (gather re-raises it).
        await asyncio.gather(self._reader, return_exceptions=True)
