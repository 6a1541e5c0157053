"""Real PostgreSQL and Redis for the integration and e2e tiers — never mocks.

``configured``: the running services named by LIVESHOP_DATABASE_URL / LIVESHOP_REDIS_URL
(each test session gets a fresh database on that server, dropped afterwards).
``embedded``: the same embedded servers `liveshop up` starts, in a temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from liveshop.config import ENV_DATABASE_URL, ENV_REDIS_URL
from liveshop.storage.embedded import EmbeddedPostgres, EmbeddedRedis


def configured_database_url() -> str | None:
    return os.environ.get(ENV_DATABASE_URL) or None


def configured_redis_url() -> str | None:
    return os.environ.get(ENV_REDIS_URL) or None


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on ``server_url`` for the duration of the block."""
    name = f"liveshop_test_{secrets.token_hex(4)}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(server_url, name)
    finally:
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def postgres(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "configured":
        url = configured_database_url()
        assert url, "no LIVESHOP_DATABASE_URL"
        with fresh_database(url) as db:
            yield db
        return
    server = EmbeddedPostgres(tmp)
    server.start()
    try:
        with fresh_database(server.url) as db:
            yield db
    finally:
        server.stop()


@contextmanager
def redis(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "configured":
        url = configured_redis_url()
        assert url, "no LIVESHOP_REDIS_URL"
        yield url
        return
    server = EmbeddedRedis(tmp)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@contextmanager
def optional_database(tmp: Path) -> Iterator[str | None]:
    """A fresh database on the configured server, or None: let the stack embed one."""
    url = configured_database_url()
    if url is None:
        yield None
        return
    with fresh_database(url) as db:
        yield db
