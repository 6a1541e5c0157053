"""Every Ray option in one place: actor names, lifetimes, restarts, resources.

Domain classes and actor classes stay plain Python; this module turns them into Ray actors,
so all of them import and unit-test without Ray.
"""

from __future__ import annotations

import contextlib
from typing import Any

import ray

from liveshop.actors.room_actor import RoomActor
from liveshop.config import NAMESPACE, Settings

ROOM_ACTOR_PREFIX = "room:"

#: Room actors mostly wait on I/O: they must not reserve a CPU each, or a 2-core machine
#: could hold two rooms. max_concurrency bounds the batches in flight per room.
ROOM_ACTOR_OPTIONS: dict[str, Any] = {
    "namespace": NAMESPACE,
    "lifetime": "detached",
    "max_restarts": -1,
    # A batch is not idempotent (chat): never replay it behind the gateway's back.
    "max_task_retries": 0,
    "num_cpus": 0,
    "max_concurrency": 1000,
}

#: Serve deployments. The gateway and API are I/O bound as well.
GATEWAY_ACTOR_OPTIONS: dict[str, Any] = {"num_cpus": 0}
API_ACTOR_OPTIONS: dict[str, Any] = {"num_cpus": 0}

_RemoteRoomActor: Any = ray.remote(RoomActor)

#: Ray's handle types are not precise enough to type-check calls through; keep it honest.
RoomHandle = Any


def room_actor_name(room_id: str) -> str:
    return ROOM_ACTOR_PREFIX + room_id


def get_room_actor(room_id: str) -> RoomHandle | None:
    """The running actor of ``room_id``, if there is one (blocking GCS lookup)."""
    try:
        return ray.get_actor(room_actor_name(room_id), namespace=NAMESPACE)
    except ValueError:
        return None


def create_room_actor(room_id: str, settings: Settings) -> RoomHandle:
    """Get or create the room's detached actor (blocking GCS call)."""
    handle: RoomHandle = _RemoteRoomActor.options(
        name=room_actor_name(room_id), get_if_exists=True, **ROOM_ACTOR_OPTIONS
    ).remote(room_id, settings)
    return handle


def list_room_actor_names() -> list[str]:
    from ray.util.state import list_actors

    actors = list_actors(
        filters=[("state", "!=", "DEAD"), ("ray_namespace", "=", NAMESPACE)], limit=10_000
    )
    return [a.name for a in actors if a.name and a.name.startswith(ROOM_ACTOR_PREFIX)]


def kill_room_actors() -> int:
    """Stop every room actor (for `liveshop down` on a shared cluster)."""
    killed = 0
    for name in list_room_actor_names():
        try:
            ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
            killed += 1
        except ValueError:
            pass
    return killed


def api_application(settings: Settings) -> Any:
    """The Serve application for the HTTP API."""
    from liveshop.serve.api import Api

    return Api.options(ray_actor_options=API_ACTOR_OPTIONS).bind(settings)  # type: ignore[attr-defined]


def gateway_application(settings: Settings) -> Any:
    """The Serve application whose replicas each run a WebSocket gateway (SO_REUSEPORT)."""
    from liveshop.serve.gateway_app import GatewayDeployment

    return GatewayDeployment.options(  # type: ignore[attr-defined]
        num_replicas=settings.gateways, ray_actor_options=GATEWAY_ACTOR_OPTIONS
    ).bind(settings)


API_APP = "liveshop-api"
GATEWAY_APP = "liveshop-gateway"


def deploy(settings: Settings) -> None:
    """Start Serve on 127.0.0.1 (by default) and run both applications; blocks until ready."""
    from ray import serve

    serve.start(
        http_options={"host": settings.http_host, "port": settings.http_port},
        proxy_location="HeadOnly",
    )
    serve.run(gateway_application(settings), name=GATEWAY_APP, route_prefix=None)
    serve.run(api_application(settings), name=API_APP, route_prefix="/")


def undeploy() -> None:
    from ray import serve

    for app in (API_APP, GATEWAY_APP):
        with contextlib.suppress(Exception):
            serve.delete(app)
