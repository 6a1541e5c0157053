"""WebRTC in and out of a transcoder with aiortc: WHIP publishing and WHEP playback.

WHIP (a browser camera, or any WHIP client): the offer's video and audio tracks are
decoded by aiortc and their frames go straight into a :class:`TrackSource`, the same path
an RTMP publisher's frames take after decoding. WHEP (co-hosts, small rooms): every
subscriber gets a video and an audio track fed from a :class:`FrameRelay`, which holds the
picture the stream shows right now (the primary, the backup or the slate), scaled once for
all subscribers, and the sound the ladder encodes; aiortc encodes both per subscriber, so
WHEP is for tens of viewers, HLS for the rest.

Signalling is one HTTP exchange each way (no trickle ICE): the answer carries every
candidate, which aiortc gathers before it returns from ``setLocalDescription``. A session
whose ICE and DTLS have not connected ``connect_within`` seconds after its answer is closed
(an offer nobody completes holds no slot), and one user holds at most ``per_user`` WHEP
sessions of a stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import av
import httpx
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.video.reformatter import VideoReformatter

from liveshop.errors import BadStream, RateLimited
from liveshop.media.ladder import even
from liveshop.media.sources import TrackSource
from liveshop.media.transcoder import AUDIO_RATE

log = logging.getLogger(__name__)

#: An SDP offer is a few KiB; anything near this is not one.
MAX_SDP_BYTES = 64 * 1024
VIDEO_CLOCK = 90_000
#: Seconds a session has to connect (ICE and DTLS) after its answer
#: (``Settings.webrtc_connect_timeout``).
CONNECT_TIMEOUT = 10.0
#: WHEP sessions one user may hold in one stream (``Settings.whep_max_per_user``).
PER_USER = 2


def check_offer(sdp: str) -> str:
    if len(sdp) > MAX_SDP_BYTES or not sdp.startswith("v=0"):
        raise BadStream("the body must be an SDP offer (application/sdp)")
    if "m=video" not in sdp and "m=audio" not in sdp:
        raise BadStream("the offer has no audio or video")
    return sdp


async def _answer(pc: RTCPeerConnection, offer: str) -> str:
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=check_offer(offer), type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
    except BadStream:
        raise
    except (ValueError, AttributeError, KeyError, IndexError) as exc:
        raise BadStream(f"the SDP offer could not be used: {exc}") from exc
    description = pc.localDescription
    assert description is not None
    return str(description.sdp)


@dataclass
class Peer:
    """One WHIP or WHEP session. When its connection fails or closes (or the owner closes
    it), it releases what it held and runs ``on_closed``, once; aiortc does not close a
    failed connection by itself, so this does. Nor does it give up on a connection that
    never starts (a client that took the answer and went away): one that is not connected
    ``connect_within`` seconds after the answer is closed too."""

    pc: RTCPeerConnection
    on_closed: Callable[[], object] = field(default=lambda: None)
    answer: str = ""
    _releases: list[Callable[[], object]] = field(default_factory=list)
    _closed: bool = False
    _expiry: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        @self.pc.on("connectionstatechange")
        async def _state() -> None:
            if self.pc.connectionState in ("failed", "closed"):
                await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for release in self._releases:
            release()
        self.on_closed()
        await self.pc.close()

    async def negotiate(self, offer: str, connect_within: float | None = CONNECT_TIMEOUT) -> Peer:
        try:
            self.answer = await _answer(self.pc, offer)
        except BaseException:
            await self.close()
            raise
        if connect_within is not None:
            deadline = asyncio.get_running_loop().call_later(connect_within, self._expire)
            self._releases.append(deadline.cancel)
        return self

    def _expire(self) -> None:
        if not self._closed and self.pc.connectionState != "connected":
            log.info("a WebRTC session did not connect in time (%s)", self.pc.connectionState)
            self._expiry = asyncio.ensure_future(self.close())


#: How often a WHIP session's received byte count goes to the stream's health.
BYTES_INTERVAL = 0.5


async def publish(
    offer: str,
    source: TrackSource,
    on_closed: Callable[[], None],
    *,
    connect_within: float | None = CONNECT_TIMEOUT,
) -> Peer:
    """Answer a WHIP offer; frames flow into ``source`` until the peer goes away, and the
    bytes the connection receives into its health (the input bitrate)."""
    peer = Peer(RTCPeerConnection(), on_closed)

    @peer.pc.on("track")
    def _track(track: MediaStreamTrack) -> None:
        pump = asyncio.ensure_future(_pump(track, source))
        peer._releases.append(pump.cancel)

    counter = asyncio.ensure_future(_count_bytes(peer.pc, source))
    peer._releases.append(counter.cancel)
    return await peer.negotiate(offer, connect_within)


async def _count_bytes(pc: RTCPeerConnection, source: TrackSource) -> None:
    """Feed the transport's bytes received (media, RTCP and DTLS: what the publisher
    sends, as RTMP's input counts FLV bytes) to ``source`` every ``BYTES_INTERVAL``."""
    while True:
        await asyncio.sleep(BYTES_INTERVAL)
        report = await pc.getStats()
        total = sum(
            int(getattr(stats, "bytesReceived", 0) or 0)
            for stats in report.values()
            if getattr(stats, "type", None) == "transport"
        )
        source.received(total)


