"""Every Ray option in one place: actor names, lifetimes, restarts, resources.

Domain classes and actor classes stay plain Python; this module turns them into Ray actors,
so all of them import and unit-test without Ray.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

import ray

from liveshop.config import NAMESPACE, Settings
from liveshop.serve.scaling import GATEWAY_RESOURCE as GATEWAY_RESOURCE

ROOM_ACTOR_PREFIX = "room:"
SKU_ACTOR_PREFIX = "sku:"
AUCTION_ACTOR_PREFIX = "auction:"
CART_ACTOR_PREFIX = "cart:"
TRANSCODER_ACTOR_PREFIX = "transcoder:"
CHANNEL_ACTOR_PREFIX = "channel:"

#: The custom resource media nodes offer; one unit per live stream a node can transcode.
MEDIA_RESOURCE = "media"
#: Nodes for room, channel, SKU, auction and cart actors offer one unit per actor they may
#: host (each actor is a process: size it by memory). Gateway nodes offer GATEWAY_RESOURCE,
#: one unit per gateway process (see liveshop/serve/scaling.py).
ACTOR_RESOURCE = "actors"
#: The resources that place liveshop's processes when a cluster declares them (`liveshop
#: up` looks at the cluster and records the ones it has in ``Settings.placement``). A
#: cluster without them (a laptop, a plain `ray start`) places everything anywhere.
PLACEMENT_RESOURCES = (GATEWAY_RESOURCE, ACTOR_RESOURCE)

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

#: SKU actors likewise: the work is PostgreSQL round trips. A batch of buys is not
#: idempotent as a whole (its keys are, one by one): never replay it behind the caller's back.
SKU_ACTOR_OPTIONS: dict[str, Any] = dict(ROOM_ACTOR_OPTIONS)
AUCTION_ACTOR_OPTIONS: dict[str, Any] = dict(ROOM_ACTOR_OPTIONS)
#: One per shopper: many, mostly idle.
CART_ACTOR_OPTIONS: dict[str, Any] = {**ROOM_ACTOR_OPTIONS, "max_concurrency": 100}

#: Transcoders are the CPU-heavy actors: they run only where a node offers ``media`` (media
#: nodes), one unit each, so a cluster adds transcoding capacity by adding media nodes. The
#: encoder's threads take what CPU the node has; the resource, not num_cpus, is the limit.
TRANSCODER_ACTOR_OPTIONS: dict[str, Any] = {
    **ROOM_ACTOR_OPTIONS,
    "max_concurrency": 100,
    "resources": {MEDIA_RESOURCE: 1},
}

#: One per channel, always running (24/7): it ticks every second whether or not anyone
#: calls it, so it is created with the channel and again by the API if it is missing.
CHANNEL_ACTOR_OPTIONS: dict[str, Any] = {**ROOM_ACTOR_OPTIONS, "max_concurrency": 100}

#: Serve deployments. The gateway and API are I/O bound as well.
GATEWAY_ACTOR_OPTIONS: dict[str, Any] = {"num_cpus": 0}
API_ACTOR_OPTIONS: dict[str, Any] = {"num_cpus": 0}
#: With gateway nodes: as many replicas as the cluster has ``gateway`` units, following the
#: nodes as they come and go (scale down only after a node has been gone a few seconds).
GATEWAY_AUTOSCALING: dict[str, Any] = {
    "min_replicas": 1,
    "max_replicas": 10_000,
    "upscale_delay_s": 0,
    "downscale_delay_s": 5,
    "policy": {"policy_function": "liveshop.serve.scaling.gateway_units"},
}


#: ``actors`` units a cart takes: one per shopper, mostly idle, so many share a unit (the
#: others take a whole one).
CART_UNITS = 0.01


def placed(options: dict[str, Any], settings: Settings, units: float = 1.0) -> dict[str, Any]:
    """A domain actor's options on this cluster: on the nodes that offer ``actors`` if it
    declares them, spread over them so that losing one node restarts few actors."""
    if ACTOR_RESOURCE not in settings.placement:
        return options
    return {**options, "resources": {ACTOR_RESOURCE: units}, "scheduling_strategy": "SPREAD"}


@functools.cache
def _remote(module: str, name: str) -> Any:
    """The Ray actor class for ``liveshop.actors.<module>.<name>``, made on first use: the
    actors use the clients that use this module, so it imports none of them up front."""
    return ray.remote(getattr(importlib.import_module(f"liveshop.actors.{module}"), name))


#: Ray's handle types are not precise enough to type-check calls through; keep it honest.
RoomHandle = Any
SkuHandle = Any


def room_actor_name(room_id: str) -> str:
    return ROOM_ACTOR_PREFIX + room_id


def sku_actor_name(sku: str) -> str:
    return SKU_ACTOR_PREFIX + sku


def _get_actor(name: str) -> Any | None:
    try:
        return ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        return None


def get_room_actor(room_id: str) -> RoomHandle | None:
    """The running actor of ``room_id``, if there is one (blocking GCS lookup)."""
    return _get_actor(room_actor_name(room_id))


def _create(module: str, cls: str, name: str, options: dict[str, Any], *args: Any) -> Any:
    """Get or create the detached actor ``name`` (a blocking GCS call)."""
    return _remote(module, cls).options(name=name, get_if_exists=True, **options).remote(*args)


def create_room_actor(room_id: str, settings: Settings) -> RoomHandle:
    """Get or create the room's detached actor (blocking GCS call)."""
    options = placed(ROOM_ACTOR_OPTIONS, settings)
    return _create("room_actor", "RoomActor", room_actor_name(room_id), options, room_id, settings)


