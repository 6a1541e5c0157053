"""The Serve applications (the HTTP API, the WebSocket gateways, the media app) and their
deployment. Their Ray options live in :mod:`liveshop.actors.wiring` with every other one;
this module sits above the apps it binds, so the wiring below never imports them."""

from __future__ import annotations

import contextlib
from typing import Any

from ray import serve

from liveshop.actors.wiring import (
    API_ACTOR_OPTIONS,
    GATEWAY_ACTOR_OPTIONS,
    GATEWAY_AUTOSCALING,
    GATEWAY_RESOURCE,
)
from liveshop.config import Settings
from liveshop.serve.api import Api
from liveshop.serve.gateway_app import GatewayDeployment
from liveshop.serve.media_api import MediaApi


def api_application(settings: Settings) -> Any:
    """The Serve application for the HTTP API."""
    return Api.options(ray_actor_options=API_ACTOR_OPTIONS).bind(settings)  # type: ignore[attr-defined]


def media_application(settings: Settings) -> Any:
    """The Serve application for HLS, stream keys and WHIP/WHEP; each replica also runs an
    RTMP listener (SO_REUSEPORT, like the gateway)."""
    return MediaApi.options(  # type: ignore[attr-defined]
        num_replicas=settings.media_replicas, ray_actor_options=API_ACTOR_OPTIONS
    ).bind(settings)


def gateway_application(settings: Settings) -> Any:
    """The Serve application whose replicas each run a WebSocket gateway (SO_REUSEPORT)."""
    if GATEWAY_RESOURCE not in settings.placement:
        return GatewayDeployment.options(  # type: ignore[attr-defined]
            num_replicas=max(1, settings.gateways), ray_actor_options=GATEWAY_ACTOR_OPTIONS
        ).bind(settings)
    options = {**GATEWAY_ACTOR_OPTIONS, "resources": {GATEWAY_RESOURCE: 1}}
    if settings.gateways:  # a fixed count, each on a gateway unit
        return GatewayDeployment.options(  # type: ignore[attr-defined]
            num_replicas=settings.gateways, ray_actor_options=options
        ).bind(settings)
    return GatewayDeployment.options(  # type: ignore[attr-defined]
        autoscaling_config=GATEWAY_AUTOSCALING, ray_actor_options=options
    ).bind(settings)


API_APP = "liveshop-api"
GATEWAY_APP = "liveshop-gateway"
MEDIA_APP = "liveshop-media"
MEDIA_PREFIX = "/media"


def deploy(settings: Settings) -> None:
    """Start Serve on 127.0.0.1 (by default) and run both applications; blocks until ready."""
    serve.start(
        http_options={"host": settings.http_host, "port": settings.http_port},
        proxy_location="HeadOnly",
    )
    serve.run(gateway_application(settings), name=GATEWAY_APP, route_prefix=None)
    serve.run(media_application(settings), name=MEDIA_APP, route_prefix=MEDIA_PREFIX)
    serve.run(api_application(settings), name=API_APP, route_prefix="/")


def undeploy() -> None:
    for app in (API_APP, MEDIA_APP, GATEWAY_APP):
        with contextlib.suppress(Exception):
            serve.delete(app)
