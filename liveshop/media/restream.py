"""Restreaming: the show forwarded to other platforms' RTMP ingests (a marketplace's own
live page, a social network), each destination on its own thread with its own health.

A destination gets the top rendition encoded, remuxed from its finished MPEG-TS segments
into FLV (no second encode), so it costs a socket, not a core, and lags the live edge by
about one segment. When that rendition changes (the top rung shed or restored), the
destination starts a new connection: an FLV stream carries one picture size. A destination
that fails (refused key, network, the platform hanging up) is retried with backoff from 1 s
up to 30 s, and restarts at the newest segment so it never falls behind; its state,
restarts and last error are part of the stream's view.
"""

from __future__ import annotations

import io
import logging
import queue
import re
import threading
from dataclasses import dataclass
from typing import Any

import av

from liveshop import clock
from liveshop.errors import InvalidRequest
from liveshop.media.sources import keep_newest, put_latest

log = logging.getLogger(__name__)

#: Segments waiting for a destination; older ones are dropped (it restarts at the newest).
BACKLOG = 4
MAX_BACKOFF = 30.0
CONNECT_TIMEOUT = 10.0

_URL = re.compile(r"^rtmps?://[A-Za-z0-9.-]+(:\d{1,5})?/[^\s]{1,1000}$")


def check_url(url: str) -> str:
    if not _URL.match(url):
        raise InvalidRequest("a restream destination is an rtmp:// or rtmps:// URL with a path")
    return url


def masked(url: str) -> str:
    """The URL without its last path part: that is the platform's stream key."""
    head, _, _ = url.rpartition("/")
    return f"{head}/***"


@dataclass(frozen=True)
class Destination:
    destination_id: str
    url: str


class Restream:
    def __init__(self, destination: Destination) -> None:
        self.destination = destination
        self.state = "connecting"
        self.restarts = 0
        self.last_error: str | None = None
        self.segments_sent = 0
        self.since = clock.now()
        self._segments: queue.Queue[tuple[bytes, str]] = queue.Queue(maxsize=BACKLOG)
        #: A segment of another rendition, held for the next connection.
        self._held: tuple[bytes, str] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"restream-{destination.destination_id}", daemon=True
        )
        self._thread.start()

    def offer(self, segment: bytes, rendition: str = "") -> None:
        """A finished segment of the top rendition (called on the encoder thread)."""
        put_latest(self._segments, (segment, rendition))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=CONNECT_TIMEOUT + 5)
        self.state = "stopped"

    def view(self) -> dict[str, Any]:
        return {
            "id": self.destination.destination_id,
            "url": masked(self.destination.url),
            "state": self.state,
            "since": self.since,
            "segments_sent": self.segments_sent,
            "restarts": self.restarts,
            "last_error": self.last_error,
        }

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state, self.since = state, clock.now()

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                self._forward()
                backoff = 1.0
            except (av.FFmpegError, OSError, ValueError) as exc:
                self.restarts += 1
                self.last_error = str(exc)[:300]
                self._set("retrying")
                log.info(
                    "restream %s failed (%s); retry in %.0f s", self.view()["url"], exc, backoff
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                # Start again live: what piled up meanwhile is stale.
                keep_newest(self._segments, 1)

    def _next(self) -> tuple[bytes, str] | None:
        if self._held is not None:
            held, self._held = self._held, None
            return held
        while not self._stop.is_set():
            try:
                return self._segments.get(timeout=0.5)
            except queue.Empty:
                continue
        return None

    def _forward(self) -> None:
        """One connection: until stopped or the destination fails."""
        item = self._next()
        if item is None:
            return
        segment, rendition = item
        self._set("connecting")
        out = av.open(self.destination.url, "w", format="flv", timeout=CONNECT_TIMEOUT)
        try:
            streams: dict[int, Any] = {}
            offset: int | None = None
            last = -1
            current: bytes | None = segment
            while current is not None:
                with av.open(io.BytesIO(current), "r", format="mpegts") as source:
                    if not streams:
                        for stream in (*source.streams.video[:1], *source.streams.audio[:1]):
                            streams[stream.index] = out.add_stream_from_template(stream)
                    for packet in source.demux(*[source.streams[i] for i in streams]):
                        if packet.dts is None or packet.stream.index not in streams:
                            continue
                        # Timestamps from zero, and never backwards (a transcoder restart
                        # starts its clock again): shift them past the last one sent.
                        if offset is None or packet.dts + offset < last - 90_000:
                            offset = last + 1 - packet.dts
                        packet.dts += offset
                        if packet.pts is not None:
                            packet.pts += offset
                        last = max(last, packet.dts)
                        packet.stream = streams[packet.stream.index]
                        out.mux(packet)
                self.segments_sent += 1
                self._set("live")
                item = self._next()
                if item is not None and item[1] != rendition:
                    self._held = item  # another picture size: a new connection
                    return
                current = item[0] if item is not None else None
        finally:
            out.close()
