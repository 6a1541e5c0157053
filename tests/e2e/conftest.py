"""E2E tier: a local Ray cluster (started once per session), Serve, the gateway, real clients."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import ray

from liveshop.actors import wiring
from liveshop.config import NAMESPACE, Settings
from liveshop.mesh import hosts
from liveshop.mesh.placement import HOST_PREFIX
from liveshop.stack import Stack
from liveshop.storage.embedded import free_port
from liveshop.tokens import ANY_ROOM, Role, issue_token
from tests import services


@dataclass
class Running:
    stack: Stack
    settings: Settings

    def token(
        self,
        user: str,
        rooms: dict[str, list[str]],
        ttl: float = 600,
        badges: dict[str, list[str]] | None = None,
    ) -> str:
        return issue_token(
            self.settings.secret, user_id=user, name=user.title(), rooms=rooms,
            now=time.time(), ttl=ttl, badges=badges,
        )  # fmt: skip

    @property
    def service_token(self) -> str:
        return self.token("svc", {ANY_ROOM: [Role.SERVICE]})

    async def retire(self, *fragments: str) -> None:
        """Passivate the entities whose ``kind:key`` holds any of ``fragments`` (a test's
        rooms, SKUs, auctions, ``cart:<user>``), so a suite that made thousands of them
        keeps its hosts lean, as production's idle passivation would."""

        def names() -> list[str]:
            return wiring.list_actor_names(HOST_PREFIX)

        for name in await asyncio.to_thread(names):
            with contextlib.suppress(Exception):
                host = ray.get_actor(name, namespace=NAMESPACE)
                await host.passivate_matching.remote(list(fragments))

    async def host_of(self, kind: str, key: str) -> object:
        """The Ray actor of the host ``kind:key`` is placed on."""
        name = await hosts.locate(self.settings, kind, key)
        return ray.get_actor(name, namespace=NAMESPACE)

    async def kill_host_of(self, kind: str, key: str) -> None:
        """Kill the process hosting ``kind:key`` (and its neighbours); Ray restarts it and
        the entities come back from PostgreSQL on their next message."""
        ray.kill(await self.host_of(kind, key), no_restart=False)

    async def list_product(self, product_id: str, room: str) -> None:
        """The seller (a service here) lets ``room`` pin the product and run deals on it."""
        async with self.http() as http:
            listed = await http.put(f"/products/{product_id}/rooms/{room}")
            assert listed.status_code == 200, listed.text

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.settings.http_url,
            headers={"Authorization": f"Bearer {self.service_token}"},
            timeout=30,
        )


@pytest.fixture(scope="session")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    # Metrics reach the Prometheus endpoint every second instead of every ten (test_metrics).
    os.environ.setdefault("RAY_metrics_report_interval_ms", "1000")
    data_dir: Path = tmp_path_factory.mktemp("liveshop")
    with services.optional_database(data_dir) as database_url:
        settings = Settings(
            data_dir=data_dir,
            database_url=database_url,
            redis_url=services.configured_redis_url(),
            http_port=free_port(),
            ws_port=free_port(),
            dashboard_port=free_port(),
            connect_timeout=1.0,
            gateways=1,
            # Payments left pending by a provider timeout are reconciled within seconds.
            payment_timeout=0.5,
            reconcile_interval=0.5,
            cart_abandon_after=1.0,
            # Media: an ingest on a free port, quick failover and a quick end when idle.
            rtmp_port=free_port(),
            stall_after=1.5,
            media_idle_end=4.0,
            # WebRTC offers never completed free their slots soon (test_limits).
            webrtc_connect_timeout=5.0,
            media_slots=8,
            thumbnail_interval=1.0,
            # Channels: cues twice a second (on time within half a second).
            channel_tick=0.5,
        ).with_keys()
        stack = Stack(settings)
        try:
            stack.start_storage(print)
            stack.start_ray(None, print)
            stack.deploy(print)
            yield Running(stack, stack.settings)
        finally:
            stack.stop(print)


@pytest.fixture
def new_id() -> Callable[[str], str]:
    return lambda prefix: f"{prefix}-{secrets.token_hex(4)}"
