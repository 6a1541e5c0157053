"""The ladder encoder: decode once, scale to every rendition, encode H.264 and AAC with
aligned keyframes, cut MPEG-TS segments, publish them to the segment store with their HLS
playlists.

Each rendition writes through FFmpeg's segment muxer into a private work directory (it cuts
at keyframes and starts every segment with its own PAT/PMT); a finished segment is moved into
the store first and only then listed in the playlist, so a playlist never names a segment a
player cannot fetch. Segment numbers continue from ``first_sequence`` after a restart, and the
playlist marks the join with a discontinuity.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.video.reformatter import VideoReformatter

from liveshop.media.hls import MediaPlaylist, master_playlist
from liveshop.media.ladder import DEFAULT_LADDER, Rendition, Rung, ladder_for
from liveshop.media.segments import SegmentStore

log = logging.getLogger(__name__)

AUDIO_RATE = 48_000


class RenditionOutput:
    def __init__(
        self,
        rendition: Rendition,
        *,
        work: Path,
        store: SegmentStore,
        prefix: str,
        segment_seconds: float,
        audio: bool,
        started_at: float,
        playlist: MediaPlaylist,
        preset: str,
        recording: MediaPlaylist | None = None,
        on_segment: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.rendition = rendition
        self.store = store
        self.prefix = f"{prefix}/{rendition.name}"
        self.playlist = playlist
        self.recording = recording
        self.on_segment = on_segment
        self.started_at = started_at
        self.dir = work / rendition.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self._list = self.dir / "segments.csv"
        self._listed = 0  # bytes of the muxer's segment list already published
        self._scaler = VideoReformatter()  # one per rung: its scaling context is reused
        self.container = av.open(
            str(self.dir / "seg%06d.ts"),
            "w",
            format="segment",
            options={
                "segment_time": str(segment_seconds),
                "segment_format": "mpegts",
                "segment_list": str(self._list),
                "segment_list_type": "csv",
                "segment_list_flags": "live",
                "segment_start_number": str(playlist.next_sequence),
                "reset_timestamps": "0",
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

    def video(self, frame: av.VideoFrame, index: int) -> int:
        """Encode ``frame`` (scaled here unless it already has this rung's size) as output
        frame ``index``; the number of segments this finished."""
        r = self.rendition
        if (frame.width, frame.height, frame.format.name) != (r.width, r.height, "yuv420p"):
            frame = self._scaler.reformat(frame, width=r.width, height=r.height, format="yuv420p")
        frame.pts = index
        frame.time_base = self._time_base
        self.container.mux(self.video_stream.encode(frame))
        return self._publish()

    def audio(self, frame: av.AudioFrame) -> None:
        if self.audio_stream is not None:
            self.container.mux(self.audio_stream.encode(frame))

    def close(self) -> None:
        self.container.mux(self.video_stream.encode(None))
        if self.audio_stream is not None:
            self.container.mux(self.audio_stream.encode(None))
        self.container.close()
        self._publish()

    def end(self) -> None:
        """The stream is over: players stop at the last segment, the recording is a VOD."""
        self.playlist.end()
        if self.recording is not None:
            self.recording.end()
        self.write_playlists()

    def _publish(self) -> int:
        """Move each segment the muxer finished into the store, then list it; the number
        of new segments. Called per frame, so it reads only what the muxer appended to its
        segment list (a stat when nothing did): the list grows for the whole stream."""
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
        for line in lines:
            name, start, end = line.rsplit(",", 2)
            path = self.dir / name
            data = path.read_bytes()
            self.store.put(f"{self.prefix}/{name}", data)
            path.unlink(missing_ok=True)
            if self.on_segment is not None:
                self.on_segment(self.rendition.name, data)
            duration, at = float(end) - float(start), self.started_at + float(start)
            self.playlist.add_segment(name, duration, at)
            if self.recording is not None:
                self.recording.add_segment(name, duration, at)
        if lines:
            self.write_playlists()
        return len(lines)

    def write_playlists(self) -> None:
        self.store.put(f"{self.prefix}/index.m3u8", self.playlist.render().encode())
        if self.recording is not None:
            self.store.put(f"{self.prefix}/vod.m3u8", self.recording.render().encode())


class LadderEncoder:
    """Feed it decoded frames; it keeps the HLS output of every rendition current."""

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
    ) -> None:
        self.renditions = ladder_for(
            width, height, fps, segment_seconds=segment_seconds, rungs=rungs
        )
        self.fps = fps
        # Playlists a restarted stream continues are given; a rung without one (the source
        # came back at another size) starts its own.
        given, kept = playlists or {}, recordings or {}
        self.playlists = {
            r.name: given.get(r.name)
            or MediaPlaylist(target_duration=segment_seconds, window=window)
            for r in self.renditions
        }
        #: With ``record``: every segment of every rung, the replay (EVENT, then VOD).
        self.recordings = {
            r.name: kept.get(r.name)
            or MediaPlaylist(target_duration=segment_seconds, window=None, playlist_type="EVENT")
            for r in self.renditions
            if record
        }
        self.on_audio = on_audio
        started_at = now()
        self.outputs = [
            RenditionOutput(
                r, work=work, store=store, prefix=prefix, segment_seconds=segment_seconds,
                audio=audio, started_at=started_at, playlist=self.playlists[r.name],
                preset=preset, recording=self.recordings.get(r.name),
                on_segment=on_segment,
            )
            for r in self.renditions
        ]  # fmt: skip
        self.resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
        self._first: float | None = None
        self._base = 0
        self._last_index = -1
        self._audio_samples = 0
        self.frames = 0
        self.segments = 0
        self._scalers = threading.local()  # scale() may run on more than one thread
        store.put(f"{prefix}/master.m3u8", master_playlist(self.renditions).encode())
        if record:
            replay = master_playlist(self.renditions, uri="{name}/vod.m3u8")
            store.put(f"{prefix}/replay.m3u8", replay.encode())

    @property
    def media_time(self) -> float:
        """Seconds of video encoded so far (the output clock)."""
        return (self._last_index + 1) / self.fps

    def rebase(self) -> None:
        """The next frame comes from another source (failover, slate): it follows the last
        frame on the output clock instead of jumping by the difference in source times, so
        the encoders keep running and players see one continuous stream."""
        self._first = None
        self._base = self._last_index + 1

    def scale(self, frame: av.VideoFrame) -> list[av.VideoFrame]:
        """The frame at every rung's size, with a scaler per rung reused (a new scaling
        context per frame cost twice the time). Thread-safe: the decoder's thread calls it,
        so scaling runs beside the encoding instead of before it (measured on 2 cores: the
        720p ladder from 2.3x to 3.6x real time, 1.1 of the ffmpeg command line)."""
        scalers: list[VideoReformatter] | None = getattr(self._scalers, "rungs", None)
        if scalers is None:
            scalers = self._scalers.rungs = [VideoReformatter() for _ in self.renditions]
        return [
            scaler.reformat(frame, width=r.width, height=r.height, format="yuv420p")
            for scaler, r in zip(scalers, self.renditions, strict=True)
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
        index = self._base + round((at - self._first) * self.fps)
        if index <= self._last_index:
            return  # two source frames for one output slot: keep the first
        self._last_index = index
        self.frames += 1
        for i, out in enumerate(self.outputs):
            self.segments += out.video(scaled[i] if scaled else frame, index)

    def audio(self, frame: av.AudioFrame) -> None:
        for resampled in self.resampler.resample(frame):
            self._audio_out(resampled)

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
            out.audio(frame)
        if self.on_audio is not None:
            self.on_audio(frame)

    def close(self) -> None:
        for out in self.outputs:
            out.close()

    def end(self) -> None:
        for out in self.outputs:
            out.end()


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
