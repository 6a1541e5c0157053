"""Where a live stream's decoded frames come from: an RTMP publisher's FLV bytes decoded on
a thread of their own, or a WebRTC track whose frames aiortc has already decoded.

Every source keeps a short queue of frames for the encoder and drops the oldest when it is
full, so a slow encoder costs dropped frames (counted in the stream's health), never memory
or latency, and a standby source (the backup, while the primary is fine) always holds its
newest frames, ready to take over.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import av

from liveshop.media import health

log = logging.getLogger(__name__)

T = TypeVar("T")

#: A publisher writing faster than the decoder reads, beyond this, is cut off.
MAX_BUFFERED_BYTES = 32 * 1024 * 1024


def put_latest(q: queue.Queue[T], item: T) -> int:
    """Queue ``item``, dropping the oldest items to make room; how many were dropped.
    Live media wants the newest frames, never a growing backlog."""
    dropped = 0
    while True:
        try:
            q.put_nowait(item)
            return dropped
        except queue.Full:
            with contextlib.suppress(queue.Empty):
                q.get_nowait()
                dropped += 1


def keep_newest(q: queue.Queue[T], n: int) -> None:
    """Drop all but the newest ``n`` items (a standby source, a restream that fell behind)."""
    with contextlib.suppress(queue.Empty):
        while q.qsize() > n:
            q.get_nowait()


class BytePipe:
    """A blocking byte stream from the actor's event loop to a decoder thread, read by
    FFmpeg as a file (PyAV calls ``read``)."""

    def __init__(self, limit: int = MAX_BUFFERED_BYTES) -> None:
        self._buffer = bytearray()
        self._cond = threading.Condition()
        self._closed = False
        self._limit = limit

    def write(self, data: bytes) -> bool:
        """False (and nothing written) when the reader is that far behind."""
        with self._cond:
            if self._closed or len(self._buffer) + len(data) > self._limit:
                return False
            self._buffer += data
            self._cond.notify()
            return True

    def read(self, n: int = -1) -> bytes:
        with self._cond:
            while not self._buffer and not self._closed:
                self._cond.wait()
            size = len(self._buffer) if n < 0 else min(n, len(self._buffer))
            out = bytes(self._buffer[:size])
            del self._buffer[:size]
            return out

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


Frame = av.VideoFrame | av.AudioFrame
#: What the encoder takes from a source: a picture with its copies at every rung's size
#: (when the source's thread made them), or a piece of sound.
Item = tuple[av.VideoFrame, list[av.VideoFrame] | None] | av.AudioFrame
Scaler = Callable[[av.VideoFrame], list[av.VideoFrame]]


class Source:
    """One ingest attached to a stream slot (primary or backup)."""

    #: Three seconds at 30 fps: enough for the burst a decoder delivers after probing the
    #: stream while the encoder starts up, without holding more than that in memory.
    QUEUE_FRAMES = 90

    def __init__(self, slot: str, ingest_id: str, *, queue_frames: int = QUEUE_FRAMES) -> None:
        self.slot = slot
        self.ingest_id = ingest_id
        self.attached_at = time.monotonic()
        self.last_data_at = self.attached_at
        self.last_frame_at: float | None = None
        self.frames: queue.Queue[Item] = queue.Queue(maxsize=queue_frames)
        #: Set by the stream while this source is on air: its decoder thread then scales
        #: every picture for the ladder, beside the encoder rather than before it.
        self.scaler: Scaler | None = None
        self.meter = health.HealthMeter()
        self.has_audio = False
        #: The source's frame rate as it declares it; browsers and encoders mostly send 30.
        self.fps = 30.0
        self.failed = False
        self.closed = False
        self.overflowed = 0

    def push(self, frame: Frame, scaled: list[av.VideoFrame] | None = None) -> None:
        item: Item
        if isinstance(frame, av.VideoFrame):
            item = (frame, scaled)
            now = time.monotonic()
            self.last_frame_at = now
            if self.failed and self.meter.source_error == health.UNDECODABLE:
                self.failed = False  # pictures again: it may go back on air
                self.meter.source_error, self.meter.source_error_detail = None, ""
            self.meter.source_frame(now, keyframe=frame.key_frame, media_time=frame.time)
        else:
            item = frame
            self.has_audio = True
        self.overflowed += put_latest(self.frames, item)

    def check(self, now: float, stall_after: float) -> None:
        """Data keeps arriving but no picture comes out of it (garbage, an unsupported
        codec): the decoder drops it silently, so say so here."""
        last_picture = self.last_frame_at if self.last_frame_at is not None else self.attached_at
        flowing = now - self.last_data_at < stall_after
        if not self.failed and flowing and now - last_picture > 2 * stall_after:
            self.fail(health.UNDECODABLE, "receiving data, but no picture decodes from it")

    def fail(self, code: str, detail: str) -> None:
        self.failed = True
        self.meter.source_error = code
        self.meter.source_error_detail = detail
        log.warning("source %s/%s failed: %s", self.slot, self.ingest_id, detail)

    def close(self) -> None:
        self.closed = True


class FlvSource(Source):
    """An RTMP publisher: FLV tags in, decoded frames out, on a decoder thread."""

    def __init__(self, slot: str, ingest_id: str) -> None:
        super().__init__(slot, ingest_id)
        self.pipe = BytePipe()
        self._thread = threading.Thread(target=self._decode, name=f"decode-{slot}", daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> bool:
        self.last_data_at = time.monotonic()
        self.meter.input_bytes(len(data), self.last_data_at)
        return self.pipe.write(data)

    def _decode(self) -> None:
        try:
            # Small probe: the publisher's metadata and first packets name the codecs;
            # waiting seconds to analyse them would add that much to the latency.
            container = av.open(
                self.pipe, mode="r", format="flv",
                options={"probesize": "65536", "analyzeduration": "500000"},
            )  # fmt: skip
        except (av.FFmpegError, OSError, ValueError) as exc:
            if not self.closed:
                self.fail(health.UNDECODABLE, f"input is not a decodable FLV stream: {exc}")
            return
        with container:
            if not container.streams.video:
                self.fail(health.NO_VIDEO, "the stream has no video track (audio only?)")
                return
            video = container.streams.video[0]
            rate = video.average_rate or video.guessed_rate
            if rate and 1 <= float(rate) <= 120:
                self.fps = float(rate)
            streams = [video, *container.streams.audio[:1]]
            errors = 0
            while not self.closed:
                try:
                    for packet in container.demux(*streams):
                        for frame in packet.decode():
                            if isinstance(frame, av.VideoFrame):
                                scaler = self.scaler
                                self.push(frame, scaler(frame) if scaler else None)
                            elif isinstance(frame, av.AudioFrame):
                                self.push(frame)
                    return  # end of input
                except av.FFmpegError as exc:
                    # One bad packet is skipped; a stream of them is not video.
                    errors += 1
                    if errors > 50:
                        self.fail(health.UNDECODABLE, f"input could not be decoded: {exc}")
                        return

    def close(self) -> None:
        super().close()
        self.pipe.close()


class TrackSource(Source):
    """A WebRTC publisher: aiortc decodes, the actor's event loop pushes frames here."""

    def __init__(self, slot: str, ingest_id: str) -> None:
        super().__init__(slot, ingest_id)
        self._received = 0

    def receive(self, frame: Frame) -> None:
        self.last_data_at = time.monotonic()
        self.push(frame)

    def received(self, total_bytes: int) -> None:
        """The peer connection's bytes received so far (a counter that only grows): the
        new ones count as input, as an RTMP publisher's FLV bytes do. aiortc hands over
        decoded frames only, so without this a WHIP publisher showed 0 kbps."""
        now = time.monotonic()
        if total_bytes > self._received:
            self.meter.input_bytes(total_bytes - self._received, now)
        self._received = max(self._received, total_bytes)
