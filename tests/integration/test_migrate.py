from __future__ import annotations

import asyncio

import asyncpg

from liveshop.storage.migrate import migrate, migration_files


async def _reset(conn: asyncpg.Connection) -> None:
    await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")


async def test_migrations_apply_in_order_and_rerunning_is_a_no_op(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        await _reset(conn)
        versions = [v for v, _ in migration_files()]
        assert versions == sorted(versions)
        assert await migrate(conn) == versions
        assert await migrate(conn) == []
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == versions
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        assert {"rooms", "channels", "products", "room_events", "schema_migrations"} <= tables
    finally:
        await conn.close()


async def test_concurrent_migrators_apply_each_migration_once(postgres_url: str) -> None:
    setup = await asyncpg.connect(postgres_url)
    await _reset(setup)
    await setup.close()
    conns = [await asyncpg.connect(postgres_url) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(migrate(c) for c in conns))
        flat = [v for result in applied for v in result]
        assert sorted(flat) == [v for v, _ in migration_files()]
    finally:
        for c in conns:
            await c.close()
