"""The transcoder actor: one per live stream (room), on a node that offers ``media``.

It owns a :class:`~liveshop.media.live.LiveStream` (decode once, encode the ladder, package
HLS) and takes its input from ingests: RTMP listeners push FLV bytes with ``feed``; WHIP
publishers connect to it directly (see ``whip``). The stream's view (status, URLs, health)
goes to the room actor whenever it changes, at most once a second for health alone.

Killed, Ray restarts it: the stream continues from its saved playlists with a
discontinuity, on the slate until a publisher is back, and each ingest re-attaches and
resends its codec headers (``feed`` answers False to an ingest it does not know).

At start it measures what encoding costs on its node (``measure_cost``, about half a second
of CPU) so the stream's ladder is one the node sustains (``media_cpu_share`` of its cores);
while the stream runs, rungs are shed when the encoder still falls behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

import ray

from liveshop.config import Settings
from liveshop.errors import BadStream, LiveshopError, StreamNotLive, Unavailable
from liveshop.media import webrtc
from liveshop.media.ladder import Budget, parse_ladder
from liveshop.media.live import LiveOptions, LiveStream
from liveshop.media.restream import Destination, check_url
from liveshop.media.segments import LocalDiskStore
from liveshop.media.sources import FlvSource, TrackSource
from liveshop.media.transcoder import measure_cost
from liveshop.mesh.room_client import RoomClient
from liveshop.storage.pool import connect_retrying
from liveshop.storage.restreams import RestreamStore
from liveshop.storage.rooms import RoomStore

log = logging.getLogger(__name__)


def node_cores() -> int:
    """Cores this process may run on (its CPU affinity: a container's or a pinned node's
    share, not the whole machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _budget(settings: Settings) -> Budget | None:
    """The encode cost measured here, and what a stream's ladder is sized to."""
    if settings.media_cpu_share <= 0:
        return None
    budget = Budget(measure_cost(settings.media_preset), node_cores(), settings.media_cpu_share)
    log.info("a ladder is sized to %s", budget)
    return budget


def _crash(exc: BaseException) -> None:
    """The encoder thread died: end this process so Ray restarts the actor (max_restarts
    is unlimited) and the stream resumes from its saved state."""
    logging.shutdown()
    os._exit(70)


class StreamMetrics:
    """Stream health as Ray metrics (dashboard, Prometheus), labelled by room."""

    def __init__(self, room_id: str) -> None:
        from ray.util import metrics

        tags = ("room",)
        self.tags = {"room": room_id}
        self.speed = metrics.Gauge(
            "liveshop_transcoder_speed",
            "Seconds of video encoded per second spent encoding (below 1: falling behind)",
            tag_keys=tags,
        )
        self.input_kbps = metrics.Gauge(
            "liveshop_stream_input_kbps", "Ingest bitrate of the source on air", tag_keys=tags
        )
        self.fps = metrics.Gauge(
            "liveshop_stream_fps", "Frame rate of the source on air", tag_keys=tags
        )
        self.dropped = metrics.Gauge(
            "liveshop_stream_dropped_frames", "Frames dropped, encoder behind", tag_keys=tags
        )
        self.alerts = metrics.Gauge(
            "liveshop_stream_alerts", "Health alerts raised on the stream now", tag_keys=tags
        )
        self.on_air = metrics.Gauge(
            "liveshop_stream_on_air", "1 while a publisher is on air, 0 on slate", tag_keys=tags
        )
        self.load = metrics.Gauge(
            "liveshop_transcoder_load",
            "Share of real time the encoder needs per frame of its ladder (from 1: behind)",
            tag_keys=tags,
        )
        self.shed = metrics.Gauge(
            "liveshop_stream_rungs_shed",
            "Top rungs shed: the encoder could not keep up",
            tag_keys=tags,
        )

    def record(self, view: dict[str, Any]) -> None:
        health = view.get("health") or {}
        for gauge, value in (
            (self.speed, health.get("encoder_speed")),
            (self.input_kbps, health.get("input_kbps")),
            (self.fps, health.get("fps")),
            (self.dropped, health.get("dropped_frames")),
            (self.load, health.get("encoder_load")),
        ):
            if value is not None:
                gauge.set(float(value), tags=self.tags)
        self.alerts.set(len(health.get("alerts") or ()), tags=self.tags)
        self.shed.set(float(len(health.get("shed") or ())), tags=self.tags)
        self.on_air.set(1.0 if view.get("status") == "live" else 0.0, tags=self.tags)


class TranscoderActor:
    def __repr__(self) -> str:
        # The dashboard's "repr name" and the log prefix (see RoomActor.__repr__).
        return f"TranscoderActor(room={self.room_id})"

    async def __init__(self, room_id: str, settings: Settings) -> None:  # type: ignore[misc]
        self.room_id = room_id
        self.settings = settings
        self.loop = asyncio.get_running_loop()
        self._view: dict[str, Any] = {}
        self._view_due = asyncio.Event()
        self._room: Any = None
        options = LiveOptions(
            segment_seconds=settings.segment_seconds,
            window=settings.hls_window,
            preset=settings.media_preset,
            stall_after=settings.stall_after,
            idle_end=settings.media_idle_end,
            thumbnail_interval=settings.thumbnail_interval,
            rungs=parse_ladder(settings.media_ladder),
            budget=await asyncio.to_thread(_budget, settings),
        )
        self.metrics = StreamMetrics(room_id)
        self.relay = webrtc.FrameRelay(self.loop)
        #: WebRTC sessions by id: WHIP publishers and WHEP players.
        self.publishers: dict[str, webrtc.Peer] = {}
        self.players: dict[str, webrtc.Peer] = {}
        self.stream = await asyncio.to_thread(
            LiveStream, room_id, store=LocalDiskStore(settings.media_root),
            work=settings.data_dir / "media-work", options=options, on_view=self._on_view,
            on_frame=self.relay.offer, on_audio=self.relay.offer_audio, on_crash=_crash,
        )  # fmt: skip
        self._pusher = self.loop.create_task(self._push_loop())
        self._restreams = self.loop.create_task(self._load_restreams())

    async def _load_restreams(self) -> None:
        """The room's restream destinations, as stored (retrying while the database is
        away: forwarding can start late, the show cannot wait for it)."""
        assert self.settings.database_url
        pool = await connect_retrying(
            self.settings.database_url, max_size=1, who=f"transcoder {self.room_id}"
        )
        try:
            destinations = await RestreamStore(pool).list(self.room_id)
        finally:
            await pool.close()
        self.stream.set_restreams(destinations)

    # -- ingest --------------------------------------------------------------------------

    async def attach(self, slot: str, ingest_id: str) -> dict[str, Any]:
        """Claim ``slot`` for an RTMP ingest; StreamInUse while another publisher holds it."""
        if self.stream.ended:
            raise BadStream("this stream has ended; publish again to start a new one")
        self.stream.attach(slot, ingest_id)
        await self._close_replaced()
        return self.stream.view()

    async def feed(self, ingest_id: str, data: bytes) -> bool:
        """FLV bytes from an attached ingest; False: attach again and start over with the
        FLV header and codec configuration (this actor restarted, or the slot was taken)."""
        source = self.stream.source_of(ingest_id)
        if not isinstance(source, FlvSource) or source.closed:
            return False
        if not source.write(data):
            raise BadStream("the stream is arriving faster than it can be decoded")
        return True

    async def detach(self, ingest_id: str) -> None:
        """An ingest or a WebRTC session (WHIP or WHEP) ends."""
        self.stream.detach(ingest_id)
        peer = self.publishers.pop(ingest_id, None) or self.players.pop(ingest_id, None)
        if peer is not None:
            await peer.close()

    async def _close_replaced(self) -> None:
        """A WHIP publisher whose slot another publisher took over: its session ends."""
        for session_id, peer in list(self.publishers.items()):
            if self.stream.source_of(session_id) is None:
                del self.publishers[session_id]
                await peer.close()

    # -- WebRTC --------------------------------------------------------------------------

    async def whip(self, slot: str, session_id: str, offer: str) -> str:
        """A WHIP publisher on ``slot``: the SDP answer. The session lives in this actor
        (a restart ends it; WHIP clients publish again)."""
        if self.stream.ended:
            raise BadStream("this stream has ended; publish again to start a new one")
        webrtc.check_offer(offer)
        source = self.stream.attach(slot, session_id, track=True)
        assert isinstance(source, TrackSource)
        await self._close_replaced()

        def ended() -> None:
            self.stream.detach(session_id)
            self.publishers.pop(session_id, None)

        try:
            self.publishers[session_id] = await webrtc.publish(
                offer, source, ended, connect_within=self.settings.webrtc_connect_timeout
            )
        except BaseException:
            self.stream.detach(session_id)
            raise
        return self.publishers[session_id].answer

    async def whep(self, session_id: str, offer: str, user_id: str) -> str:
        """A WHEP subscriber (``user_id``'s): the SDP answer; refused when the room has as
        many as WebRTC playback is meant for (HLS serves the rest), or the user already
        holds ``whep_max_per_user`` of them (``rate_limited``)."""
        if self.stream.encoder is None:
            raise StreamNotLive("nothing is on air yet")
        if self.relay.subscribers >= self.settings.whep_max_subscribers:
            raise Unavailable("WebRTC playback is full here; play the HLS stream instead")
        peer = await webrtc.play(
            offer,
            self.relay,
            lambda: self.players.pop(session_id, None),
            user_id,
            per_user=self.settings.whep_max_per_user,
            connect_within=self.settings.webrtc_connect_timeout,
        )
        self.players[session_id] = peer
        return peer.answer

    # -- control -------------------------------------------------------------------------

    async def set_restreams(self, destinations: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """Forward to exactly these ``(id, url)`` destinations (the API calls this after a
        change); their views."""
        self.stream.set_restreams([Destination(i, check_url(u)) for i, u in destinations])
        return [r.view() for r in self.stream.restreams.values()]

    async def view(self) -> dict[str, Any]:
        return self.stream.view()

    async def stop(self) -> dict[str, Any]:
        """End the stream now: playlists end, the recording becomes a replay."""
        for peer in [*self.publishers.values(), *self.players.values()]:
            await peer.close()
        await asyncio.to_thread(self.stream.stop)
        return self.stream.view()

    # -- the room ------------------------------------------------------------------------

    def _on_view(self, view: dict[str, Any]) -> None:
        """Called on the encoder thread."""
        self.loop.call_soon_threadsafe(self._set_view, view)

    def _set_view(self, view: dict[str, Any]) -> None:
        before = set((self._view.get("health") or {}).get("alerts") or ())
        raised = set((view.get("health") or {}).get("alerts") or ()) - before
        if raised:
            log.warning("stream of room %s: %s", self.room_id, ", ".join(sorted(raised)))
        self._view = view
        self._view_due.set()
        self.metrics.record(view)

    async def _push_loop(self) -> None:
        while True:
            await self._view_due.wait()
            self._view_due.clear()
            view = self._view
            try:
                await self._push(view)
            except Exception:
                log.exception("transcoder of room %s could not reach the room", self.room_id)
            if view.get("status") == "ended":
                await asyncio.to_thread(self.stream.join, 30)
                self._exit()
                return

    async def _push(self, view: dict[str, Any]) -> None:
        if self._room is None:
            assert self.settings.database_url
            pool = await connect_retrying(
                self.settings.database_url, max_size=1, who=f"transcoder {self.room_id}"
            )
            self._room = RoomClient(self.settings, RoomStore(pool))
        for _ in range(2):
            try:
                # The room is live while its stream is: the push activates it if need be.
                await self._room.call(self.room_id, "stream", view)
                return
            except LiveshopError as exc:
                log.info("room %s did not take the stream view: %r", self.room_id, exc)

    def _exit(self) -> None:
        """The stream ended: leave for good (a restart would only idle), freeing the name
        so the next go-live starts a fresh actor and stream."""
        with contextlib.suppress(Exception):
            ray.kill(ray.get_runtime_context().current_actor, no_restart=True)
