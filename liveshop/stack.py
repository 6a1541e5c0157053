"""Start and stop a whole liveshop: storage, Ray, Serve apps. Used by the CLI and e2e tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from liveshop.config import NAMESPACE, Settings
from liveshop.storage.embedded import EmbeddedPostgres, EmbeddedRedis, wait_for_port
from liveshop.storage.migrate import migrate_url

Progress = Callable[[str], None]

RUN_FILE = "run.json"


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


@dataclass
class Stack:
    settings: Settings
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    ray_address: str | None = None
    ray_started_here: bool = False

    # -- start ----------------------------------------------------------------------------

    def start_storage(self, progress: Progress = print) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        if s.database_url is None:
            self.postgres = EmbeddedPostgres(s.data_dir)
            url = self.postgres.start()
            self.settings = s = s.with_(database_url=url)
            progress(f"PostgreSQL  embedded, {s.data_dir / 'postgres'}")
        else:
            progress(f"PostgreSQL  {redact(s.database_url)}")
        assert s.database_url is not None
        applied = asyncio.run(migrate_url(s.database_url))
        progress(f"migrations  {', '.join(applied) if applied else 'up to date'}")
        if s.redis_url is None:
            self.redis = EmbeddedRedis(s.data_dir)
            self.settings = s = s.with_(redis_url=self.redis.start())
            progress(f"Redis       embedded, {s.data_dir / 'redis'}")
        else:
            progress(f"Redis       {redact(s.redis_url)}")

    def start_ray(self, address: str | None, progress: Progress = print) -> None:
        import ray

        from liveshop.actors import wiring

        if address:
            info = ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
        else:
            info = ray.init(
                # "local": start our own cluster even if RAY_ADDRESS or a `ray start` says
                # otherwise; we stop what we start, so we must not adopt someone else's.
                address="local",
                namespace=NAMESPACE,
                include_dashboard=True,
                dashboard_host="127.0.0.1",
                dashboard_port=self.settings.dashboard_port,
                log_to_driver=False,
                configure_logging=False,
                # This node transcodes too: one live stream per core.
                resources={wiring.MEDIA_RESOURCE: float(self.settings.media_slots)},
            )
            self.ray_started_here = True
        self.ray_address = info.address_info.get("gcs_address") or address  # type: ignore[attr-defined]
        how = "started" if self.ray_started_here else "joined"
        progress(f"Ray         {self.ray_address} ({how})")

    def deploy(self, progress: Progress = print) -> None:
        from liveshop.actors import wiring

        wiring.deploy(self.settings)
        host = self.settings.ws_host
        wait_for_port(
            "127.0.0.1" if host in ("0.0.0.0", "::", "") else host, self.settings.ws_port, 30
        )
        s = self.settings
        progress(f"Serve       API {s.http_url}, gateway {s.ws_url}, RTMP ingest {s.rtmp_url}")

    # -- stop -----------------------------------------------------------------------------

    def stop(self, progress: Progress = print) -> None:
        """Stop everything this stack started, in reverse order. Safe to call twice.

        Each step runs even if an earlier one failed: a half-stopped run must not leave
        PostgreSQL or Redis behind.
        """
        try:
            self._stop_ray(progress)
        finally:
            try:
                if self.redis is not None:
                    self.redis.stop()
                    self.redis = None
                    progress("Redis       stopped")
            finally:
                if self.postgres is not None:
                    self.postgres.stop()
                    self.postgres = None
                    progress("PostgreSQL  stopped")

    def _stop_ray(self, progress: Progress) -> None:
        import ray

        if not ray.is_initialized():
            return
        try:
            from liveshop.actors import wiring

            if self.ray_started_here:
                from ray import serve

                serve.shutdown()  # type: ignore[no-untyped-call]  # the whole local cluster goes next, room actors with it
            else:
                wiring.undeploy()
                wiring.kill_domain_actors()
        finally:
            ray.shutdown()
            progress("Ray         stopped" if self.ray_started_here else "Ray         left")

    # -- run file -------------------------------------------------------------------------

    def run_info(self) -> dict[str, Any]:
        s = self.settings
        return {
            "pid": os.getpid(),
            "started_at": time.time(),
            "http": s.http_url,
            "ws": s.ws_url,
            "dashboard": f"http://127.0.0.1:{s.dashboard_port}" if self.ray_started_here else None,
            "database": redact(s.database_url or ""),
            "redis": redact(s.redis_url or ""),
            "ray": self.ray_address,
            "embedded": {
                "postgres": self.postgres.pid() if self.postgres else None,
                "redis": self.redis.pid() if self.redis else None,
            },
        }

    def write_run_file(self) -> Path:
        path = self.settings.data_dir / RUN_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.run_info(), indent=2))
        tmp.replace(path)
        return path

    def remove_run_file(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.settings.data_dir / RUN_FILE).unlink()


def read_run_file(data_dir: Path) -> dict[str, Any] | None:
    try:
        info: dict[str, Any] = json.loads((data_dir / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info
