"""The embedded servers keep their data across a restart (what `liveshop up` relies on)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import redis

from liveshop.storage.embedded import EmbeddedPostgres, EmbeddedRedis


async def _write_then_read(url: str) -> None:
    conn = await asyncpg.connect(url)
    await conn.execute("CREATE TABLE IF NOT EXISTS kept (v int)")
    await conn.execute("INSERT INTO kept VALUES (42)")
    await conn.close()


async def _read(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return [r["v"] for r in await conn.fetch("SELECT v FROM kept")]
    finally:
        await conn.close()


def test_embedded_postgres_survives_a_restart(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path)
    url = server.start()
    try:
        asyncio.run(_write_then_read(url))
        server.stop()
        assert server.pid() is None
        server = EmbeddedPostgres(tmp_path)  # a new port, the same data
        url = server.start()
        assert asyncio.run(_read(url)) == [42]
    finally:
        server.stop()


def test_embedded_redis_survives_a_restart(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    url = server.start()
    try:
        redis.Redis.from_url(url).set("kept", "yes")
        server.stop()
        server = EmbeddedRedis(tmp_path)
        url = server.start()
        assert redis.Redis.from_url(url).get("kept") == b"yes"
    finally:
        server.stop()