async def _pump(track: MediaStreamTrack, source: TrackSource) -> None:
    with contextlib.suppress(MediaStreamError):
        while True:
            frame = await track.recv()
            if isinstance(frame, av.VideoFrame | av.AudioFrame):
                source.receive(frame)


class FrameRelay:
    """The picture and sound on air, for WHEP subscribers. The encoder thread offers every
    frame it shows and every piece of sound it encodes; subscribers await the newest
    picture (a slow one skips pictures, it never queues them) and take the sound in order
    (up to ``AUDIO_QUEUE`` pieces, about a second, then the oldest is dropped)."""

    AUDIO_QUEUE = 50

    def __init__(self, loop: asyncio.AbstractEventLoop, max_height: int = 480) -> None:
        self.loop = loop
        self.max_height = max_height
        #: WHEP sessions (the cap counts these; a video-only one has no audio listener),
        #: and how many of them each user holds.
        self.subscribers = 0
        self.by_user: Counter[str] = Counter()
        self._frame: av.VideoFrame | None = None
        self._serial = 0
        self._next: asyncio.Future[None] = loop.create_future()
        self._listeners: set[asyncio.Queue[av.AudioFrame]] = set()
        # Opus in aiortc takes 16-bit samples; converted once for every subscriber.
        self._to_s16 = av.AudioResampler(format="s16", layout="stereo", rate=AUDIO_RATE)
        self._scaler = VideoReformatter()

    def join(self, user_id: str, per_user: int) -> Callable[[], None]:
        """Count a WHEP session of ``user_id``'s, or refuse it (``rate_limited``) while they
        hold ``per_user`` here; returns what ends it (once, however often it is called)."""
        if self.by_user[user_id] >= per_user:
            raise RateLimited(
                f"you already watch this stream over WebRTC {per_user} times: end a session "
                "(DELETE its Location) or play the HLS stream",
                details={"limit": per_user},
            )
        self.subscribers += 1
        self.by_user[user_id] += 1
        left = False

        def leave() -> None:
            nonlocal left
            if not left:
                left = True
                self.subscribers -= 1
                self.by_user[user_id] -= 1
                if self.by_user[user_id] <= 0:
                    del self.by_user[user_id]

        return leave

    def offer(self, rungs: list[av.VideoFrame]) -> None:
        """The picture on air at every rung (encoder thread): the largest rung that fits
        ``max_height`` is shared as it is; costs nothing without subscribers."""
        if not self.subscribers:
            return
        fitting = [f for f in rungs if f.height <= self.max_height]
        if fitting:
            picture = max(fitting, key=lambda f: f.height)
        else:  # a ladder with nothing small enough: scale its smallest rung down
            small = min(rungs, key=lambda f: f.height)
            width = even(small.width * self.max_height / small.height)
            picture = self._scaler.reformat(
                small, width=width, height=self.max_height, format="yuv420p"
            )
        self.loop.call_soon_threadsafe(self._publish, picture)

    def _publish(self, frame: av.VideoFrame) -> None:
        self._frame = frame
        self._serial += 1
        waiting, self._next = self._next, self.loop.create_future()
        waiting.set_result(None)

    async def next(self, after: int) -> tuple[int, av.VideoFrame]:
        while self._serial <= after or self._frame is None:
            await asyncio.shield(self._next)
        return self._serial, self._frame

    def offer_audio(self, frame: av.AudioFrame) -> None:
        """Called on the encoder thread with the ladder's sound (48 kHz stereo)."""
        if not self._listeners:
            return
        for converted in self._to_s16.resample(frame):
            self.loop.call_soon_threadsafe(self._hear, converted)

    def _hear(self, frame: av.AudioFrame) -> None:
        for listener in self._listeners:
            if listener.full():
                listener.get_nowait()  # a slow subscriber loses its oldest sound
            listener.put_nowait(frame)

    def listen(self) -> asyncio.Queue[av.AudioFrame]:
        listener: asyncio.Queue[av.AudioFrame] = asyncio.Queue(maxsize=self.AUDIO_QUEUE)
        self._listeners.add(listener)
        return listener

    def unlisten(self, listener: asyncio.Queue[av.AudioFrame]) -> None:
        self._listeners.discard(listener)


class RelayTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, relay: FrameRelay) -> None:
        super().__init__()
        self.relay = relay
        self._serial = 0
        self._start = time.monotonic()

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        self._serial, shown = await self.relay.next(self._serial)
        # A frame object per subscriber: aiortc's encoders write to the frame they encode
        # (pict_type, to force keyframes), so subscribers must not share one.
        frame = av.VideoFrame.from_ndarray(shown.to_ndarray(), format="yuv420p")
        frame.pts = int((time.monotonic() - self._start) * VIDEO_CLOCK)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame


class RelayAudioTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, relay: FrameRelay) -> None:
        super().__init__()
        self.relay = relay
        self.listener = relay.listen()
        self._samples = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        heard = await self.listener.get()
        # Per subscriber: its own sample clock (pts), on a frame of its own.
        frame = av.AudioFrame.from_ndarray(heard.to_ndarray(), format="s16", layout="stereo")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._samples += frame.samples
        return frame

    def stop(self) -> None:
        self.relay.unlisten(self.listener)
        super().stop()


async def play(
    offer: str,
    relay: FrameRelay,
    on_closed: Callable[[], object],
    user_id: str,
    *,
    per_user: int = PER_USER,
    connect_within: float | None = CONNECT_TIMEOUT,
) -> Peer:
    """Answer ``user_id``'s WHEP offer with the relay's picture, and its sound if the offer
    asks for audio (a track of a kind the offer lacks would fail the answer);
    ``rate_limited`` while the user holds ``per_user`` sessions of this stream."""
    leave = relay.join(user_id, per_user)
    try:
        peer = Peer(RTCPeerConnection(), on_closed, _releases=[leave])
        for kind, make in (("video", RelayTrack), ("audio", RelayAudioTrack)):
            if f"m={kind}" in offer:
                track = make(relay)
                peer._releases.append(track.stop)
                peer.pc.addTrack(track)
    except BaseException:
        leave()  # the session never started: its slot is the user's again (leave is once)
        raise
    return await peer.negotiate(offer, connect_within)


async def exchange(
    http: httpx.AsyncClient, pc: RTCPeerConnection, url: str, token: str
) -> httpx.Response:
    """The client side of WHIP and WHEP: post ``pc``'s offer, and on ``201`` take the answer
    (the probes and tests use it; a browser does the same in JavaScript)."""
    await pc.setLocalDescription(await pc.createOffer())
    description = pc.localDescription
    assert description is not None
    response = await http.post(
        url,
        content=description.sdp,
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
    )
    if response.status_code == 201:
        await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
    return response
