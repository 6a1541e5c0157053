"""One live stream: its sources, the ladder encoder, failover, slate, thumbnails, recording,
health, and the state a restarted transcoder continues from.

The encoder runs on one thread of its own; sources decode on theirs; the owner (the
transcoder actor) calls ``attach``/``feed``/``detach`` from its event loop. Output:

    live/<room>/<stream>/master.m3u8            the live ladder (sliding window)
    live/<room>/<stream>/<rung>/index.m3u8      each rendition's live playlist
    live/<room>/<stream>/replay.m3u8            the recording: every segment, VOD once ended
                                                (the rungs recorded from the start)
    live/<room>/<stream>/<rung>/vod.m3u8        each rendition's recording (a restart reads
                                                its playlists back from these)
    live/<room>/<stream>/thumbs/000001.jpg      a thumbnail every few seconds
    live/<room>/<stream>/state.json             the stream's id, renditions, incarnation,
                                                the source picture its ladder is for
    live/<room>/current.json                    the room's current stream
"""

from __future__ import annotations

import json
import logging
import queue
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from liveshop.errors import InvalidRequest, StreamInUse
from liveshop.media import failover, health
from liveshop.media.failover import SLATE
from liveshop.media.hls import MediaPlaylist
from liveshop.media.ladder import DEFAULT_LADDER, Budget, Rung, even
from liveshop.media.restream import Destination, Restream
from liveshop.media.segments import SegmentStore
from liveshop.media.shedding import LoadMeter, Shedder
from liveshop.media.sources import FlvSource, Item, Source, TrackSource, keep_newest
from liveshop.media.transcoder import LadderEncoder

log = logging.getLogger(__name__)

#: A publisher silent this long no longer holds its slot: a reconnecting encoder (OBS after
#: a network drop) may take it over while the dead connection lingers.
SLOT_TAKEOVER_AFTER = 5.0


def media_name(room_id: str) -> str:
    """A room id as one store path part, injectively (room ids may hold ':')."""
    return re.sub(r"[^A-Za-z0-9.-]", lambda m: f"_{ord(m.group()):02x}", room_id)


def new_stream_id(now: float) -> str:
    return f"s{int(now * 1000):x}{secrets.token_hex(2)}"


@dataclass(frozen=True)
class LiveOptions:
    segment_seconds: float = 1.0
    window: int = 6
    preset: str = "veryfast"
    stall_after: float = 2.0
    #: With no source attached for this long, the stream ends (ENDLIST, recording final).
    idle_end: float = 60.0
    thumbnail_interval: float = 5.0
    thumbnail_width: int = 320
    view_interval: float = 1.0
    rungs: tuple[Rung, ...] = DEFAULT_LADDER
    #: What encoding costs on this node and what one stream may use: the ladder is sized
    #: to it when the stream starts (None: every rung the source allows).
    budget: Budget | None = None
    #: Shed the top rung after the encoder was behind this long; restore one after there
    #: was room for it this long (doubling after a premature restore).
    shed_after: float = 3.0
    restore_after: float = 30.0


def jpeg(frame: av.VideoFrame, width: int) -> bytes:
    height = even(frame.height * width / frame.width)
    small = frame.reformat(width=width, height=height, format="yuvj420p")
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuvj420p"
    codec.time_base = Fraction(1, 25)
    small.pts = 0
    return b"".join(bytes(p) for p in [*codec.encode(small), *codec.encode(None)])


