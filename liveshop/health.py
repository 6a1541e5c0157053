"""Health checks behind `liveshop status`: each component, checked the way a client uses it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from liveshop import clock
from liveshop.config import Settings
from liveshop.media.rtmp import HANDSHAKE_SIZE, VERSION
from liveshop.storage.embedded import pid_alive
from liveshop.tokens import ANY_ROOM, Role, issue_token

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


async def rtmp_handshake(url: str, timeout: float = 5.0) -> Check:
    """The RTMP ingest, checked as a publisher starts: a TCP connect, then the handshake
    (C0+C1 out; S0+S1+S2 back, S0 the version, S2 echoing C1; C2 out), then a close."""
    name = "RTMP ingest"
    where = urllib.parse.urlsplit(url)
    host = where.hostname or "127.0.0.1"
    # A listener on every interface is reached on this machine's loopback.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    port = where.port or 1935
    c1 = bytes(8) + os.urandom(HANDSHAKE_SIZE - 8)  # time 0, zero, random bytes
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(bytes([VERSION]) + c1)
                await writer.drain()
                s0 = await reader.readexactly(1)
                if s0[0] != VERSION:
                    return (name, False, f"{url}: not RTMP (version byte {s0[0]} in S0)")
                s1 = await reader.readexactly(HANDSHAKE_SIZE)
                s2 = await reader.readexactly(HANDSHAKE_SIZE)
                writer.write(s1)  # C2
                await writer.drain()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except TimeoutError:
        return (name, False, f"{url}: no RTMP handshake within {timeout:g} s")
    except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError):
        return (name, False, f"{url}: the connection closed during the RTMP handshake")
    except OSError as exc:
        return (name, False, f"{url}: {type(exc).__name__}: {exc}")
    # S2 echoes C1 (its second time field may differ: only the random part must match).
    if s2[8:] != c1[8:]:
        return (name, False, f"{url}: the server's S2 does not echo C1")
    return (name, True, f"{url}, handshake ok (RTMP version {VERSION})")


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


def _hosts(settings: Settings, http: str) -> list[Check]:
    """One line per entity host: what it holds and whether it answers (GET /hosts)."""
    token = issue_token(
        settings.secret, user_id="liveshop-status", name="status",
        rooms={ANY_ROOM: [Role.SERVICE]}, now=clock.now(), ttl=60,
    )  # fmt: skip
    request = urllib.request.Request(http + "/hosts", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            hosts = json.loads(response.read())["hosts"]
    except Exception as exc:
        return [("entity hosts", False, f"{type(exc).__name__}: {exc}")]
    checks: list[Check] = []
    for h in hosts:
        name = f"entity host {h['host']}"
        if h.get("error"):
            checks.append((name, False, h["error"]))
            continue
        resident = ", ".join(f"{n} {k}" for k, n in sorted(h["resident"].items())) or "none"
        checks.append((name, True, (
            f"resident: {resident}; {sum(h['activations'].values())} activations, "
            f"{sum(h['passivations'].values())} passivations, "
            f"{sum(h['fenced'].values())} fenced; mailbox {h['mailbox']}; "
            f"PostgreSQL {h['db_connections']}/{h['db_pool_size']} connections"
        )))  # fmt: skip
    return checks or [("entity hosts", False, "the directory lists none")]


def check_all(info: dict[str, Any], settings: Settings) -> list[Check]:
    results: list[Check] = []
    pid = int(info["pid"])
    alive = pid_alive(pid)
    results.append(("liveshop up", alive, f"pid {pid}" if alive else f"pid {pid} is gone"))
    # The run file masks passwords; the environment (through settings) has them.
    database_url = settings.database_url or info["database"]
    redis_url = settings.redis_url or info["redis"]

    async def _async_checks() -> list[Check]:
        pg, rd, (registry, urls), rtmp = await asyncio.gather(
            _postgres(database_url), _redis(redis_url), _registry(database_url),
            rtmp_handshake(info.get("rtmp") or settings.rtmp_url),
        )  # fmt: skip
        # Every address gateways registered at (on a cluster, one per gateway node).
        gateways = await asyncio.gather(*(_gateway(settings, url) for url in urls or [info["ws"]]))
        return [pg, rd, rtmp, registry, *gateways]

    pg, rd, rtmp, *gw = asyncio.run(_async_checks())
    results += [pg, rd]
    try:
        status, body = _http_json(info["http"] + "/healthz")
        results.append(("HTTP API", status == 200, f"{info['http']}: {body}"))
    except Exception as exc:
        results.append(("HTTP API", False, f"{info['http']}: {type(exc).__name__}: {exc}"))
    results += gw
    results.append(rtmp)
    results += _hosts(settings, info["http"])
    if info.get("dashboard"):
        try:
            # The dashboard's API needs Ray's auth token; its page answers without one.
            with urllib.request.urlopen(info["dashboard"], timeout=5) as response:
                results.append(("Ray dashboard", response.status == 200, info["dashboard"]))
        except Exception as exc:
            results.append(("Ray dashboard", False, f"{type(exc).__name__}: {exc}"))
    return results
