"""Health checks behind `liveshop status`: each component, checked the way a client uses it."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

from liveshop import clock
from liveshop.config import Settings
from liveshop.storage.embedded import pid_alive
from liveshop.tokens import issue_token

Check = tuple[str, bool, str]


def _http_json(url: str, timeout: float = 5.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


async def _postgres(url: str) -> Check:
    import asyncpg

    try:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            version = await conn.fetchval("SHOW server_version")
            migrations = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        finally:
            await conn.close()
        return ("PostgreSQL", True, f"{version}, {migrations} migration(s)")
    except Exception as exc:
        return ("PostgreSQL", False, f"{type(exc).__name__}: {exc}")


async def _redis(url: str) -> Check:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        info = await client.info("server")
        return ("Redis", True, f"redis {info.get('redis_version')}")
    except Exception as exc:
        return ("Redis", False, f"{type(exc).__name__}: {exc}")
    finally:
        await client.aclose()


async def _gateway(settings: Settings, url: str) -> Check:
    from websockets.asyncio.client import connect

    token = issue_token(
        settings.secret, user_id="liveshop-status", name="status", rooms={},
        now=clock.now(), ttl=60,
    )  # fmt: skip
    try:
        async with connect(url, open_timeout=5) as ws:
            await ws.send(json.dumps({"id": 1, "op": "connect", "token": token}))
            hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
            await ws.send(json.dumps({"id": 2, "op": "ping"}))
            pong = json.loads(await asyncio.wait_for(ws.recv(), 5))
        ok = "result" in hello and "result" in pong
        return ("WebSocket gateway", ok, f"{url}, gateway {hello.get('result', {}).get('gateway')}")
    except Exception as exc:
        return ("WebSocket gateway", False, f"{url}: {type(exc).__name__}: {exc}")


async def _registry(database_url: str) -> tuple[Check, list[str]]:
    """The registered gateways, and the addresses to check them at."""
    from liveshop.storage.gateways import live_gateways

    try:
        gateways = await live_gateways(database_url)
    except Exception as exc:
        return ("gateways registered", False, f"{type(exc).__name__}: {exc}"), []
    where = sorted({g["url"] for g in gateways})
    connections = sum(g["connections"] for g in gateways)
    detail = f"{len(gateways)} live at {', '.join(where) or 'nowhere'}, {connections} connection(s)"
    return ("gateways registered", bool(gateways), detail), where


def check_all(info: dict[str, Any], settings: Settings) -> list[Check]:
    results: list[Check] = []
    pid = int(info["pid"])
    alive = pid_alive(pid)
    results.append(("liveshop up", alive, f"pid {pid}" if alive else f"pid {pid} is gone"))
    # The run file masks passwords; the environment (through settings) has them.
    database_url = settings.database_url or info["database"]
    redis_url = settings.redis_url or info["redis"]

    async def _async_checks() -> list[Check]:
        pg, rd, (registry, urls) = await asyncio.gather(
            _postgres(database_url), _redis(redis_url), _registry(database_url)
        )
        # Every address gateways registered at (on a cluster, one per gateway node).
        gateways = await asyncio.gather(*(_gateway(settings, url) for url in urls or [info["ws"]]))
        return [pg, rd, registry, *gateways]

    pg, rd, *gw = asyncio.run(_async_checks())
    results += [pg, rd]
    try:
        status, body = _http_json(info["http"] + "/healthz")
        results.append(("HTTP API", status == 200, f"{info['http']}: {body}"))
    except Exception as exc:
        results.append(("HTTP API", False, f"{info['http']}: {type(exc).__name__}: {exc}"))
    results += gw
    if info.get("dashboard"):
        try:
            # The dashboard's API needs Ray's auth token; its page answers without one.
            with urllib.request.urlopen(info["dashboard"], timeout=5) as response:
                results.append(("Ray dashboard", response.status == 200, info["dashboard"]))
        except Exception as exc:
            results.append(("Ray dashboard", False, f"{type(exc).__name__}: {exc}"))
    return results