def get_sku_actor(sku: str) -> SkuHandle | None:
    return _get_actor(sku_actor_name(sku))


def create_sku_actor(sku: str, settings: Settings) -> SkuHandle:
    """Get or create the SKU's detached actor (blocking GCS call); the SKU must exist."""
    options = placed(SKU_ACTOR_OPTIONS, settings)
    return _create("sku_actor", "SkuActor", sku_actor_name(sku), options, sku, settings)


def get_auction_actor(auction_id: str) -> Any | None:
    return _get_actor(AUCTION_ACTOR_PREFIX + auction_id)


def create_auction_actor(auction_id: str, settings: Settings) -> Any:
    """Get or create the auction's detached actor (blocking GCS call); it must exist."""
    name = AUCTION_ACTOR_PREFIX + auction_id
    options = placed(AUCTION_ACTOR_OPTIONS, settings)
    return _create("auction_actor", "AuctionActor", name, options, auction_id, settings)


def get_cart_actor(user_id: str) -> Any | None:
    return _get_actor(CART_ACTOR_PREFIX + user_id)


def create_cart_actor(user_id: str, settings: Settings) -> Any:
    """Get or create the user's detached cart actor (blocking GCS call)."""
    name = CART_ACTOR_PREFIX + user_id
    options = placed(CART_ACTOR_OPTIONS, settings, CART_UNITS)
    return _create("cart_actor", "CartActor", name, options, user_id, settings)


def get_transcoder_actor(room_id: str) -> Any | None:
    return _get_actor(TRANSCODER_ACTOR_PREFIX + room_id)


def create_transcoder_actor(room_id: str, settings: Settings) -> Any:
    """Get or create the room's transcoder (blocking GCS call); it waits for a node with a
    free ``media`` unit."""
    name = TRANSCODER_ACTOR_PREFIX + room_id
    return _create(
        "transcoder_actor", "TranscoderActor", name, TRANSCODER_ACTOR_OPTIONS, room_id, settings
    )


def get_channel_actor(channel_id: str) -> Any | None:
    return _get_actor(CHANNEL_ACTOR_PREFIX + channel_id)


def create_channel_actor(channel_id: str, settings: Settings) -> Any:
    """Get or create the channel's detached actor (blocking GCS call); it must exist."""
    name = CHANNEL_ACTOR_PREFIX + channel_id
    options = placed(CHANNEL_ACTOR_OPTIONS, settings)
    return _create("channel_actor", "ChannelActor", name, options, channel_id, settings)


def state_address() -> str:
    """The connected cluster, for Ray's state API: without an address it picks the newest
    cluster on this machine, which on a host running two is not always ours."""
    address: str = ray.get_runtime_context().gcs_address
    return address


def list_actor_names(prefix: str) -> list[str]:
    from ray.util.state import list_actors

    actors = list_actors(
        address=state_address(),
        filters=[("state", "!=", "DEAD"), ("ray_namespace", "=", NAMESPACE)],
        limit=10_000,
    )
    return [a.name for a in actors if a.name and a.name.startswith(prefix)]


def kill_domain_actors() -> int:
    """Stop every room, SKU, auction, cart, transcoder and channel actor (for `liveshop down` on a
    shared cluster)."""
    killed = 0
    prefixes = (
        ROOM_ACTOR_PREFIX, SKU_ACTOR_PREFIX, AUCTION_ACTOR_PREFIX, CART_ACTOR_PREFIX,
        TRANSCODER_ACTOR_PREFIX, CHANNEL_ACTOR_PREFIX,
    )  # fmt: skip
    for prefix in prefixes:
        for name in list_actor_names(prefix):
            handle = _get_actor(name)
            if handle is not None:
                ray.kill(handle, no_restart=True)
                killed += 1
    return killed
