"""Ray options beside the entity hosts' (liveshop/mesh/options.py): transcoders, the Serve
deployments, placement resources; and the cluster-wide listing and killing of liveshop's
actors.

Actor classes stay plain Python; this module turns them into Ray actors, so all of them
import and unit-test without Ray.
"""

from __future__ import annotations

from typing import Any

import ray

from liveshop.actors.transcoder_actor import TranscoderActor
from liveshop.config import NAMESPACE, Settings
from liveshop.mesh.options import ACTOR_RESOURCE as ACTOR_RESOURCE
from liveshop.mesh.options import GATEWAY_RESOURCE as GATEWAY_RESOURCE
from liveshop.mesh.options import HOST_ACTOR_OPTIONS
from liveshop.mesh.options import placed as placed
from liveshop.mesh.placement import HOST_PREFIX

TRANSCODER_ACTOR_PREFIX = "transcoder:"

#: The custom resource media nodes offer; one unit per live stream a node can transcode.
MEDIA_RESOURCE = "media"
#: The resources that place liveshop's processes when a cluster declares them (`liveshop
#: up` looks at the cluster and records the ones it has in ``Settings.placement``). A
#: cluster without them (a laptop, a plain `ray start`) places everything anywhere. Entity
#: hosts go where ``actors`` is offered (liveshop/mesh/options.py); gateways where
#: ``gateway`` is (see liveshop/serve/scaling.py).
PLACEMENT_RESOURCES = (GATEWAY_RESOURCE, ACTOR_RESOURCE)

#: Transcoders are the CPU-heavy actors, a process each by design: they run only where a
#: node offers ``media``, one unit each, so a cluster adds transcoding capacity by adding
#: media nodes. The encoder's threads take what CPU the node has; the resource, not
#: num_cpus, is the limit.
TRANSCODER_ACTOR_OPTIONS: dict[str, Any] = {
    **HOST_ACTOR_OPTIONS,
    "max_concurrency": 100,
    "resources": {MEDIA_RESOURCE: 1},
}

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


_TRANSCODER = ray.remote(TranscoderActor)


def _get_actor(name: str) -> Any | None:
    try:
        return ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        return None


def get_transcoder_actor(room_id: str) -> Any | None:
    return _get_actor(TRANSCODER_ACTOR_PREFIX + room_id)


def create_transcoder_actor(room_id: str, settings: Settings) -> Any:
    """Get or create the room's transcoder (blocking GCS call); it waits for a node with a
    free ``media`` unit."""
    name = TRANSCODER_ACTOR_PREFIX + room_id
    return _TRANSCODER.options(name=name, get_if_exists=True, **TRANSCODER_ACTOR_OPTIONS).remote(
        room_id, settings
    )


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
    """Stop every entity host and transcoder (for `liveshop down` on a shared cluster)."""
    killed = 0
    for prefix in (HOST_PREFIX, TRANSCODER_ACTOR_PREFIX):
        for name in list_actor_names(prefix):
            handle = _get_actor(name)
            if handle is not None:
                ray.kill(handle, no_restart=True)
                killed += 1
    return killed
