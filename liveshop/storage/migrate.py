"""SQL migrations, applied in order, each once, recorded in ``schema_migrations``.

Files are ``NNNN_name.sql`` beside this module. Each runs in its own transaction together
with its bookkeeping row; an advisory lock serialises concurrent migrators, so re-running
(or running from two processes at once) is a no-op.
"""

from __future__ import annotations

from importlib import resources

import asyncpg

LOCK_KEY = 0x11FE5  # arbitrary, stable: "liveshop migrations"


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) in order."""
    folder = resources.files("liveshop.storage") / "migrations"
    files = sorted((p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    return [(p.name.removesuffix(".sql"), p.read_text()) for p in files]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply the pending migrations; return the versions applied now."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version text PRIMARY KEY,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, sql in migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied_now.append(version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    return applied_now


async def migrate_url(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return await migrate(conn)
    finally:
        await conn.close()
