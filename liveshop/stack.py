"""Start and stop a whole liveshop: storage, Ray, Serve apps. Used by the CLI and e2e tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from liveshop.config import AUTO_PLACEMENT, NAMESPACE, Settings
from liveshop.storage.embedded import EmbeddedPostgres, EmbeddedRedis
from liveshop.storage.migrate import migrate_url

Progress = Callable[[str], None]

RUN_FILE = "run.json"


class ClusterError(RuntimeError):
    """The Ray cluster cannot run this configuration (said before anything is deployed)."""


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
    #: The gateway registry as `deploy` found it.
    gateways: list[dict[str, Any]] = field(default_factory=list)

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
            # Ray starts its workers at nice 15 (made for batch work: the node's own daemons
            # stay responsive). liveshop's workers are the service (entity hosts, gateways,
            # the API): niced, they waited behind PostgreSQL and every other process at
            # normal priority on the machine, and cart calls' p99 doubled on two cores.
            os.environ.setdefault("RAY_worker_niceness", "0")
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
        self._fit_cluster(progress)

    def _fit_cluster(self, progress: Progress) -> None:
        """Place by the resources this cluster's nodes declare, and refuse storage that the
        other nodes could not reach."""
        import ray

        from liveshop.actors import wiring

        declared = ray.cluster_resources()  # type: ignore[no-untyped-call]
        placement = self.settings.placement
        if placement == AUTO_PLACEMENT:
            placement = tuple(r for r in wiring.PLACEMENT_RESOURCES if declared.get(r, 0) > 0)
            if not placement and not self.ray_started_here:
                progress(
                    "cluster     no node declares `gateway` or `actors` (yet): placing "
                    "anywhere; --placement gateway,actors waits for such nodes instead"
                )
        unknown = set(placement) - set(wiring.PLACEMENT_RESOURCES)
        if unknown:
            raise ClusterError(f"--placement: unknown resource(s) {', '.join(sorted(unknown))}")
        self.settings = self.settings.with_(placement=placement)
        nodes = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
        here = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        elsewhere = sorted({n["NodeManagerAddress"] for n in nodes} - {here})
        embedded = [name for name, server in (("PostgreSQL", self.postgres), ("Redis", self.redis))
                    if server is not None]  # fmt: skip
        if embedded and elsewhere:
            raise ClusterError(
                f"the embedded {' and '.join(embedded)} listen on 127.0.0.1 of this machine, "
                f"which the nodes at {', '.join(elsewhere)} cannot reach: set "
                "LIVESHOP_DATABASE_URL and LIVESHOP_REDIS_URL to servers every node can reach"
            )
        media = declared.get(wiring.MEDIA_RESOURCE, 0)
        units = ", ".join(f"{r} {declared.get(r, 0):g}" for r in placement) or "none declared"
        progress(f"cluster     {len(nodes)} node(s); placement: {units}; media {media:g}")

    def deploy(self, progress: Progress = print) -> None:
        from liveshop.actors import hosting
        from liveshop.serve import applications

        # On a cluster, nodes with `actors` units may still be booting (as gateways).
        placement = hosting.start_hosts(self.settings, 120.0 if self.ray_started_here else 600.0)
        dedicated = f" + {len(placement.dedicated)} dedicated" if placement.dedicated else ""
        progress(f"entities    {len(placement.slots)} host(s){dedicated}")
        before = {g["id"] for g in self.registered_gateways()}
        applications.deploy(self.settings)
        s = self.settings
        # On a cluster, gateway nodes may still be booting (`ray up` returns before them).
        timeout = 60.0 if self.ray_started_here else 600.0
        self.gateways = self.wait_for_gateways(
            self.expected_gateways(), timeout, progress, ignore=before
        )
        where = ", ".join(sorted({g["url"] for g in self.gateways}))
        progress(f"Serve       API {s.http_url}, RTMP ingest {s.rtmp_url}")
        progress(f"gateways    {len(self.gateways)} registered at {where}")

    def expected_gateways(self) -> int:
        """How many gateway replicas this deployment runs (see Settings.gateways)."""
        import ray

        from liveshop.actors import wiring

        if self.settings.gateways:
            return self.settings.gateways
        if wiring.GATEWAY_RESOURCE not in self.settings.placement:
            return 1
        units = ray.cluster_resources().get(wiring.GATEWAY_RESOURCE, 0)  # type: ignore[no-untyped-call]
        return max(1, int(units))

    def registered_gateways(self) -> list[dict[str, Any]]:
        from liveshop.storage.gateways import live_gateways

        assert self.settings.database_url is not None
        return asyncio.run(live_gateways(self.settings.database_url))

    def wait_for_gateways(
        self,
        count: int,
        timeout: float,
        progress: Progress = print,
        ignore: Collection[str] = (),
    ) -> list[dict[str, Any]]:
        """The registry once ``count`` gateways of this deployment are serving (each
        registers once its port is open; ``ignore``: ids a previous run left there)."""
        deadline = time.monotonic() + timeout
        said = time.monotonic()
        while True:
            live = [g for g in self.registered_gateways() if g["id"] not in ignore]
            if len(live) >= count:
                return live
            if time.monotonic() > deadline:
                if live:
                    return live
                raise TimeoutError(f"no gateway registered within {timeout:.0f}s")
            if time.monotonic() - said >= 30:
                said = time.monotonic()
                progress(f"gateways    {len(live)} of {count} registered, waiting for nodes")
            time.sleep(0.2)

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
                from liveshop.serve import applications

                applications.undeploy()
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
            "rtmp": s.rtmp_url,
            "gateways": sorted({g["url"] for g in self.gateways}),
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