def slate_frame(width: int, height: int) -> av.VideoFrame:
    """ "Be right back": dark bars a viewer can tell from a frozen picture."""
    image = np.full((height, width, 3), 24, dtype=np.uint8)
    bar = max(2, height // 12)
    for i, colour in enumerate(((200, 40, 60), (230, 180, 40), (40, 160, 220))):
        top = height // 2 - 2 * bar + i * bar * 3 // 2
        image[top : top + bar, width // 4 : 3 * width // 4] = colour
    return av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")


def _picture(saved: object) -> tuple[int, int, float] | None:
    """The source picture ``state.json`` says the ladder was built for, if it says so (a
    stream started before it was saved there builds its ladder from the first frame)."""
    if not isinstance(saved, list) or len(saved) != 3:
        return None
    width, height, fps = saved
    if not all(isinstance(v, int | float) and v > 0 for v in saved):
        return None
    return int(width), int(height), float(fps)


class LiveStream:
    def __init__(
        self,
        room_id: str,
        *,
        store: SegmentStore,
        work: Path,
        options: LiveOptions,
        on_view: Callable[[dict[str, Any]], None] = lambda view: None,
        on_frame: Callable[[list[av.VideoFrame]], None] = lambda rungs: None,
        on_audio: Callable[[av.AudioFrame], None] = lambda frame: None,
        on_crash: Callable[[BaseException], None] = lambda exc: None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.room_id = room_id
        self.store = store
        self.options = options
        self.on_view = on_view
        self.on_frame = on_frame
        self.on_audio = on_audio
        self.on_crash = on_crash
        self.wall = wall
        self.room_path = f"live/{media_name(room_id)}"
        self._lock = threading.Lock()
        self.sources: dict[str, Source] = {}
        self.active = SLATE
        self.encoder: LadderEncoder | None = None
        self.ended = False
        self._stop = threading.Event()
        self._slate: tuple[av.VideoFrame, list[av.VideoFrame]] | None = None
        self._idle_since: float | None = time.monotonic()
        self._last_view = 0.0
        self._next_thumb = 0.0
        self._next_slate = 0.0
        self._closing = False
        self.failovers = 0
        self.restreams: dict[str, Restream] = {}
        #: The encoder's load, and what it decides about the rungs (once it encodes).
        self.load = LoadMeter()
        self.shedder: Shedder | None = None
        #: The source picture (width, height, fps) the ladder was built for.
        self.picture: tuple[int, int, float] | None = None
        self._resume()
        self.work = work / media_name(room_id) / self.stream_id / secrets.token_hex(4)
        if self.picture is not None:
            # Back after a restart: on the slate at once, with the ladder it had, so its
            # playlists go on (and the view names them) while no publisher is back yet.
            # WHIP sessions died with the actor; an RTMP publisher may never return.
            self._start_encoder(*self.picture)
            self._next_slate = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="transcoder", daemon=True)
        self._thread.start()

    # -- state ---------------------------------------------------------------------------

    def _resume(self) -> None:
        """Continue the room's stream after a restart (a discontinuity in every playlist),
        or start a new one if the last one ended. The playlists come back from the
        recordings (``vod.m3u8``): the live window is their tail."""
        current = self._read_json(f"{self.room_path}/current.json")
        state = None
        if current and not current.get("ended"):
            state = self._read_json(f"{self.room_path}/{current['stream_id']}/state.json")
        self.playlists: dict[str, MediaPlaylist] = {}
        self.recordings: dict[str, MediaPlaylist] = {}
        if state and not state.get("ended"):
            self.stream_id = state["stream_id"]
            self.started_at = state["started_at"]
            self.prefix = f"{self.room_path}/{self.stream_id}"
            for name in state.get("renditions") or ():
                raw = self.store.get(f"{self.prefix}/{name}/vod.m3u8")
                if raw is None:
                    continue
                recording = MediaPlaylist.parse(raw.decode())
                self.recordings[name] = recording
                self.playlists[name] = recording.tail(self.options.window)
            for playlist in (*self.playlists.values(), *self.recordings.values()):
                playlist.restart()
            self.thumbnails = int(state.get("thumbnails", 0))
            self.picture = _picture(state.get("picture"))
            self.incarnation = int(state.get("incarnation", 0)) + 1
            log.info("stream %s of room %s resumes", self.stream_id, self.room_id)
        else:
            self.started_at = self.wall()
            self.stream_id = new_stream_id(self.started_at)
            self.prefix = f"{self.room_path}/{self.stream_id}"
            self.thumbnails = 0
            self.incarnation = 0
        self._save_state()
        self._save_current()

    def _read_json(self, name: str) -> dict[str, Any] | None:
        raw = self.store.get(name)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            log.warning("ignoring unreadable %s", name)
            return None
        return value if isinstance(value, dict) else None

    def _save_current(self) -> None:
        current = {"stream_id": self.stream_id, "ended": self.ended}
        self.store.put(f"{self.room_path}/current.json", json.dumps(current).encode())

    def _save_state(self) -> None:
        state = {
            "stream_id": self.stream_id,
            "started_at": self.started_at,
            "incarnation": self.incarnation,
            "ended": self.ended,
            "thumbnails": self.thumbnails,
            "renditions": sorted(self.recordings),
            "picture": list(self.picture) if self.picture is not None else None,
        }
        self.store.put(f"{self.prefix}/state.json", json.dumps(state).encode())

    # -- sources (called from the owner's event loop) ------------------------------------

    def attach(self, slot: str, ingest_id: str, *, track: bool = False) -> Source:
        """Give ``slot`` to a publisher; refused while another one holds it and is alive."""
        if slot not in failover.SLOTS:
            raise InvalidRequest(f"unknown slot {slot!r} (primary or backup)")
        with self._lock:
            held = self.sources.get(slot)
            if held is not None and held.ingest_id != ingest_id:
                if time.monotonic() - held.last_data_at < SLOT_TAKEOVER_AFTER:
                    raise StreamInUse(f"another publisher is live on the {slot} key")
                held.close()
            if held is not None and held.ingest_id == ingest_id:
                held.close()  # the same publisher starting over (resync)
            source: Source = TrackSource(slot, ingest_id) if track else FlvSource(slot, ingest_id)
            self.sources[slot] = source
            self._idle_since = None
            self._assign_scalers()
            return source

    def source_of(self, ingest_id: str) -> Source | None:
        for source in self.sources.values():
            if source.ingest_id == ingest_id:
                return source
        return None

    def detach(self, ingest_id: str) -> None:
        with self._lock:
            for slot, source in list(self.sources.items()):
                if source.ingest_id == ingest_id:
                    source.close()
                    del self.sources[slot]
            if not self.sources:
                self._idle_since = time.monotonic()

    def set_restreams(self, destinations: list[Destination]) -> None:
        """Forward the show to exactly these destinations (start new ones, stop removed or
        changed ones); called from the owner's event loop, so stops run in a thread."""
        wanted = {d.destination_id: d for d in destinations}
        with self._lock:
            for key, running in list(self.restreams.items()):
                if wanted.get(key) != running.destination:
                    del self.restreams[key]
                    threading.Thread(target=running.stop, daemon=True).start()
            for key, destination in wanted.items():
                if key not in self.restreams and not self._closing:
                    self.restreams[key] = Restream(destination)

    def _segment(self, rendition: str, data: bytes) -> None:
        """A finished segment (encoder thread): the top rendition encoded goes to the
        restreams (the next one down while the top is shed)."""
        if self.encoder is not None and rendition == self.encoder.top:
            for restream in list(self.restreams.values()):
                restream.offer(data, rendition)

    def stop(self) -> None:
        """End the stream now (the host ended the show)."""
        self._stop.set()
        self._thread.join(timeout=30)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # -- the encoder thread --------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._step()
                if self._idle_too_long():
                    break
            self._finish()
        except Exception as exc:
            # A stream whose encoder died must not look alive: the owner restarts it (the
            # actor exits and Ray starts it again, continuing after a discontinuity).
            log.exception("transcoder of room %s failed", self.room_id)
            self.on_crash(exc)

    def _idle_too_long(self) -> bool:
        idle = self._idle_since
        return idle is not None and time.monotonic() - idle > self.options.idle_end

    def _step(self) -> None:
        now = time.monotonic()
        sources = dict(self.sources)
        for each in sources.values():
            each.check(now, self.options.stall_after)
        choice = failover.choose(sources, now, self.options.stall_after)
        if choice != self.active:
            self._switch(choice)
        for slot, each in sources.items():
            if slot != choice:
                keep_newest(each.frames, 2)  # a standby keeps only its newest frames
        if choice == SLATE:
            self._slate_step()
        else:
            source = self.sources.get(choice)
            if source is not None:
                try:
                    item = source.frames.get(timeout=0.05)
                except queue.Empty:
                    pass
                else:
                    self._encode(item, source)
        if now - self._last_view >= self.options.view_interval:
            self._last_view = now
            self.on_view(self.view())

    def _switch(self, choice: str) -> None:
        log.info("room %s: %s -> %s", self.room_id, self.active, choice)
        if self.active != SLATE and choice != failover.PRIMARY:
            self.failovers += 1  # the source on air was lost (not a return to the primary)
        self.active = choice
        self._assign_scalers()
        if self.encoder is not None:
            self.encoder.rebase()
        source = self.sources.get(choice)
        if source is not None:
            source.meter.source_reset()
        self._next_slate = time.monotonic()
        self.on_view(self.view())

    def _assign_scalers(self) -> None:
        """The RTMP source on air scales for the ladder on its decoder's thread, beside
        the encoder; a standby does not spend the time."""
        scale = self.encoder.scale if self.encoder is not None else None
        for slot, source in list(self.sources.items()):
            if isinstance(source, FlvSource):
                source.scaler = scale if slot == self.active else None

    def _ensure_encoder(self, frame: av.VideoFrame, fps: float) -> LadderEncoder:
        """The ladder is fixed by the first frame ever shown (a restart keeps the same
        renditions, built for the picture saved in ``state.json``); later sources are
        scaled to it."""
        if self.encoder is None:
            return self._start_encoder(frame.width, frame.height, fps)
        return self.encoder

    def _start_encoder(self, width: int, height: int, fps: float) -> LadderEncoder:
        options, budget = self.options, self.options.budget
        encoder = LadderEncoder(
            width=width,
            height=height,
            fps=fps,
            store=self.store,
            prefix=self.prefix,
            work=self.work,
            now=self.wall,
            segment_seconds=options.segment_seconds,
            audio=True,
            preset=options.preset,
            playlists=self.playlists,
            recordings=self.recordings,
            record=True,
            window=options.window,
            on_segment=self._segment,
            on_audio=self.on_audio,
            rungs=options.rungs,
            budget=budget,
        )
        self.encoder, self.picture = encoder, (width, height, fps)
        self.playlists, self.recordings = encoder.playlists, encoder.recordings
        costs = [
            budget.cost.rung(r, (width, height)) if budget else r.width * r.height
            for r in encoder.renditions
        ]
        self.shedder = Shedder(
            costs, shed_after=options.shed_after, restore_after=options.restore_after
        )
        slate = slate_frame(width, height)
        self._slate = (slate, encoder.scale(slate))  # scaled once, shown for hours
        self._save_state()
        self._assign_scalers()
        return encoder

    def _encode(self, item: Item, source: Source) -> None:
        if isinstance(item, av.AudioFrame):
            if self.encoder is not None:
                self.encoder.audio(item)
            return
        frame, scaled = item
        started = time.perf_counter()
        encoder = self._ensure_encoder(frame, source.fps)
        before = encoder.media_time
        rungs = scaled or encoder.scale(frame)  # a WebRTC source's frames are scaled here
        encoder.video(frame, scaled=rungs)
        if not source.has_audio:
            encoder.pad_audio()
        self._after_frame(frame, rungs, encoder, before, started, source)

    def _slate_step(self) -> None:
        if self.encoder is None or self._slate is None:
            time.sleep(0.05)  # nothing was ever shown: there is no picture to hold
            return
        period = 1 / self.encoder.fps
        wait = self._next_slate - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, 0.05))
            return
        self._next_slate += period
        started = time.perf_counter()
        before = self.encoder.media_time
        slate, rungs = self._slate
        self.encoder.video(slate, at=self._next_slate, scaled=rungs)
        self.encoder.pad_audio()
        self._after_frame(slate, rungs, self.encoder, before, started, None)

    def _after_frame(
        self,
        frame: av.VideoFrame,
        rungs: list[av.VideoFrame],
        encoder: LadderEncoder,
        before: float,
        started: float,
        source: Source | None,
    ) -> None:
        busy = time.perf_counter() - started
        self.on_frame(rungs)
        now = time.monotonic()
        meter = source.meter if source is not None else None
        if meter is not None:
            meter.encoded(now, encoder.media_time - before, busy)
            if source is not None and source.overflowed:
                meter.dropped(now, source.overflowed)
                source.overflowed = 0
        self.load.add(now, busy)
        self._shed_or_restore(now, encoder)
        if encoder.media_time >= self._next_thumb:
            self._next_thumb = encoder.media_time + self.options.thumbnail_interval
            self.thumbnails += 1
            name = f"{self.prefix}/thumbs/{self.thumbnails:06d}.jpg"
            self.store.put(name, jpeg(frame, self.options.thumbnail_width))
            self._save_state()

    def _shed_or_restore(self, now: float, encoder: LadderEncoder) -> None:
        """Ask the shedder about the load of the ladder encoded now; carry out a change."""
        if self.shedder is None:
            return
        shed = self.shedder.step(now, self.load.load(encoder.fps))
        if shed is None:
            return
        log.warning(
            "room %s: encoder load %s, %s rung(s) shed now",
            self.room_id, self.load.load(encoder.fps), shed,
        )  # fmt: skip
        encoder.set_shed(shed)
        self.load.reset()  # what was measured was another ladder's load
        self._save_state()  # the recorded rungs changed
        self.on_view(self.view())

    def _finish(self) -> None:
        with self._lock:
            for source in self.sources.values():
                source.close()
            self.sources.clear()
        if self.encoder is not None:
            self.encoder.close()
            self.encoder.end()
        with self._lock:
            self._closing = True  # no restream starts after this
            restreams, self.restreams = list(self.restreams.values()), {}
        for restream in restreams:
            restream.stop()  # after the last segment went out
        self.ended = True
        self._save_state()
        self._save_current()
        shutil.rmtree(self.work, ignore_errors=True)
        self.on_view(self.view())

    # -- what the room and the host see --------------------------------------------------

    def view(self) -> dict[str, Any]:
        source = self.sources.get(self.active)
        now = time.monotonic()
        if source is not None:
            report = source.meter.report(now, source=self.active)
        else:
            report = health.slate_report([s.meter for s in list(self.sources.values())])
        encoder = self.encoder
        report = health.with_ladder(
            report,
            shed=encoder.shed_names if encoder is not None else [],
            load=self.load.load(encoder.fps) if encoder is not None else None,
        )
        base = f"/media/{self.prefix}"
        return {
            "stream_id": self.stream_id,
            "status": "ended" if self.ended else ("live" if self.active != SLATE else "slate"),
            "started_at": self.started_at,
            "source": self.active,
            "sources": sorted(self.sources),
            "failovers": self.failovers,
            "incarnation": self.incarnation,
            "hls": f"{base}/master.m3u8" if self.encoder is not None else None,
            "replay": f"{base}/replay.m3u8" if self.encoder is not None else None,
            "thumbnail": (f"{base}/thumbs/{self.thumbnails:06d}.jpg" if self.thumbnails else None),
            # Encoded now, top first; ``health.shed``: the rungs shed from the top.
            "renditions": [r.name for r in encoder.active] if encoder is not None else [],
            "health": report,
            "restreams": [r.view() for r in list(self.restreams.values())],
        }
