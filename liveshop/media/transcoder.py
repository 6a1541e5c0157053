"""The ladder encoder: decode once, scale to every rendition, encode H.264 and AAC with
aligned keyframes, cut MPEG-TS segments, publish them to the segment store with their HLS
playlists; and shed the top rungs while the machine cannot keep up.

Frames go onto one output grid (``media/grid.py``): a keyframe opens every segment at the
same instant on every rendition, whatever frames the source lost, so every segment is one
segment long and the target duration never changes. Each rendition writes through FFmpeg's
segment muxer (which cuts at those keyframes and starts every segment with its own PAT/PMT)
into a private work directory; a finished segment is moved into the store first and only
then listed in the playlist, so a playlist never names a segment a player cannot fetch.
Segment numbers continue from ``first_sequence`` after a restart, and the playlist marks
the join with a discontinuity.

Shedding a rung closes its encoder, drops it from the master playlist, removes its live
playlist (players on it get 404 and switch to a rung still listed) and ends its recording,
which the replay then leaves out. A rung restored opens a new encoder at the next segment
boundary with a fresh live playlist numbered like its siblings, and is listed again once
that playlist holds three target durations.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.frame import PictureType
from av.video.reformatter import VideoReformatter

from liveshop.media.grid import Grid
from liveshop.media.hls import AAC_LC, MediaPlaylist, avc1_codec, master_playlist
from liveshop.media.ladder import (
    DEFAULT_LADDER,
    Budget,
    EncodeCost,
    Rendition,
    Rung,
    fit_ladder,
    ladder_for,
    target_duration,
)
from liveshop.media.segments import SegmentStore

log = logging.getLogger(__name__)

AUDIO_RATE = 48_000


def _x264(rendition: Rendition, preset: str) -> av.VideoCodecContext:
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = rendition.width, rendition.height, "yuv420p"
    rate = Fraction(rendition.fps).limit_denominator(1001)
    codec.framerate, codec.time_base = rate, 1 / rate
    codec.options = rendition.x264_options(preset)
    return codec


@functools.lru_cache(maxsize=64)
def video_codec(rendition: Rendition, preset: str) -> str:
    """The RFC 6381 codec libx264 writes for ``rendition`` at ``preset`` (profile and level
    depend on the size, rate, bitrate and preset: 720p30 is level 3.1, 360p 3.0, 1080p 4.0;
    ultrafast is Baseline, the others High): one black frame encoded with the very options
    the rung uses, its SPS read back. A few milliseconds, once per rung."""
    codec = _x264(rendition, preset)
    black = np.zeros((rendition.height * 3 // 2, rendition.width), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(black, format="yuv420p")
    frame.pts = 0
    for packet in [*codec.encode(frame), *codec.encode(None)]:
        found = avc1_codec(bytes(packet))
        if found:
            return found
    raise RuntimeError(f"libx264 wrote no sequence parameter set for {rendition.name}")


def codecs_of(rendition: Rendition, preset: str, *, audio: bool) -> str:
    video = video_codec(rendition, preset)
    return f"{video},{AAC_LC}" if audio else video


def measure_cost(preset: str, *, frames: int = 24) -> EncodeCost:
    """What encoding, scaling and decoding cost on this machine, in CPU seconds (all
    threads of this process): ``frames`` of a test pattern encoded at 360p and 720p with
    ``preset`` (two sizes give the cost per frame and per pixel), the 720p ones scaled to
    360p and decoded. About a third of a second of CPU; CPU time rather than wall time, so a
    busy neighbour inflates it less."""
    spent: dict[int, float] = {}
    pictures: dict[int, list[av.VideoFrame]] = {}
    packets: list[Any] = []
    for height, width in ((360, 640), (720, 1280)):
        rung = Rendition(f"{height}p", width, height, 2800 * height // 720, 128, 30.0, 30)
        with av.open(f"testsrc2=size={width}x{height}:rate=30", format="lavfi") as source:
            pictures[height] = []
            for picture in source.decode(video=0):
                pictures[height].append(picture.reformat(format="yuv420p"))
                if len(pictures[height]) == frames:
                    break
        codec = _x264(rung, preset)
        started = time.process_time()
        out = []
        for i, picture in enumerate(pictures[height]):
            picture.pts = i
            out += codec.encode(picture)
        out += codec.encode(None)
        spent[height] = (time.process_time() - started) / frames
        packets = out
    decoder = av.CodecContext.create("h264", "r")
    started = time.process_time()
    for packet in packets:
        decoder.decode(packet)
    decoded = (time.process_time() - started) / frames
    scaler = VideoReformatter()
    started = time.process_time()
    for picture in pictures[720]:
        scaler.reformat(picture, width=640, height=360, format="yuv420p")
    scaled = (time.process_time() - started) / frames
    small, large = 640 * 360 / 1e6, 1280 * 720 / 1e6
    per_megapixel = max(0.0, (spent[720] - spent[360]) / (large - small))
    return EncodeCost(
        per_frame=max(1e-4, spent[360] - per_megapixel * small),
        per_megapixel=per_megapixel,
        decode_per_megapixel=decoded / large,
        scale_per_megapixel=scaled / (large + small),
    )


class RenditionOutput:
    def __init__(
        self,
        rendition: Rendition,
        *,
        work: Path,
        store: SegmentStore,
        prefix: str,
        audio: bool,
        started_at: float,
        playlist: MediaPlaylist,
        preset: str,
        recording: MediaPlaylist | None = None,
        on_segment: Callable[[str, bytes], None] | None = None,
        listed: bool = True,
        first_segment: int = 0,
    ) -> None:
        self.rendition = rendition
        #: The grid segment (counted from the encoder's start) its first segment is.
        self.segment = first_segment
        self.store = store
        self.prefix = f"{prefix}/{rendition.name}"
        self.playlist = playlist
        self.recording = recording
        self.on_segment = on_segment
        self.started_at = started_at
        #: Its live playlist is in the store (and it may be in the master playlist). A rung
        #: restored mid-stream waits until its playlist holds three target durations.
        self.listed = listed
        #: The last picture encoded: held at a segment boundary the source skipped.
        self.last: av.VideoFrame | None = None
        self._video_started = False
        self.dir = work / rendition.name / f"{playlist.next_sequence:06d}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._list = self.dir / "segments.csv"
        self._listed = 0  # bytes of the muxer's segment list already published
        self._scaler = VideoReformatter()  # one per rung: its scaling context is reused
        self.container = av.open(
            str(self.dir / "seg%06d.ts"),
            "w",
            format="segment",
            options={
                # Below one segment: the muxer then cuts at every keyframe, and keyframes
                # come only at segment boundaries (the grid forces them there).
                "segment_time": f"{(rendition.gop - 0.5) / rendition.fps:.6f}",
                "segment_format": "mpegts",
                "segment_list": str(self._list),
                "segment_list_type": "csv",
                "segment_list_flags": "live",
                "segment_start_number": str(playlist.next_sequence),
                "reset_timestamps": "0",
                # Every timestamp a second later: the sound's priming (1024 samples before
                # the first) is then never negative, so no muxer shifts an output's clock,
                # and a rung restored mid-stream has the same timestamps as its siblings.
                "output_ts_offset": "1",
            },
        )
        rate = Fraction(rendition.fps).limit_denominator(1001)
        self.video_stream = self.container.add_stream(
            "libx264", rate=rate, options=rendition.x264_options(preset)
        )
        self.video_stream.width = rendition.width
        self.video_stream.height = rendition.height
        self.video_stream.pix_fmt = "yuv420p"
        self._time_base = Fraction(1) / self.video_stream.codec_context.framerate
        self.audio_stream = None
        if audio:
            self.audio_stream = self.container.add_stream("aac", rate=AUDIO_RATE)
            self.audio_stream.bit_rate = rendition.audio_kbps * 1000
            self.audio_stream.layout = "stereo"

    def video(self, frame: av.VideoFrame, index: int, keyframe: bool) -> int:
        """Encode ``frame`` (scaled here unless it already has this rung's size) as output
        frame ``index``, a keyframe or not; the number of segments this finished."""
        r = self.rendition
        if (frame.width, frame.height, frame.format.name) != (r.width, r.height, "yuv420p"):
            frame = self._scaler.reformat(frame, width=r.width, height=r.height, format="yuv420p")
        frame.pts = index
        frame.time_base = self._time_base
        # Always set: a decoded source frame keeps its own type, and libx264 turns an I
        # into a keyframe, which would cut a segment off the grid.
        frame.pict_type = PictureType.I if keyframe else PictureType.NONE
        self.last = frame
        self._video_started = True
        self.container.mux(self.video_stream.encode(frame))
        return self._publish()

    def audio(self, frame: av.AudioFrame) -> None:
        # Sound before the first picture would open a segment with no keyframe in it.
        if self.audio_stream is not None and self._video_started:
            self.container.mux(self.audio_stream.encode(frame))

    def close(self, *, partial: bool = True) -> None:
        """Flush and close; the last, partial segment is listed unless ``partial`` is
        False (a shed rung: what its siblings go on with would not match it)."""
        self.container.mux(self.video_stream.encode(None))
        if self.audio_stream is not None:
            self.container.mux(self.audio_stream.encode(None))
        self.container.close()
        self._publish(final=True, partial=partial)

    def end(self) -> None:
        """The stream is over: players stop at the last segment, the recording is a VOD."""
        self.playlist.end()
        if self.recording is not None:
            self.recording.end()
        self.listed = True
        self.write_playlists()

    def _publish(self, *, final: bool = False, partial: bool = True) -> int:
        """Move each segment the muxer finished into the store, then list it; the number
        of new segments. Called per frame, so it reads only what the muxer appended to its
        segment list (a stat when nothing did): the list grows for the whole stream.

        Every segment but the last of an encoder spans one grid period exactly (it runs
        from one forced keyframe to the next), and is listed with that duration and the
        time its grid slot starts; the muxer's own times can be off by the sound packed
        with it, and an encoder's first segment says it starts at 0."""
        try:
            size = self._list.stat().st_size
        except FileNotFoundError:
            return 0
        if size == self._listed:
            return 0
        with self._list.open("rb") as listing:
            listing.seek(self._listed)
            tail = listing.read(size - self._listed)
        complete = tail[: tail.rfind(b"\n") + 1]  # a line being written waits for the next call
        self._listed += len(complete)
        lines = complete.decode().splitlines()
        period = self.rendition.period
        for n, line in enumerate(lines):
            name, start, end = line.rsplit(",", 2)
            path = self.dir / name
            last = final and n == len(lines) - 1  # cut short by the end
            if last and not partial:
                path.unlink(missing_ok=True)
                break
            data = path.read_bytes()
            self.store.put(f"{self.prefix}/{name}", data)
            path.unlink(missing_ok=True)
            if self.on_segment is not None:
                self.on_segment(self.rendition.name, data)
            duration = period
            if last:
                duration = min(period, max(float(end) - float(start), 1 / self.rendition.fps))
            at = self.started_at + self.segment * period
            self.segment += 1
            self.playlist.add_segment(name, duration, at)
            if self.recording is not None:
                self.recording.add_segment(name, duration, at)
        if lines:
            self.write_playlists()
        return len(lines)

    def write_playlists(self) -> None:
        if not self.listed and self.playlist.duration >= 3 * self.playlist.target_duration:
            self.listed = True
        if self.listed:
            self.store.put(f"{self.prefix}/index.m3u8", self.playlist.render().encode())
        if self.recording is not None:
            self.store.put(f"{self.prefix}/vod.m3u8", self.recording.render().encode())


class LadderEncoder:
    """Feed it decoded frames; it keeps the HLS output of every rendition current.

    ``budget`` (the machine's encode cost and what a stream may use) drops the top rungs
    it cannot sustain before anything starts; ``set_shed`` stops and restarts rungs
    while it runs."""

    def __init__(
        self,
        *,
        width: int,
        height: int,
        fps: float,
        store: SegmentStore,
        prefix: str,
        work: Path,
        now: Callable[[], float],
        segment_seconds: float = 2.0,
        audio: bool = True,
        preset: str = "veryfast",
        playlists: dict[str, MediaPlaylist] | None = None,
        recordings: dict[str, MediaPlaylist] | None = None,
        record: bool = False,
        window: int = 6,
        on_segment: Callable[[str, bytes], None] | None = None,
        on_audio: Callable[[av.AudioFrame], None] | None = None,
        rungs: Sequence[Rung] = DEFAULT_LADDER,
        budget: Budget | None = None,
    ) -> None:
        renditions = ladder_for(width, height, fps, segment_seconds=segment_seconds, rungs=rungs)
        if budget is not None:
            renditions = fit_ladder(renditions, budget, source=(width, height))
        self.renditions = renditions
        self.fps = fps
        self.store, self.prefix, self.work = store, prefix, work
        self.preset, self.window, self.with_audio = preset, window, audio
        self.on_segment = on_segment
        self.on_audio = on_audio
        self.target = target_duration(segment_seconds)
        self.codecs = {r.name: codecs_of(r, preset, audio=audio) for r in renditions}
        self.grid = Grid(renditions[0].gop)
        # Playlists a restarted stream continues are given; a rung without one (the source
        # came back at another size, or the rung was shed) starts its own, numbered like
        # the others: the same sequence and discontinuity number for the same moment.
        given, kept = playlists or {}, recordings or {}
        self._sequence0 = max((p.next_sequence for p in given.values()), default=0)
        self._discontinuity = max((p.next_discontinuity for p in given.values()), default=0)
        self.playlists = {
            r.name: given.get(r.name) or self._playlist(self._sequence0, window) for r in renditions
        }
        #: With ``record``: every segment of every rung recorded from the stream's start,
        #: the replay (EVENT, then VOD). A rung that joins later is not recorded: a
        #: recording with a hole would not line up with the others.
        self.recordings: dict[str, MediaPlaylist] = {}
        for r in renditions if record else ():
            if r.name in kept:
                self.recordings[r.name] = kept[r.name]
            elif not kept:
                self.recordings[r.name] = self._playlist(self._sequence0, None, "EVENT")
        for name, orphan in kept.items():  # this ladder does not continue it: it ends here
            if name not in self.recordings:
                orphan.end()
                store.put(f"{prefix}/{name}/vod.m3u8", orphan.render().encode())
        self.record = record
        self.started_at = now()
        # A rung that starts a playlist mid-stream (after a restart) is listed once that
        # holds three target durations, like a restored one.
        self.outputs: list[RenditionOutput | None] = [
            self._open(
                r, self.recordings.get(r.name),
                listed=r.name in given or self.playlists[r.name].next_sequence == 0,
            )
            for r in renditions
        ]  # fmt: skip
        #: Top rungs not encoded now; a restore waits for the next segment boundary.
        self.shed = 0
        self._restore_to: int | None = None
        #: Sound in the format of ``_audio_in`` (sample format, layout, rate) -> the
        #: encoders'; a new one for sound in another format (see ``audio``).
        self.resampler: av.AudioResampler | None = None
        self._audio_in: tuple[str, str, int] | None = None
        self._first: float | None = None
        self._base = 0
        self._audio_samples = 0
        self.frames = 0
        self.segments = 0
        self._scalers = threading.local()  # scale() may run on more than one thread
        self._master: list[str] = []
        self._replay: list[str] = []
        for out in self.outputs:  # a player that reads the master finds every playlist
            if out is not None:
                out.write_playlists()
        self._write_masters()

    def _playlist(
        self, sequence: int, window: int | None, playlist_type: str | None = None
    ) -> MediaPlaylist:
        return MediaPlaylist(
            self.target, window, playlist_type, next_sequence=sequence,
            discontinuity_sequence=self._discontinuity,
        )  # fmt: skip

    def _open(
        self,
        rendition: Rendition,
        recording: MediaPlaylist | None,
        *,
        listed: bool,
        first_segment: int = 0,
    ) -> RenditionOutput:
        return RenditionOutput(
            rendition, work=self.work, store=self.store, prefix=self.prefix, audio=self.with_audio,
            started_at=self.started_at, playlist=self.playlists[rendition.name],
            preset=self.preset, recording=recording, on_segment=self.on_segment,
            listed=listed, first_segment=first_segment,
        )  # fmt: skip

    # -- what is on offer -----------------------------------------------------------------

    @property
    def active(self) -> list[Rendition]:
        """The renditions encoded now, top first."""
        return [r for r, out in zip(self.renditions, self.outputs, strict=True) if out]

    @property
    def shed_names(self) -> list[str]:
        return [r.name for r, out in zip(self.renditions, self.outputs, strict=True) if not out]

    @property
    def top(self) -> str:
        return self.active[0].name

    def _write_masters(self) -> None:
        """The master playlist lists the rungs a player can play now; the replay, the rungs
        recorded from the start. Each is rewritten only when that changes."""
        listed = [
            r for r, out in zip(self.renditions, self.outputs, strict=True) if out and out.listed
        ]
        if [r.name for r in listed] != self._master:
            self._master = [r.name for r in listed]
            text = master_playlist(listed, codecs=self.codecs)
            self.store.put(f"{self.prefix}/master.m3u8", text.encode())
        recorded = [r for r in self.renditions if r.name in self.recordings]
        if self.record and [r.name for r in recorded] != self._replay:
            self._replay = [r.name for r in recorded]
            replay = master_playlist(recorded, codecs=self.codecs, uri="{name}/vod.m3u8")
            self.store.put(f"{self.prefix}/replay.m3u8", replay.encode())

    def set_shed(self, shed: int) -> None:
        """Encode all but the top ``shed`` rungs (the lowest always stays). Shedding is at
        once; a restore starts at the next segment boundary, so its segments line up."""
        shed = max(0, min(shed, len(self.renditions) - 1))
        if shed > self.shed:
            retired = self.outputs[self.shed : shed]
            self.outputs[self.shed : shed] = [None] * (shed - self.shed)
            self.shed, self._restore_to = shed, None
            self._write_masters()  # unlisted first: new players do not pick them
            for out in retired:
                if out is not None:
                    self._retire(out)
        elif shed < self.shed:
            self._restore_to = shed

    def _retire(self, out: RenditionOutput) -> None:
        out.close(partial=False)
        name = out.rendition.name
        log.warning("%s: rung %s shed (the encoder cannot keep up)", self.prefix, name)
        self.store.delete(f"{self.prefix}/{name}/index.m3u8")  # players on it move down
        recording = self.recordings.pop(name, None)
        if recording is not None:
            recording.end()
            self.store.put(f"{self.prefix}/{name}/vod.m3u8", recording.render().encode())

    def _restore(self, index: int) -> None:
        """Open the rungs being restored at boundary ``index``, numbered like the others."""
        assert self._restore_to is not None
        segment = self.grid.segment_of(index)
        for i in range(self._restore_to, self.shed):
            rendition = self.renditions[i]
            self.playlists[rendition.name] = self._playlist(self._sequence0 + segment, self.window)
            self.outputs[i] = self._open(rendition, None, listed=False, first_segment=segment)
            log.info("%s: rung %s restored", self.prefix, rendition.name)
        self.shed, self._restore_to = self._restore_to, None

    # -- frames ---------------------------------------------------------------------------

    @property
    def media_time(self) -> float:
        """Seconds of video encoded so far (the output clock)."""
        return (self.grid.last + 1) / self.fps

    def rebase(self) -> None:
        """The next frame comes from another source (failover, slate): it follows the last
        frame on the output clock instead of jumping by the difference in source times, so
        the encoders keep running and players see one continuous stream. The sound the
        resampler still holds is the old source's: it goes out first, and the new source
        gets a resampler of its own."""
        self._flush_audio()
        self._first = None
        self._base = self.grid.last + 1

    def scale(self, frame: av.VideoFrame) -> list[av.VideoFrame]:
        """The frame at every rung's size, with a scaler per rung reused (a new scaling
        context per frame cost twice the time). Thread-safe: the decoder's thread calls it,
        so scaling runs beside the encoding instead of before it (measured on 2 cores: the
        720p ladder from 2.3x to 3.6x real time, 1.1 of the ffmpeg command line). A shed
        rung gets the frame as it is (not scaled: nothing encodes it)."""
        scalers: list[VideoReformatter] | None = getattr(self._scalers, "rungs", None)
        if scalers is None:
            scalers = self._scalers.rungs = [VideoReformatter() for _ in self.renditions]
        return [
            scaler.reformat(frame, width=r.width, height=r.height, format="yuv420p")
            if out is not None
            else frame
            for scaler, r, out in zip(scalers, self.renditions, list(self.outputs), strict=True)
        ]

    def video(
        self,
        frame: av.VideoFrame,
        at: float | None = None,
        scaled: list[av.VideoFrame] | None = None,
    ) -> None:
        """A decoded source frame (with its ``scale``d copies, if another thread made
        them); frames are placed on the output's frame grid by their time (``at``, else
        the frame's own), so a source running fast or with gaps does not shift the clock.

        The rungs are encoded one after the other in this thread. Encoding them in a thread
        each (PyAV drops the GIL while encoding) deadlocked at 720p under PyAV 18 (every
        thread waiting on a futex in the first segment); decoding and scaling are what
        runs in parallel."""
        if at is None:
            at = frame.time if frame.time is not None else self.frames / self.fps
        if self._first is None:
            self._first = at
        slots = self.grid.place(self._base + round((at - self._first) * self.fps))
        if not slots:
            return  # two source frames for one output slot: keep the first
        self.frames += 1
        published = self.segments
        for slot in slots:
            if slot.keyframe and self._restore_to is not None:
                self._restore(slot.index)
            for i, out in enumerate(self.outputs):
                if out is None:
                    continue
                picture = scaled[i] if scaled else frame
                if slot.held and out.last is not None:
                    picture = out.last
                self.segments += out.video(picture, slot.index, slot.keyframe)
        if self.segments != published:
            self._write_masters()  # a restored rung is listed once it has enough segments

    def audio(self, frame: av.AudioFrame) -> None:
        """A decoded source frame of any rate, layout and sample format, converted to the
        encoders' (48 kHz stereo ``fltp``). A resampler takes one input format for good: it
        configures itself from its first frame and refuses any other (``Frame does not
        match AudioResampler setup``), and one whose first frame already matched passes
        every later frame through untouched, to fail in each AAC encoder instead. Sources
        differ (aiortc's Opus decodes to ``s16``, FLV's AAC to ``fltp`` at the
        publisher's rate), a failover or takeover switches between them mid-stream, and a
        publisher may change its own; so a frame in another format gets a new resampler,
        after the old one's buffered tail went out."""
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self.resampler is None or key != self._audio_in:
            self._flush_audio()
            self.resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
            self._audio_in = key
        for resampled in self.resampler.resample(frame):
            self._audio_out(resampled)

    def _flush_audio(self) -> None:
        if self.resampler is not None:
            for resampled in self.resampler.resample(None):
                self._audio_out(resampled)
            self.resampler, self._audio_in = None, None

    def pad_audio(self) -> None:
        """Silence up to the video clock, for a source without sound (or the slate):
        every rendition keeps an audio track, so players never see it come and go."""
        target = int(self.media_time * AUDIO_RATE)
        while self._audio_samples + 1024 <= target:
            silence = av.AudioFrame(format="fltp", layout="stereo", samples=1024)
            for plane in silence.planes:
                plane.update(bytes(plane.buffer_size))
            silence.sample_rate = AUDIO_RATE
            self._audio_out(silence)

    def _audio_out(self, frame: av.AudioFrame) -> None:
        # Audio runs on its own sample clock, never behind the video after a rebase.
        self._audio_samples = max(
            self._audio_samples, int(self._base / self.fps * AUDIO_RATE) - AUDIO_RATE
        )
        frame.pts = self._audio_samples
        frame.time_base = Fraction(1, AUDIO_RATE)
        self._audio_samples += frame.samples
        for out in self.outputs:
            if out is not None:
                out.audio(frame)
        if self.on_audio is not None:
            self.on_audio(frame)

    def close(self) -> None:
        self._flush_audio()
        for out in self.outputs:
            if out is not None:
                out.close()

    def end(self) -> None:
        for out in self.outputs:
            if out is not None:
                out.end()
        self._write_masters()


def transcode_file(source: Path, **options: object) -> LadderEncoder:
    """Run a whole file through the ladder (tests, benchmarks, replays): decoded and
    scaled on one thread, encoded on this one, as a live stream is."""
    frames: queue.Queue[Any] = queue.Queue(maxsize=64)
    ladder: queue.Queue[LadderEncoder | None] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def decode() -> None:
        try:
            with av.open(str(source)) as container:
                video = container.streams.video[0]
                rate = float(video.average_rate or video.guessed_rate or 30)
                frames.put((video.codec_context.width, video.codec_context.height, rate,
                            bool(container.streams.audio)))  # fmt: skip
                encoder = ladder.get()
                if encoder is None:
                    return  # the ladder could not be built; the error is raised there
                for frame in container.decode(video, *container.streams.audio[:1]):
                    if stop.is_set():
                        return
                    if isinstance(frame, av.VideoFrame):
                        frames.put((frame, encoder.scale(frame)))
                    elif isinstance(frame, av.AudioFrame):
                        frames.put(frame)
            frames.put(None)
        except BaseException as exc:  # handed to the encoding thread, raised there
            frames.put(exc)

    decoder = threading.Thread(target=decode, name="ladder-decode", daemon=True)
    decoder.start()
    try:
        first = frames.get()
        if isinstance(first, BaseException):
            raise first
        width, height, rate, audio = first
        encoder = LadderEncoder(
            width=width, height=height, fps=rate, audio=audio, **options,  # type: ignore[arg-type]
        )  # fmt: skip
        ladder.put(encoder)
        while (item := frames.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, tuple):
                encoder.video(item[0], scaled=item[1])
            else:
                encoder.audio(item)
    finally:
        stop.set()
        with contextlib.suppress(queue.Full):
            ladder.put_nowait(None)
        with contextlib.suppress(queue.Empty):
            while True:
                frames.get_nowait()  # unblock the decoder if it waits on a full queue
        decoder.join(timeout=10)
    encoder.close()
    return encoder
