"""The media endpoints (Ray Serve + FastAPI, under ``/media``), and the RTMP listener.

- ``GET /media/live/...``: HLS playlists, segments and thumbnails from the segment store,
  with cache headers a CDN can use (segments immutable, playlists for a second).
- Stream keys (host or service): issue/rotate, list, revoke.
- The room's stream: status and health, and ``stop`` to end it.

Each replica also runs an RTMP listener on ``rtmp_port`` (SO_REUSEPORT: replicas share it).
"""

import asyncio
import logging
from typing import Annotated, Any

from fastapi import FastAPI, Header, Path
from fastapi.responses import Response
from ray import serve
from ray.exceptions import RayActorError

from liveshop.config import Settings
from liveshop.errors import InvalidRequest, NotFound, StreamNotLive, Unavailable
from liveshop.media.ingest import RtmpIngest
from liveshop.media.segments import LocalDiskStore, cache_control, check_name, content_type
from liveshop.protocol import RoomId
from liveshop.serve.auth import bearer_identity
from liveshop.serve.http_errors import install_error_handlers
from liveshop.serve.ops import require_host
from liveshop.storage.pool import create_pool
from liveshop.storage.stream_keys import StreamKeyStore

log = logging.getLogger(__name__)

app = FastAPI(title="liveshop media", description="HLS, stream keys and live stream control.")
install_error_handlers(app)

RoomPath = Annotated[RoomId, Path()]


@serve.deployment(name="media", health_check_period_s=5)
@serve.ingress(app)
class MediaApi:
    async def __init__(self, settings: Settings) -> None:  # type: ignore[misc]
        assert settings.database_url
        self.settings = settings
        self.store = LocalDiskStore(settings.media_root)
        self.pool = await create_pool(settings.database_url, min_size=1, max_size=4)
        self.keys = StreamKeyStore(self.pool)
        self.ingest = RtmpIngest(
            self.keys, self._transcoder_for, host=settings.rtmp_host,
            port=settings.rtmp_port, call_timeout=settings.actor_call_timeout,
        )  # fmt: skip
        await self.ingest.start()

    async def _transcoder_for(self, room_id: str) -> Any:
        from liveshop.actors import wiring

        return await asyncio.to_thread(wiring.create_transcoder_actor, room_id, self.settings)

    async def _running_transcoder(self, room_id: str) -> Any:
        from liveshop.actors import wiring

        handle = await asyncio.to_thread(wiring.get_transcoder_actor, room_id)
        if handle is None:
            raise StreamNotLive(f"room {room_id!r} has no live stream")
        return handle

    def _host(self, authorization: str | None, room_id: str, what: str) -> None:
        require_host(bearer_identity(self.settings.secret, authorization), room_id, what)

    # -- HLS -------------------------------------------------------------------------------

    @app.get("/live/{name:path}")
    async def live(self, name: str) -> Response:
        try:
            check_name(f"live/{name}")
        except InvalidRequest:
            raise NotFound("no such media object") from None
        if name.endswith(".json"):
            raise NotFound("no such media object")  # transcoder state is not for players
        data = await asyncio.to_thread(self.store.get, f"live/{name}")
        if data is None:
            raise NotFound("no such media object")
        return Response(
            content=data,
            media_type=content_type(name),
            headers={
                "Cache-Control": cache_control(name),
                # Players on other origins (a shop's own site) may read the stream.
                "Access-Control-Allow-Origin": "*",
            },
        )

    # -- stream keys -----------------------------------------------------------------------

    @app.post("/rooms/{room_id}/stream-keys", status_code=201)
    async def issue_keys(
        self, room_id: RoomPath, authorization: Annotated[str | None, Header()] = None
    ) -> dict[str, Any]:
        """New primary and backup keys; the old ones stop working (a live publisher on
        them is cut off within seconds). Shown once: only hashes are stored."""
        self._host(authorization, room_id, "issue stream keys")
        keys = await self.keys.issue(room_id)
        return {"room_id": room_id, "rtmp_url": self.settings.rtmp_url, "keys": keys}

    @app.get("/rooms/{room_id}/stream-keys")
    async def list_keys(
        self, room_id: RoomPath, authorization: Annotated[str | None, Header()] = None
    ) -> dict[str, Any]:
        self._host(authorization, room_id, "list stream keys")
        return {"room_id": room_id, "keys": await self.keys.issued(room_id)}

    @app.delete("/rooms/{room_id}/stream-keys")
    async def revoke_keys(
        self, room_id: RoomPath, authorization: Annotated[str | None, Header()] = None
    ) -> dict[str, Any]:
        self._host(authorization, room_id, "revoke stream keys")
        return {"room_id": room_id, "revoked": await self.keys.revoke(room_id)}

    # -- the live stream -------------------------------------------------------------------

    @app.get("/rooms/{room_id}/stream")
    async def stream(self, room_id: RoomPath) -> dict[str, Any]:
        """Status, playback URLs and health (public: a player needs the URLs)."""
        handle = await self._running_transcoder(room_id)
        try:
            view: dict[str, Any] = await asyncio.wait_for(
                handle.view.remote(), self.settings.actor_call_timeout
            )
        except (RayActorError, TimeoutError):
            raise Unavailable("the transcoder is restarting, try again") from None
        return view

    @app.post("/rooms/{room_id}/stream/stop")
    async def stop(
        self, room_id: RoomPath, authorization: Annotated[str | None, Header()] = None
    ) -> dict[str, Any]:
        """End the stream: players reach the end, the recording becomes the replay."""
        self._host(authorization, room_id, "end the stream")
        handle = await self._running_transcoder(room_id)
        try:
            view: dict[str, Any] = await asyncio.wait_for(handle.stop.remote(), 60)
        except (RayActorError, TimeoutError):
            raise Unavailable("the transcoder is restarting, try again") from None
        return view

    @app.get("/healthz")
    async def healthz(self) -> dict[str, Any]:
        return {"status": "ok", "rtmp": self.ingest.stats()}
