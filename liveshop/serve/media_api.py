"""The media endpoints (Ray Serve + FastAPI, under ``/media``), and the RTMP listener.

- ``GET /media/live/...``: HLS playlists, segments and thumbnails from the segment store,
  with cache headers a CDN can use (segments immutable, playlists for a second).
- Stream keys (host or service): issue/rotate, list, revoke.
- The room's stream: status and health, and ``stop`` to end it.

Each replica also runs an RTMP listener on ``rtmp_port`` (SO_REUSEPORT: replicas share it).
"""

import asyncio
import logging
import secrets
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import Response
from pydantic import Field
from ray import serve
from ray.exceptions import RayActorError

from liveshop.actors import wiring
from liveshop.app.ops import require_host
from liveshop.config import Settings
from liveshop.errors import (
    BadStream,
    Forbidden,
    InvalidRequest,
    NotFound,
    RoomNotFound,
    StreamNotLive,
    Unavailable,
)
from liveshop.media import webrtc
from liveshop.media.ingest import RtmpIngest
from liveshop.media.restream import Destination, check_url, masked
from liveshop.media.segments import LocalDiskStore, cache_control, check_name, content_type
from liveshop.protocol import RoomId
from liveshop.serve import views
from liveshop.serve.auth import Authorization, bearer_identity
from liveshop.serve.http_errors import BodyLimit, install_error_handlers, limit_bodies
from liveshop.serve.schema import BODY, JSON, ROLE, TOKEN, Body, Route, answers, serve_docs
from liveshop.storage.pool import create_pool
from liveshop.storage.restreams import RestreamStore
from liveshop.storage.rooms import RoomStore
from liveshop.storage.stream_keys import StreamKeyStore
from liveshop.text import Key

log = logging.getLogger(__name__)

app = FastAPI(
    title="liveshop media",
    description="HLS, stream keys and live stream control (docs/protocol.md, Media).",
    # Swagger UI from liveshop's own static files (schema.serve_docs), never a CDN.
    docs_url=None,
    redoc_url=None,
)
app.router.route_class = Route
install_error_handlers(app)
serve_docs(app, prefix="/media")
# Bodies over Settings.max_body_bytes are refused before anything reads them (413).
app.add_middleware(BodyLimit)
#: An SDP offer or answer in the OpenAPI document (WHIP and WHEP).
SDP = {"content": {"application/sdp": {"schema": {"type": "string"}}}}

RoomPath = Annotated[RoomId, Path()]


class RestreamIn(Body):
    #: The platform's ingest URL with its stream key as the last path part.
    url: Annotated[Key, Field(min_length=8, max_length=1100)]


