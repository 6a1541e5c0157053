"""The gateway as a Ray Serve deployment, without Serve's proxy on the data path.

Each replica runs a :class:`~liveshop.serve.gateway.Gateway` on its own uvloop event loop in
a thread of the replica process; every replica binds the same port with SO_REUSEPORT, so
the kernel spreads connections over them. Serve still gives us what it is good at: the
replica count, health checks and restarts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any

import uvloop
from ray import serve

from liveshop import gctune
from liveshop.config import Settings
from liveshop.serve.gateway import Gateway

log = logging.getLogger(__name__)


class GatewayThread:
    """Owns the thread and loop the gateway runs on; usable without Serve (tests, benches)."""

    def __init__(self, settings: Settings) -> None:
        self.gateway = Gateway(settings)
        self.loop = uvloop.new_event_loop()
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name="liveshop-gateway", daemon=True
        )
        self._thread.start()
        started.result(timeout=60)

    def _run(self, started: concurrent.futures.Future[None]) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.gateway.start())
        except BaseException as exc:
            started.set_exception(exc)
            return
        gctune.tune()
        started.set_result(None)
        self.loop.run_forever()

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def health(self) -> dict[str, Any]:
        async def _health() -> dict[str, Any]:
            return self.gateway.health()

        result: dict[str, Any] = self.call(_health(), timeout=5)
        return result

    def stop(self) -> None:
        if not self.loop.is_running():
            return
        try:
            self.call(self.gateway.stop(), timeout=15)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)


@serve.deployment(
    name="gateway",
    health_check_period_s=5,
    health_check_timeout_s=10,
    graceful_shutdown_timeout_s=10,
)
class GatewayDeployment:
    def __init__(self, settings: Settings) -> None:
        self._thread = GatewayThread(settings)

    def check_health(self) -> None:
        health = self._thread.health()
        if not health["serving"]:
            raise RuntimeError("gateway is not accepting connections")

    def stats(self) -> dict[str, Any]:
        return self._thread.health()

    def __del__(self) -> None:
        try:
            self._thread.stop()
        except Exception:
            log.exception("gateway stop failed")
