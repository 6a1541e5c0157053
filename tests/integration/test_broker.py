"""The broker's written guarantees (liveshop/storage/broker.py), against real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from liveshop.storage.broker import RedisPublisher, RedisSubscriber
from liveshop.storage.embedded import EmbeddedRedis


def _room() -> str:
    return f"room-{secrets.token_hex(4)}"


async def _collect(
    received: list[tuple[str, bytes]], count: int, timeout: float = 5.0
) -> list[tuple[str, bytes]]:
    async def wait() -> None:
        while len(received) < count:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), timeout)
    return received


async def test_messages_after_subscribe_arrive_in_order(redis_url: str) -> None:
    received: list[tuple[str, bytes]] = []
    sub = RedisSubscriber(redis_url, lambda room, data: received.append((room, data)))
    pub = RedisPublisher(redis_url)
    await sub.start()
    room, other = _room(), _room()
    try:
        await sub.subscribe(room)
        # Confirmed subscription: nothing published from here on may be lost.
        for i in range(200):
            assert await pub.publish(room, b"%d" % i) == 1
        await pub.publish(other, b"not for us")
        await _collect(received, 200)
        assert received == [(room, b"%d" % i) for i in range(200)]
    finally:
        await sub.close()
        await pub.close()


async def test_unsubscribe_stops_delivery_and_nothing_is_stored(redis_url: str) -> None:
    received: list[tuple[str, bytes]] = []
    sub = RedisSubscriber(redis_url, lambda room, data: received.append((room, data)))
    pub = RedisPublisher(redis_url)
    await sub.start()
    room = _room()
    try:
        assert await pub.publish(room, b"before") == 0  # at-most-once: nobody listening
        await sub.subscribe(room)
        await pub.publish(room, b"during")
        await _collect(received, 1)
        await sub.unsubscribe(room)
        await asyncio.sleep(0.1)
        assert await pub.publish(room, b"after") == 0
        await asyncio.sleep(0.1)
        assert received == [(room, b"during")]
    finally:
        await sub.close()
        await pub.close()


async def test_subscriber_reconnects_and_resubscribes(redis_url: str) -> None:
    received: list[tuple[str, bytes]] = []
    reconnected = asyncio.Event()

    async def on_reconnect() -> None:
        reconnected.set()

    sub = RedisSubscriber(redis_url, lambda r, d: received.append((r, d)), on_reconnect)
    pub = RedisPublisher(redis_url)
    admin = aioredis.Redis.from_url(redis_url)
    await sub.start()
    room = _room()
    try:
        await sub.subscribe(room)
        await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        await asyncio.wait_for(reconnected.wait(), 10)
        assert sub.connected and sub.reconnects >= 1
        for _ in range(50):  # resubscription is confirmed asynchronously
            if await pub.publish(room, b"after reconnect"):
                break
            await asyncio.sleep(0.05)
        await _collect(received, 1)
        assert received[-1] == (room, b"after reconnect")
    finally:
        await sub.close()
        await pub.close()
        await admin.aclose()


async def test_subscriber_outlives_a_redis_restart(tmp_path: Path) -> None:
    """The server itself goes away for seconds (not just the connection): the subscriber
    keeps trying until it is back, then resubscribes and delivers again."""
    server = EmbeddedRedis(tmp_path)  # one of its own: this test stops it
    url = server.start()
    received: list[tuple[str, bytes]] = []
    reconnected = asyncio.Event()

    async def on_reconnect() -> None:
        reconnected.set()

    sub = RedisSubscriber(url, lambda r, d: received.append((r, d)), on_reconnect)
    pub = RedisPublisher(url)
    room = _room()
    try:
        await sub.start()
        await sub.subscribe(room)
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(2.5)  # several failed reconnects while it is away
        assert not sub.connected
        await asyncio.to_thread(server.start)
        await asyncio.wait_for(reconnected.wait(), 10)
        for _ in range(50):
            with contextlib.suppress(RedisError):
                if await pub.publish(room, b"after restart"):
                    break
            await asyncio.sleep(0.05)
        await _collect(received, 1)
        assert received[-1] == (room, b"after restart")
    finally:
        await sub.close()
        await pub.close()
        server.stop()