@serve.deployment(name="media", health_check_period_s=5)
@serve.ingress(app)
class MediaApi:
    async def __init__(self, settings: Settings) -> None:  # type: ignore[misc]
        assert settings.database_url
        self.settings = settings
        limit_bodies(settings.max_body_bytes)
        self.store = LocalDiskStore(settings.media_root)
        self.pool = await create_pool(settings.database_url, min_size=1, max_size=4)
        self.keys = StreamKeyStore(self.pool)
        self.restreams = RestreamStore(self.pool)
        self.rooms = RoomStore(self.pool)
        self.ingest = RtmpIngest(
            self.keys, self._transcoder_for, host=settings.rtmp_host,
            port=settings.rtmp_port, call_timeout=settings.actor_call_timeout,
        )  # fmt: skip
        await self.ingest.start()

    async def _transcoder_for(self, room_id: str) -> Any:
        """The room's transcoder, started if it is not running (a publisher arrives)."""
        return await asyncio.to_thread(wiring.create_transcoder_actor, room_id, self.settings)

    async def _transcoder(self, room_id: str) -> Any | None:
        """The room's running transcoder, if any (reads and control never start one). Not
        an ``ActorClient``: that creates actors on use, and a transcoder leaves for good
        when its stream ends, so a cached handle would outlive it."""
        return await asyncio.to_thread(wiring.get_transcoder_actor, room_id)

    async def _running_transcoder(self, room_id: str) -> Any:
        handle = await self._transcoder(room_id)
        if handle is None:
            raise StreamNotLive(f"room {room_id!r} has no live stream")
        return handle

    def _host(self, authorization: str | None, room_id: str, what: str) -> None:
        require_host(bearer_identity(self.settings.secret, authorization), room_id, what)

    # -- HLS -------------------------------------------------------------------------------

    @app.get("/live/{name:path}", response_class=Response, responses={
        200: {"description": "a playlist, segment or thumbnail", "content": {
            "application/vnd.apple.mpegurl": {}, "video/mp2t": {}, "image/jpeg": {}}},
        **answers(404)})  # fmt: skip
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

    @app.post("/rooms/{room_id}/stream-keys", status_code=201, response_model=views.StreamKeysOut,
              responses=answers(*ROLE, 404))  # fmt: skip
    async def issue_keys(
        self, room_id: RoomPath, authorization: Authorization = None
    ) -> dict[str, Any]:
        """New primary and backup keys; the old ones stop working (a live publisher on
        them is cut off within seconds). Shown once: only hashes are stored."""
        self._host(authorization, room_id, "issue stream keys")
        keys = await self.keys.issue(room_id)
        return {"room_id": room_id, "rtmp_url": self.settings.rtmp_url, "keys": keys}

    @app.get("/rooms/{room_id}/stream-keys", response_model=views.IssuedKeysOut,
             responses=answers(*ROLE, 404))  # fmt: skip
    async def list_keys(
        self, room_id: RoomPath, authorization: Authorization = None
    ) -> dict[str, Any]:
        self._host(authorization, room_id, "list stream keys")
        return {"room_id": room_id, "keys": await self.keys.issued(room_id)}

    @app.delete("/rooms/{room_id}/stream-keys", response_model=views.RevokedOut,
                responses=answers(*ROLE, 404))  # fmt: skip
    async def revoke_keys(
        self, room_id: RoomPath, authorization: Authorization = None
    ) -> dict[str, Any]:
        self._host(authorization, room_id, "revoke stream keys")
        return {"room_id": room_id, "revoked": await self.keys.revoke(room_id)}

    # -- the live stream -------------------------------------------------------------------

    @app.get("/rooms/{room_id}/stream", response_model=views.StreamView, responses=answers(404))
    async def stream(self, room_id: RoomPath) -> dict[str, Any]:
        """Status, playback URLs and health (public: a player needs the URLs)."""
        handle = await self._running_transcoder(room_id)
        view: dict[str, Any] = await self._call(
            handle.view.remote(), self.settings.actor_call_timeout
        )
        return view

    @app.post("/rooms/{room_id}/stream/stop", response_model=views.StreamView,
              responses=answers(*ROLE, 404))  # fmt: skip
    async def stop(self, room_id: RoomPath, authorization: Authorization = None) -> dict[str, Any]:
        """End the stream: players reach the end, the recording becomes the replay."""
        self._host(authorization, room_id, "end the stream")
        handle = await self._running_transcoder(room_id)
        view: dict[str, Any] = await self._call(handle.stop.remote(), 60)
        return view

    # -- restreaming --------------------------------------------------------------------------

    async def _apply_restreams(self, room_id: str) -> None:
        """Tell a running transcoder the room's destinations after a change."""
        handle = await self._transcoder(room_id)
        if handle is not None:
            wanted = [(d.destination_id, d.url) for d in await self.restreams.list(room_id)]
            await self._call(handle.set_restreams.remote(wanted), self.settings.actor_call_timeout)

    @app.get("/rooms/{room_id}/restreams", response_model=views.RestreamsOut,
             responses=answers(*ROLE, 404))  # fmt: skip
    async def list_restreams(
        self, room_id: RoomPath, authorization: Authorization = None
    ) -> dict[str, Any]:
        """Destinations (URLs masked) with their live state while the room streams."""
        self._host(authorization, room_id, "list restreams")
        handle = await self._transcoder(room_id)
        live: dict[str, Any] = {}
        if handle is not None:
            view = await self._call(handle.view.remote(), self.settings.actor_call_timeout)
            live = {r["id"]: r for r in view["restreams"]}
        return {
            "room_id": room_id,
            "restreams": [
                live.get(d.destination_id)
                or {"id": d.destination_id, "url": masked(d.url), "state": "idle"}
                for d in await self.restreams.list(room_id)
            ],
        }

    @app.put("/rooms/{room_id}/restreams/{destination_id}", response_model=views.RestreamOut,
             responses=answers(*ROLE, *JSON, 409, 404))  # fmt: skip
    async def put_restream(
        self,
        room_id: RoomPath,
        destination_id: RoomPath,
        body: RestreamIn,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        """Add or change a destination; a live stream starts forwarding at once."""
        self._host(authorization, room_id, "restream")
        destination = Destination(destination_id, check_url(body.url))
        await self.restreams.put(room_id, destination)
        await self._apply_restreams(room_id)
        return {"id": destination_id, "url": masked(destination.url)}

    @app.delete("/rooms/{room_id}/restreams/{destination_id}", response_model=views.DeletedOut,
                responses=answers(*ROLE, 404))  # fmt: skip
    async def delete_restream(
        self,
        room_id: RoomPath,
        destination_id: RoomPath,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        self._host(authorization, room_id, "restream")
        if not await self.restreams.delete(room_id, destination_id):
            raise NotFound(f"no restream {destination_id!r} in room {room_id!r}")
        await self._apply_restreams(room_id)
        return {"deleted": destination_id}

    # -- WebRTC: WHIP publishing, WHEP playback -----------------------------------------------

    async def _sdp(self, request: Request) -> str:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/sdp":
            raise BadStream("send the SDP offer with Content-Type: application/sdp")
        body = await request.body()
        if len(body) > webrtc.MAX_SDP_BYTES:
            raise BadStream("the SDP offer is too large")
        return webrtc.check_offer(body.decode("utf-8", "replace"))

    @staticmethod
    def _answer(answer: str, location: str) -> Response:
        return Response(
            content=answer, status_code=201, media_type="application/sdp",
            headers={"Location": location},
        )  # fmt: skip

    async def _call(self, call: Any, timeout: float) -> Any:
        try:
            return await asyncio.wait_for(call, timeout)
        except (RayActorError, TimeoutError):
            raise Unavailable("the transcoder is restarting, try again") from None

    @app.post("/rooms/{room_id}/whip", status_code=201, response_class=Response,
              openapi_extra={"requestBody": {"required": True, **SDP}},
              responses={201: {"description": "the SDP answer; `Location`: the session",
                               **SDP}, **answers(*ROLE, *BODY, 400, 404, 409)})  # fmt: skip
    async def whip(
        self,
        room_id: RoomPath,
        request: Request,
        slot: Annotated[str, Query(pattern="^(primary|backup)$")] = "primary",
        authorization: Authorization = None,
    ) -> Response:
        """Publish from a browser camera or any WHIP client (host token)."""
        self._host(authorization, room_id, "publish")
        offer = await self._sdp(request)
        if not await self.rooms.room_exists(room_id):
            raise RoomNotFound(f"no room {room_id!r}")
        handle = await self._transcoder_for(room_id)
        session = secrets.token_hex(8)
        answer = await self._call(handle.whip.remote(slot, session, offer), 30)
        return self._answer(answer, f"/media/rooms/{room_id}/whip/{session}")

    @app.post("/rooms/{room_id}/whep", status_code=201, response_class=Response,
              openapi_extra={"requestBody": {"required": True, **SDP}},
              responses={201: {"description": "the SDP answer; `Location`: the session",
                               **SDP}, **answers(*ROLE, *BODY, 400, 404, 429)})  # fmt: skip
    async def whep(
        self,
        room_id: RoomPath,
        request: Request,
        authorization: Authorization = None,
    ) -> Response:
        """Watch with WebRTC (sub-second): any token with a role in the room, at most
        ``whep_max_per_user`` sessions per user (429 ``rate_limited`` beyond)."""
        identity = bearer_identity(self.settings.secret, authorization)
        if not identity.roles_in(room_id):
            raise Forbidden("WebRTC playback needs a token for this room")
        offer = await self._sdp(request)
        handle = await self._running_transcoder(room_id)
        session = secrets.token_hex(8)
        answer = await self._call(handle.whep.remote(session, offer, identity.user_id), 30)
        return self._answer(answer, f"/media/rooms/{room_id}/whep/{session}")

    @app.delete("/rooms/{room_id}/{kind}/{session_id}", response_model=views.EndedOut,
                responses=answers(*TOKEN, 404))  # fmt: skip
    async def end_session(
        self,
        room_id: RoomPath,
        kind: Annotated[str, Path(pattern="^(whip|whep)$")],
        session_id: Annotated[str, Path(pattern="^[0-9a-f]{16}$")],
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        """End a WHIP or WHEP session (the session URL is the capability: it is only ever
        given to the client that opened it, over an authenticated request)."""
        bearer_identity(self.settings.secret, authorization)
        handle = await self._running_transcoder(room_id)
        await self._call(handle.detach.remote(session_id), self.settings.actor_call_timeout)
        return {"ended": session_id}

    @app.get("/healthz", response_model=views.MediaHealth, responses=answers(params=False))
    async def healthz(self) -> dict[str, Any]:
        return {"status": "ok", "rtmp": self.ingest.stats()}
