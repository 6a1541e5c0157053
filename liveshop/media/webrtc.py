"""WebRTC in and out of a transcoder with aiortc: WHIP publishing and WHEP playback.

WHIP (a browser camera, or any WHIP client): the offer's video and audio tracks are
decoded by aiortc and their frames go straight into a :class:`TrackSource`, the same path
an RTMP publisher's frames take after decoding. WHEP (co-hosts, small rooms): every
subscriber gets a video and an audio track fed from a :class:`FrameRelay`, which holds the
picture the stream shows right now (the primary, the backup or the slate), scaled once for
all subscribers, and the sound the ladder encodes; aiortc encodes both per subscriber, so
WHEP is for tens of viewers, HLS for the rest.

Signalling is one HTTP exchange each way (no trickle ICE): the answer carries every
candidate, which aiortc gathers before it returns from ``setLocalDescription``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import av
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from liveshop.errors import BadStream
from liveshop.media.sources import TrackSource
from liveshop.media.transcoder import AUDIO_RATE

log = logging.getLogger(__name__)

#: An SDP offer is a few KiB; anything near this is not one.
MAX_SDP_BYTES = 64 * 1024
VIDEO_CLOCK = 90_000


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
    """One WHIP or WHEP session: its connection, the answer sent, and what to release."""

    pc: RTCPeerConnection
    answer: str = ""
    release: Callable[[], None] = field(default=lambda: None)

    async def close(self) -> None:
        self.release()
        await self.pc.close()


async def publish(offer: str, source: TrackSource, on_closed: Callable[[], None]) -> Peer:
    """Answer a WHIP offer; frames flow into ``source`` until the peer goes away."""
    pc = RTCPeerConnection()
    pumps: list[asyncio.Task[None]] = []

    @pc.on("track")
    def _track(track: MediaStreamTrack) -> None:
        pumps.append(asyncio.ensure_future(_pump(track, source)))

    @pc.on("connectionstatechange")
    async def _state() -> None:
        if pc.connectionState in ("failed", "closed"):
            for pump in pumps:
                pump.cancel()
            on_closed()

    peer = Peer(pc)
    try:
        peer.answer = await _answer(pc, offer)
    except BaseException:
        await pc.close()
        raise
    return peer


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
        self.subscribers = 0
        self._frame: av.VideoFrame | None = None
        self._serial = 0
        self._changed = asyncio.Condition()
        self._listeners: set[asyncio.Queue[av.AudioFrame]] = set()
        # Opus in aiortc takes 16-bit samples; converted once for every subscriber.
        self._to_s16 = av.AudioResampler(format="s16", layout="stereo", rate=AUDIO_RATE)

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

    def offer(self, frame: av.VideoFrame) -> None:
        """Called on the encoder thread; costs nothing without subscribers."""
        if not self.subscribers:
            return
        height = min(self.max_height, frame.height)
        width = max(2, round(frame.width * height / frame.height / 2) * 2)
        scaled = frame.reformat(width=width, height=height, format="yuv420p")
        self.loop.call_soon_threadsafe(self._publish, scaled)

    def _publish(self, frame: av.VideoFrame) -> None:
        self._frame = frame
        self._serial += 1

        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        self.loop.create_task(notify())

    async def next(self, after: int) -> tuple[int, av.VideoFrame]:
        async with self._changed:
            await self._changed.wait_for(lambda: self._serial > after)
            assert self._frame is not None
            return self._serial, self._frame


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
        # A new frame object per subscriber: aiortc stamps it with this track's clock.
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


async def play(offer: str, relay: FrameRelay) -> Peer:
    """Answer a WHEP offer with the relay's picture."""
    pc = RTCPeerConnection()
    track, sound = RelayTrack(relay), RelayAudioTrack(relay)
    relay.subscribers += 1
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            relay.subscribers -= 1
            track.stop()
            sound.stop()

    @pc.on("connectionstatechange")
    async def _state() -> None:
        if pc.connectionState in ("failed", "closed"):
            release()

    if "m=video" in offer:
        pc.addTrack(track)
    if "m=audio" in offer:
        pc.addTrack(sound)  # an extra, unmatched transceiver would fail the answer
    peer = Peer(pc, release=release)
    try:
        peer.answer = await _answer(pc, offer)
    except BaseException:
        await peer.close()
        raise
    return peer
