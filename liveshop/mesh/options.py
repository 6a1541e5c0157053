"""The Ray options of entity hosts and the resources that place liveshop's processes
(liveshop/actors/wiring.py holds the rest: transcoders, Serve deployments)."""

from __future__ import annotations

from typing import Any

from liveshop.config import NAMESPACE, Settings

#: The custom resource gateway nodes offer, one unit per gateway process (see
#: liveshop/serve/scaling.py).
GATEWAY_RESOURCE = "gateway"
#: Nodes for entity hosts offer one unit per host process they may run (size it by memory:
#: a host is ~150 MB plus its entities). Gateway nodes offer ``gateway`` units instead.
ACTOR_RESOURCE = "actors"

#: A host mostly waits on PostgreSQL and Redis: it reserves no CPU. Its calls are many and
#: short: max_concurrency bounds calls in flight over all its entities.
HOST_ACTOR_OPTIONS: dict[str, Any] = {
    "namespace": NAMESPACE,
    "lifetime": "detached",
    "max_restarts": -1,
    # A batch is not idempotent (chat, buys as a whole): never replay it behind the
    # caller's back.
    "max_task_retries": 0,
    "num_cpus": 0,
    "max_concurrency": 100_000,
}


def placed(options: dict[str, Any], settings: Settings, units: float = 1.0) -> dict[str, Any]:
    """A host's options on this cluster: on the nodes that offer ``actors`` if it declares
    them, spread over them so that losing one node restarts few hosts."""
    if ACTOR_RESOURCE not in settings.placement:
        return options
    return {**options, "resources": {ACTOR_RESOURCE: units}, "scheduling_strategy": "SPREAD"}
