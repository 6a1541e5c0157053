"""RTMP stream keys in PostgreSQL: issued, rotated, revoked, looked up by the ingest.

A key is a bearer secret (it is what OBS sends): only its SHA-256 is stored, it is shown
once when issued, and issuing a new one for a slot revokes the old one in the same
transaction, so at most one key per room and slot is ever valid.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import asyncpg

from liveshop.errors import InvalidStreamKey, RoomNotFound

SLOTS = ("primary", "backup")
PREFIX = "lsk_"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class StreamKey:
    room_id: str
    slot: str
    key_hash: str

    def __str__(self) -> str:  # never the key itself
        return f"{self.room_id}/{self.slot}"


class StreamKeyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def issue(self, room_id: str) -> dict[str, str]:
        """New keys for both slots (the old ones stop working): ``{slot: key}``."""
        keys = {slot: PREFIX + secrets.token_urlsafe(24) for slot in SLOTS}
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE stream_keys SET revoked_at = now() "
                "WHERE room_id = $1 AND revoked_at IS NULL",
                room_id,
            )
            try:
                await conn.executemany(
                    "INSERT INTO stream_keys (key_hash, room_id, slot) VALUES ($1, $2, $3)",
                    [(key_hash(key), room_id, slot) for slot, key in keys.items()],
                )
            except asyncpg.ForeignKeyViolationError:
                raise RoomNotFound(f"no room {room_id!r}") from None
        return keys

    async def revoke(self, room_id: str) -> int:
        result: str = await self.pool.execute(
            "UPDATE stream_keys SET revoked_at = now() WHERE room_id = $1 AND revoked_at IS NULL",
            room_id,
        )
        return int(result.split()[-1])

    async def lookup(self, key: str) -> StreamKey:
        """The room and slot of a valid key; unknown or revoked keys are refused alike."""
        if not key.startswith(PREFIX) or len(key) > 128:
            raise InvalidStreamKey("unknown or revoked stream key")
        digest = key_hash(key)
        row = await self.pool.fetchrow(
            "SELECT room_id, slot FROM stream_keys WHERE key_hash = $1 AND revoked_at IS NULL",
            digest,
        )
        if row is None:
            raise InvalidStreamKey("unknown or revoked stream key")
        return StreamKey(row["room_id"], row["slot"], digest)

    async def still_valid(self, key: StreamKey) -> bool:
        found = await self.pool.fetchval(
            "SELECT 1 FROM stream_keys WHERE key_hash = $1 AND revoked_at IS NULL", key.key_hash
        )
        return found is not None

    async def issued(self, room_id: str) -> list[dict[str, object]]:
        rows = await self.pool.fetch(
            "SELECT slot, created_at FROM stream_keys "
            "WHERE room_id = $1 AND revoked_at IS NULL ORDER BY slot",
            room_id,
        )
        return [{"slot": r["slot"], "created_at": r["created_at"].timestamp()} for r in rows]
