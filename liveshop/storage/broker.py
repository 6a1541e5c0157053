"""The broker that fans room messages out from room actors to gateways (Redis pub/sub).

Guarantees, which every backend must keep (tests/integration/test_broker.py checks them):

* ``publish`` is **at-most-once**: a message reaches the subscribers connected at that moment
  or nobody; nothing is stored. Room events are durable in PostgreSQL and carry offsets, so a
  subscriber that misses one detects the gap and recovers from the room, not from the broker.
* Messages from one publisher on one channel arrive **in publish order**.
* ``subscribe`` returns only once the server has confirmed the subscription, so every
  message published after it returns is delivered (the gateway relies on this to join a
  snapshot to the live stream without a gap).
* After a lost connection the subscriber reconnects with backoff, resubscribes to every
  channel and calls ``on_reconnect`` so the owner can treat the interval as a possible gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "liveshop:room:"
#: Outside the room prefix, so that no room id can collide with it.
CONTROL_CHANNEL = "liveshop:gateways"

MessageHandler = Callable[[str, bytes], None]
ReconnectHandler = Callable[[], Awaitable[None]]


def channel_for(room_id: str) -> str:
    return CHANNEL_PREFIX + room_id


class Publisher(Protocol):
    async def publish(self, room_id: str, payload: bytes) -> int:
        """Send ``payload`` to the room's current subscribers; return how many got it."""
        ...

    async def close(self) -> None: ...


class Subscriber(Protocol):
    async def subscribe(self, room_id: str) -> None: ...

    async def unsubscribe(self, room_id: str) -> None: ...

    async def close(self) -> None: ...


class RedisPublisher:
    def __init__(self, url: str) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)

    async def publish(self, room_id: str, payload: bytes) -> int:
        return int(await self._redis.publish(channel_for(room_id), payload))

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()


class RedisSubscriber:
    """One pub/sub connection for a whole gateway, with a channel per watched room."""

    def __init__(
        self,
        url: str,
        on_message: MessageHandler,
        on_reconnect: ReconnectHandler | None = None,
    ) -> None:
        self._on_message = on_message
        self._on_reconnect = on_reconnect
        self._redis = aioredis.Redis.from_url(url, socket_connect_timeout=2)
        self._pubsub = self._redis.pubsub()
        self._rooms: set[str] = set()
        self._confirm: dict[str, list[asyncio.Future[None]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.connected = False
        self.reconnects = 0

    async def start(self) -> None:
        # A pub/sub connection needs one subscription before it can be read; this private
        # channel also lets us confirm the connection works before we report ready.
        await self._pubsub.subscribe(CONTROL_CHANNEL)
        self.connected = True
        self._reader = asyncio.get_running_loop().create_task(self._read_forever())

    async def subscribe(self, room_id: str, timeout: float = 5.0) -> None:
        channel = channel_for(room_id)
        if room_id in self._rooms and channel not in self._confirm:
            return  # confirmed earlier
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        first = channel not in self._confirm
        waiters = self._confirm.setdefault(channel, [])
        waiters.append(fut)
        self._rooms.add(room_id)
        try:
            if first:
                await self._pubsub.subscribe(channel)
            # Later callers for the same room wait for the same confirmation.
            await asyncio.wait_for(fut, timeout)
        except (RedisError, OSError) as exc:
            self._rooms.discard(room_id)
            for other in self._confirm.pop(channel, waiters):
                if not other.done():
                    other.set_exception(exc)
            # The SUBSCRIBE may have reached Redis: do not leave the channel flowing.
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(channel)
            raise

    async def unsubscribe(self, room_id: str) -> None:
        if room_id not in self._rooms:
            return
        self._rooms.discard(room_id)
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.unsubscribe(channel_for(room_id))

    async def _read_forever(self) -> None:
        backoff = 0.05
        while True:
            if not self.connected:
                # Until a reconnect succeeds: a pub/sub whose SUBSCRIBE failed has no
                # connection, and reading it would return nothing forever instead of failing.
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                await self._reconnect()
                continue
            try:
                message = await self._pubsub.get_message(timeout=1.0)
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.connected = False
                log.warning("redis subscriber lost its connection: %s", exc)
                continue
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, object]) -> None:
        kind = message.get("type")
        channel = message.get("channel")
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        if kind == "message":
            data = message.get("data")
            if name.startswith(CHANNEL_PREFIX) and isinstance(data, bytes):
                try:
                    self._on_message(name[len(CHANNEL_PREFIX) :], data)
                except Exception:  # one bad handler must not stop delivery to every room
                    log.exception("room message handler failed")
        elif kind == "subscribe":
            for fut in self._confirm.pop(name, []):
                if not fut.done():
                    fut.set_result(None)

    async def _reconnect(self) -> None:
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        self._pubsub = self._redis.pubsub()
        try:
            await self._pubsub.subscribe(CONTROL_CHANNEL, *(channel_for(r) for r in self._rooms))
        except (RedisError, OSError):
            return  # the read loop retries with backoff
        self.connected = True
        self.reconnects += 1
        log.info("redis subscriber reconnected, %d rooms resubscribed", len(self._rooms))
        if self._on_reconnect is not None:
            try:
                await self._on_reconnect()
            except Exception:  # the reader must go on whatever the owner's hook does
                log.exception("redis subscriber: on_reconnect failed")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._redis.aclose()
