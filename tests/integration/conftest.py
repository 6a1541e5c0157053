"""Integration tier: real PostgreSQL and Redis, both the configured and the embedded ones."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from liveshop.storage.migrate import migrate
from liveshop.storage.pool import create_pool
from tests import services

KINDS = ["configured", "embedded"]


def _skip_unconfigured(kind: str, url: str | None, env: str) -> None:
    if kind == "configured" and not url:
        pytest.skip(f"{env} is not set; only the embedded server is tested")


@pytest.fixture(scope="session", params=KINDS)
def postgres_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    _skip_unconfigured(request.param, services.configured_database_url(), "LIVESHOP_DATABASE_URL")
    with services.postgres(request.param, tmp_path_factory.mktemp("pg")) as url:
        yield url


@pytest.fixture(scope="session", params=KINDS)
def redis_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    _skip_unconfigured(request.param, services.configured_redis_url(), "LIVESHOP_REDIS_URL")
    with services.redis(request.param, tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
async def pool(postgres_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A migrated database, emptied before each test."""
    pool = await create_pool(postgres_url, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await migrate(conn)
        await conn.execute(
            "TRUNCATE room_events, rooms, channels, products, orders, payment_methods, "
            "test_provider_charges CASCADE"
        )
    yield pool
    await pool.close()
