"""Cluster tier: liveshop on a multi-node Ray cluster on this machine, and failure drills.

Ray's ``cluster_utils.Cluster`` starts real raylets as separate nodes, each with the custom
resources a real deployment's node types declare (cluster.yaml): the head, a second
gateway-and-actors node, and a media node. liveshop joins it the way `liveshop up --address`
does. PostgreSQL and Redis are always the embedded ones here, because the drills stop and
restart them (on the same ports); a session of its own, because a process joins one Ray
cluster only.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import ray
from ray._private import auto_init_hook
from ray.cluster_utils import Cluster

from liveshop.config import Settings
from liveshop.stack import Stack
from liveshop.storage.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from tests.cluster.load import Crowd
from tests.e2e.conftest import Running

#: What each node offers: gateway nodes a gateway unit each and two entity hosts, the media
#: node transcoding, an actors node (added by a drill) two entity hosts. The head is also a
#: gateway-and-actors node (as a small cluster's would be).
GATEWAY_NODE: dict[str, Any] = {"num_cpus": 1, "resources": {"gateway": 1, "actors": 2}}
MEDIA_NODE: dict[str, Any] = {"num_cpus": 1, "resources": {"media": 1}}
ACTORS_NODE: dict[str, Any] = {"num_cpus": 1, "resources": {"actors": 2}}


@dataclass
class Deployment(Running):
    """A running liveshop (tokens, an HTTP client as a service) and the cluster under it."""

    cluster: Cluster
    worker: Any  # the second gateway-and-actors node (the one a drill removes)
    media: Any
    postgres: EmbeddedPostgres
    redis: EmbeddedRedis
    #: Nodes a drill added (the node-loss drill counts them among the living).
    extra_nodes: list[Any] = field(default_factory=list)


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    if ray.is_initialized():
        pytest.skip("tests/cluster joins a cluster of its own: run it in its own pytest session")
    data_dir: Path = tmp_path_factory.mktemp("liveshop-cluster")
    postgres = EmbeddedPostgres(data_dir)
    redis = EmbeddedRedis(data_dir)
    cluster: Cluster | None = None
    stack: Stack | None = None
    try:
        settings = Settings(
            data_dir=data_dir,
            database_url=postgres.start(),
            redis_url=redis.start(),
            http_port=free_port(),
            ws_port=free_port(),
            rtmp_port=free_port(),
            connect_timeout=2.0,
            # Staff chat is not rate limited; a viewer connection resubscribing after a
            # gap must not be either.
            rate_per_second=200.0,
            rate_burst=400,
        ).with_keys()
        cluster = Cluster(
            initialize_head=True,
            head_node_args={**GATEWAY_NODE, "include_dashboard": True,
                            "dashboard_port": free_port(), "dashboard_host": "127.0.0.1"},
        )  # fmt: skip
        worker = cluster.add_node(**GATEWAY_NODE)
        media = cluster.add_node(**MEDIA_NODE)
        stack = Stack(settings)
        stack.start_storage(print)  # the URLs are set: it only applies the migrations
        stack.start_ray(cluster.address, print)
        stack.deploy(print)
        yield Deployment(stack, stack.settings, cluster, worker, media, postgres, redis)
    finally:
        if stack is not None:
            stack.stop(print)
        # A Serve handle's metrics thread (the drills' gateway stats) may run once more and
        # would connect this process to the cluster again, which then refuses to remove
        # its head: no reconnecting from here on, and drop a connection it made already.
        auto_init_hook.enable_auto_connect = False
        if ray.is_initialized():
            ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
        redis.stop()
        postgres.stop()


@pytest.fixture
async def crowd() -> AsyncIterator[Crowd]:
    """The drill's load, stopped when the drill ends, passed or failed."""
    load = Crowd()
    yield load
    await load.stop()


@pytest.fixture
def new_id() -> Any:
    return lambda prefix: f"{prefix}-{secrets.token_hex(4)}"
