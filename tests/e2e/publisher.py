"""Synthetic publishers for media tests: an RTMP publisher written with PyAV, paced in real
time, that can pause (a stalled encoder), send audio only, or send garbage video."""

from __future__ import annotations

import asyncio
import threading
import time
from fractions import Fraction

import av
import httpx
import numpy as np
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack, VideoStreamTrack

from liveshop.media.stamp import picture
from liveshop.media.webrtc import exchange


class RtmpPublisher:
    """Publishes on a thread until ``stop()``; ``pause()`` keeps the connection open but sends
    nothing (an encoder that hangs)."""

    def __init__(
        self,
        url: str,
        *,
        width: int = 640,
        height: int = 360,
        fps: int = 30,
        audio: bool = True,
        video: bool = True,
        corrupt: bool = False,
        seconds: float | None = None,
    ) -> None:
        self.url, self.width, self.height, self.fps = url, width, height, fps
        self.audio, self.video, self.corrupt, self.seconds = audio, video, corrupt, seconds
        self.frames = 0
        self.error: BaseException | None = None
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> RtmpPublisher:
        self._thread.start()
        return self

    def pause(self) -> None:
        self._paused.set()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self._publish()
        except BaseException as exc:  # the test reads it
            self.error = exc
        finally:
            self.connected.set()

    def _publish(self) -> None:
        # PyAV connects (RTMP handshake and publish) when the header is written, at the
        # first mux: ``connected`` is set once a frame went out, or when it failed.
        out = av.open(self.url, "w", format="flv")
        try:
            video = None
            if self.video:
                video = out.add_stream(
                    "libx264", rate=self.fps,
                    options={"preset": "ultrafast", "tune": "zerolatency", "g": str(self.fps)},
                )  # fmt: skip
                video.width, video.height, video.pix_fmt = self.width, self.height, "yuv420p"
            sound = out.add_stream("aac", rate=48000) if self.audio else None
            if sound is not None:
                sound.layout = "stereo"
            started = time.monotonic()
            samples = 0
            while not self._stop.is_set():
                if self.seconds is not None and time.monotonic() - started > self.seconds:
                    break
                if self._paused.is_set():
                    time.sleep(0.05)
                    continue
                at = self.frames / self.fps
                if video is not None:
                    frame = picture(self.width, self.height, self.frames)
                    frame.pts, frame.time_base = self.frames, Fraction(1, self.fps)
                    for packet in video.encode(frame):
                        if self.corrupt:
                            packet = _garbage(packet)
                        out.mux(packet)
                while sound is not None and samples < (at + 1 / self.fps) * 48000:
                    tone = av.AudioFrame.from_ndarray(
                        np.zeros((2, 1024), dtype=np.float32), format="fltp", layout="stereo"
                    )
                    tone.sample_rate, tone.pts = 48000, samples
                    samples += 1024
                    out.mux(sound.encode(tone))
                self.frames += 1
                self.connected.set()
                delay = started + self.frames / self.fps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        finally:
            out.close()


def _garbage(packet: av.Packet) -> av.Packet:
    rng = np.random.default_rng(len(bytes(packet)))
    noise = av.Packet(rng.integers(0, 256, max(64, packet.size), dtype=np.uint8).tobytes())
    noise.pts, noise.dts, noise.stream = packet.pts, packet.dts, packet.stream
    noise.time_base = packet.time_base
    noise.is_keyframe = packet.is_keyframe
    return noise


class PatternTrack(VideoStreamTrack):  # type: ignore[misc]
    """A synthetic camera for aiortc: stamped pictures (frame numbers) at 30 fps."""

    def __init__(self, width: int = 640, height: int = 360) -> None:
        super().__init__()
        self.width, self.height, self.sent = width, height, 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = picture(self.width, self.height, self.sent)
        frame.pts, frame.time_base = pts, time_base
        self.sent += 1
        return frame


async def whip_publish(
    http: httpx.AsyncClient, url: str, token: str, *tracks: MediaStreamTrack
) -> tuple[RTCPeerConnection, httpx.Response]:
    """Publish ``tracks`` to a WHIP endpoint; the connection and the endpoint's answer."""
    pc = RTCPeerConnection()
    for track in tracks:
        pc.addTransceiver(track, direction="sendonly")
    response = await exchange(http, pc, url, token)
    return pc, response


async def whep_play(
    http: httpx.AsyncClient, url: str, token: str, *, audio: bool = True
) -> tuple[RTCPeerConnection, httpx.Response, dict[str, asyncio.Future[MediaStreamTrack]]]:
    """Subscribe to a WHEP endpoint; the connection, the answer and the tracks to come
    (``video`` and ``audio``)."""
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    if audio:
        pc.addTransceiver("audio", direction="recvonly")
    loop = asyncio.get_running_loop()
    tracks: dict[str, asyncio.Future[MediaStreamTrack]] = {
        "video": loop.create_future(),
        "audio": loop.create_future(),
    }
    pc.on("track", lambda t: tracks[t.kind].done() or tracks[t.kind].set_result(t))
    response = await exchange(http, pc, url, token)
    return pc, response, tracks
