"""How many gateway replicas a cluster runs: one per unit of the ``gateway`` resource.

Nodes meant for gateways declare ``gateway`` units (``ray start --resources='{"gateway": 4}'``:
one gateway process per unit, typically one per core). This policy runs in Serve's
controller as the gateway deployment's autoscaling policy, so the replica count follows the
nodes: a gateway node that joins gets its gateways within seconds, one that dies takes its
own away, and no replica is restarted to get there (a redeploy would cut every socket).
"""

from __future__ import annotations

import time
from typing import Any

from liveshop.mesh.options import GATEWAY_RESOURCE

#: How often the policy asks the GCS for the cluster's resources (it is called ~10x/s).
CHECK_EVERY = 2.0


def gateway_units(ctx: Any) -> tuple[int, dict[str, Any]]:
    """Serve custom autoscaling policy: the cluster's ``gateway`` units (at least one)."""
    import ray

    state = dict(ctx.policy_state)
    now = time.time()
    if now - state.get("liveshop_checked", 0.0) >= CHECK_EVERY or "liveshop_units" not in state:
        state["liveshop_checked"] = now
        state["liveshop_units"] = max(1, int(ray.cluster_resources().get(GATEWAY_RESOURCE, 0)))  # type: ignore[no-untyped-call]
    return int(state["liveshop_units"]), state
