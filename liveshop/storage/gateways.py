"""The gateway registry in PostgreSQL: which gateway processes are serving, and where.

Each gateway upserts its row every ``HEARTBEAT`` seconds; a row older than ``ALIVE_FOR`` is a
gateway that died without saying so. `liveshop up`, `liveshop status` and `GET /gateways`
read it, so an operator (or a load balancer's discovery) sees every gateway of the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

#: Seconds between a gateway's heartbeats.
HEARTBEAT = 2.0
#: A gateway not seen for this long is taken for dead (several missed heartbeats).
ALIVE_FOR = 10.0
#: Rows of dead gateways are deleted after this long (kept a while for post-mortems).
FORGET_AFTER = 3600.0


@dataclass(frozen=True)
class GatewayRecord:
    gateway_id: str
    url: str
    node_id: str
    node_ip: str
    pid: int
    connections: int = 0
    rooms: int = 0


class GatewayStore:
    def __init__(self, pool: asyncpg.Pool | asyncpg.Connection) -> None:
        self.pool = pool

    async def beat(self, record: GatewayRecord) -> None:
        """Register or refresh ``record``; forget gateways dead for long."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                """
                INSERT INTO gateways (id, url, node_id, node_ip, pid, connections, rooms)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (id) DO UPDATE SET seen_at = now(), url = EXCLUDED.url,
                    connections = EXCLUDED.connections, rooms = EXCLUDED.rooms
                """,
                record.gateway_id, record.url, record.node_id, record.node_ip, record.pid,
                record.connections, record.rooms,
            )  # fmt: skip
            await conn.execute(
                "DELETE FROM gateways WHERE seen_at < now() - make_interval(secs => $1)",
                FORGET_AFTER,
            )

    async def remove(self, gateway_id: str) -> None:
        await self.pool.execute("DELETE FROM gateways WHERE id = $1", gateway_id)

    async def live(self, within: float = ALIVE_FOR) -> list[dict[str, Any]]:
        """Gateways seen within ``within`` seconds, oldest first."""
        rows = await self.pool.fetch(
            """
            SELECT id, url, node_id, node_ip, pid, connections, rooms, started_at, seen_at
            FROM gateways WHERE seen_at >= now() - make_interval(secs => $1)
            ORDER BY started_at, id
            """,
            within,
        )
        return [_view(row) for row in rows]


def _view(row: asyncpg.Record) -> dict[str, Any]:
    view = dict(row)
    for key in ("started_at", "seen_at"):
        stamp: datetime = view[key]
        view[key] = stamp.timestamp()
    return view


async def live_gateways(database_url: str, within: float = ALIVE_FOR) -> list[dict[str, Any]]:
    """The registry read once, on a connection of its own (the CLI's way)."""
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        return await GatewayStore(conn).live(within)
    finally:
        await conn.close()
