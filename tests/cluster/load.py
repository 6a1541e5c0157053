"""Load for the failure drills: viewers that reconnect and recover, a host that chats, buyers
that buy with idempotency keys. Each remembers what liveshop acknowledged, so a drill can
check that nothing acknowledged was lost, whatever it killed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus

from liveshop.follower import RoomFollower, Verdict
from tests.e2e.client import Client

#: Errors a client is told to retry (protocol.md, "Errors": temporary).
TEMPORARY = {"unavailable", "rate_limited", "timeout"}


async def retrying(what: Callable[[], Any], give_up: float) -> Any:
    """Run ``what`` until it does not raise (a gateway or room restarting), until a deadline."""
    deadline = time.monotonic() + give_up
    delay = 0.1
    while True:
        try:
            return await what()
        except (OSError, AssertionError, TimeoutError, InvalidStatus, ConnectionClosed):
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, 1.0)


async def connected(conn: Client | None, url: str, token: str) -> Client:
    """``conn`` while it is open, else a new connection (retried while gateways restart)."""
    if conn is not None and not conn.closed:
        return conn
    new: Client = await retrying(lambda: Client.open(url, token, open_timeout=10), 60)
    return new


@dataclass(eq=False)
class Background:
    """A load generator running as one task until stopped."""

    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        raise NotImplementedError

    async def stop(self, grace: float = 30) -> None:
        """Let it finish what it waits for (an answer decides what counts as acknowledged)
        for up to ``grace`` seconds, then cancel it."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), grace)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


@dataclass(eq=False)
class Viewer(Background):
    """Follows one room like a real app: reconnects after a drop, resubscribes with the last
    offset it holds, resyncs on a jump in offsets. Keeps every event it took."""

    url: str
    token: str
    room: str
    follower: RoomFollower = field(init=False)
    gateways: list[str] = field(default_factory=list)
    connects: int = 0
    errors: list[str] = field(default_factory=list)
    _conn: Client | None = None
    _resync: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.follower = RoomFollower(self.room, keep=True)

    async def join(self) -> None:
        """Start following and wait until the first subscribe is answered."""
        self.start()
        await self.wait(lambda: self.follower.following, 60)

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a gateway died, a room restarted: like an app, retry
                self.errors.append(f"{type(exc).__name__}: {exc}"[:200])
            if not self._stop.is_set():
                await asyncio.sleep(0.1 + random.random() * 0.3)

    async def _session(self) -> None:
        conn = await Client.open(self.url, self.token, on_push=self._on_push, open_timeout=10)
        self._conn = conn
        self.connects += 1
        self.gateways.append(conn.hello["gateway"])
        try:
            await self._subscribe(conn)
            while not conn.closed and not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._resync.wait(), 0.5)
                if self._resync.is_set() and not conn.closed:
                    self._resync.clear()
                    await conn.request("unsubscribe", room=self.room)
                    await self._subscribe(conn)
        finally:
            self.follower.subscribing()
            await conn.close()

    async def _subscribe(self, conn: Client) -> None:
        self.follower.subscribing()
        since = self.follower.since()
        for _ in range(50):
            params: dict[str, Any] = {"room": self.room}
            if since is not None:
                params["since"] = since
            reply = await conn.request("subscribe", **params)
            if "result" in reply:
                self.follower.on_subscribed(reply["result"])
                return
            if reply["error"]["code"] not in TEMPORARY:
                raise RuntimeError(f"subscribe refused: {reply['error']}")
            await asyncio.sleep(0.2)
        raise RuntimeError("subscribe kept failing")

    def _on_push(self, push: dict[str, Any]) -> None:
        if push.get("push") != "room" or push.get("room") != self.room:
            return
        verdict, _ = self.follower.on_push(push)
        if verdict in (Verdict.GAP, Verdict.NEW_EPOCH):
            self._resync.set()

    def chats(self) -> list[str]:
        return [e["text"] for e in self.follower.events if e["kind"] == "chat"]

    async def wait(self, predicate: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"viewer of {self.room}: condition not met in {timeout}s")
            await asyncio.sleep(0.05)

    async def stop(self, grace: float = 0) -> None:
        await super().stop(grace)
        if self._conn is not None:
            await self._conn.close()


@dataclass(eq=False)
class Chatter(Background):
    """A host chatting into rooms at a steady pace; remembers each acknowledged message."""

    url: str
    token: str
    rooms: list[str]
    interval: float = 0.05
    acked: dict[str, list[str]] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    async def _run(self) -> None:
        conn: Client | None = None
        while not self._stop.is_set():
            try:
                conn = await connected(conn, self.url, self.token)
                await self._say(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.refused.append(f"{type(exc).__name__}: {exc}"[:200])
                conn = None
            await asyncio.sleep(self.interval)

    async def _say(self, conn: Client) -> None:
        room = self.rooms[next(self._seq) % len(self.rooms)]
        text = f"m{time.monotonic_ns()}"
        reply = await conn.request("chat", room=room, text=text)
        if "result" in reply:
            self.acked.setdefault(room, []).append(text)
        else:
            self.refused.append(reply["error"]["code"])

    def total(self) -> int:
        return sum(len(v) for v in self.acked.values())


@dataclass(eq=False)
class Buyer(Background):
    """Buys one unit at a time with a fresh key, retrying temporary errors with the same key
    (as the protocol asks), and remembers every order it was told about."""

    url: str
    token: str
    room: str
    sku: str
    user: str
    orders: dict[str, str] = field(default_factory=dict)  # key -> order id
    #: Error codes the protocol answered with, and transport failures (retried alike).
    codes: list[str] = field(default_factory=list)
    drops: int = 0
    sold_out: bool = False
    failure: str | None = None

    async def _run(self) -> None:
        conn: Client | None = None
        n = 0
        while not self._stop.is_set() and not self.sold_out:
            key = f"{self.user}-{n}"
            n += 1
            while not self._stop.is_set():
                try:
                    conn = await connected(conn, self.url, self.token)
                    reply = await conn.request(
                        "buy", room=self.room, sku=self.sku, quantity=1, key=key
                    )
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.drops += 1
                    conn = None
                    await asyncio.sleep(0.1)
                    continue
                if "result" in reply:
                    self.orders[key] = reply["result"]["order"]
                    break
                code = reply["error"]["code"]
                self.codes.append(code)
                if code == "out_of_stock":
                    self.sold_out = True
                    break
                if code not in TEMPORARY:
                    self.failure = f"buy refused: {reply['error']}"
                    return
                await asyncio.sleep(0.1)  # the same key again: never a second order
            await asyncio.sleep(0.02)


class Crowd:
    """Everything a drill started, stopped at the end whether the drill passed or not."""

    def __init__(self) -> None:
        self.parts: list[Background] = []

    def add(self, part: Background) -> None:
        self.parts.append(part)

    async def stop(self) -> None:
        parts, self.parts = self.parts, []
        await asyncio.gather(*(p.stop() for p in parts), return_exceptions=True)
