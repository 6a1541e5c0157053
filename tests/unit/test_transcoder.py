"""The ladder encoder on a synthetic source: every rung's segments decode at their size, the
playlists list exactly what the store holds and obey RFC 8216 (tests/hls_rules.py), the
master playlist declares the codecs the segments hold, segments keep their length when
frames are lost, a restart continues with a discontinuity, and rungs are shed and restored
while every playlist stays valid."""

from __future__ import annotations

import io
import math
import random
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from liveshop.media.hls import MediaPlaylist
from liveshop.media.ladder import parse_ladder
from liveshop.media.segments import LocalDiskStore
from liveshop.media.stamp import picture
from liveshop.media.transcoder import LadderEncoder, transcode_file
from tests.hls_rules import HlsChecker, check_codecs

T0 = 1_800_000_000.0


def check_output(store: LocalDiskStore, prefix: str, checker: HlsChecker) -> dict[str, str]:
    """Every playlist under ``prefix`` checked (the ladder's together); the listed rungs'
    live playlists by name."""
    for _ in range(3):  # a rung shed between reading the master and its playlist: again
        master = (store.get(f"{prefix}/master.m3u8") or b"").decode()
        variants = checker.master_playlist(f"{prefix}/master.m3u8", master)
        texts = {uri: store.get(f"{prefix}/{uri}") for uri, _ in variants}
        if None not in texts.values():
            break
    assert None not in texts.values(), f"the master lists a playlist not there: {texts}"
    live = {}
    for uri, codecs in variants:
        name = uri.split("/")[0]
        live[name] = (texts[uri] or b"").decode()
        first = live[name].split(".ts\n")[0].rsplit("\n", 1)[-1] + ".ts"
        if first.startswith("seg"):
            segment = store.get(f"{prefix}/{name}/{first}")
            assert segment is not None
            check_codecs(codecs, segment)
    checker.ladder({f"{prefix}/{n}/index.m3u8": t for n, t in live.items()})
    replay = store.get(f"{prefix}/replay.m3u8")
    if replay is not None:
        recorded = {}
        for uri, _ in checker.master_playlist(f"{prefix}/replay.m3u8", replay.decode()):
            text = store.get(f"{prefix}/{uri}")
            assert text is not None
            recorded[f"{prefix}/{uri}"] = text.decode()
        checker.ladder(recorded)
    return live


def synthetic(path: Path, *, width: int, height: int, fps: int, seconds: float) -> None:
    """A moving gradient with a 440 Hz tone, as H.264 + AAC in MPEG-TS."""
    with av.open(str(path), "w", format="mpegts") as out:
        video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=48_000)
        audio.layout = "stereo"
        x = np.arange(width, dtype=np.uint16)
        for i in range(int(seconds * fps)):
            row = ((x + 4 * i) % 256).astype(np.uint8)
            img = np.repeat(np.repeat(row[None, :, None], height, axis=0), 3, axis=2)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
        samples = 1024
        for n in range(int(seconds * 48_000 / samples)):
            t = (np.arange(samples) + n * samples) / 48_000
            tone = (0.2 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(
                np.vstack([tone, tone]), format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts = 48_000, n * samples
            out.mux(audio.encode(frame))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))


def test_a_source_becomes_an_hls_ladder(tmp_path: Path) -> None:
    source = tmp_path / "source.ts"
    synthetic(source, width=854, height=480, fps=30, seconds=5)
    store = LocalDiskStore(tmp_path / "hls")
    encoder = transcode_file(
        source, store=store, prefix="room-1", work=tmp_path / "work", now=lambda: T0,
        segment_seconds=1.0, preset="ultrafast",
    )  # fmt: skip
    master = (store.get("room-1/master.m3u8") or b"").decode()
    assert [r.name for r in encoder.renditions] == ["480p", "360p"]
    live = check_output(store, "room-1", HlsChecker())
    assert set(live) == {"480p", "360p"}
    # What libx264 writes at ultrafast: Constrained Baseline, level 3.0 (480p and 360p).
    assert 'CODECS="avc1.42c01e,mp4a.40.2"' in master
    assert "480p/index.m3u8" in master and "RESOLUTION=640x360" in master
    for rendition in encoder.renditions:
        playlist = (store.get(f"room-1/{rendition.name}/index.m3u8") or b"").decode()
        names = [line for line in playlist.splitlines() if line.endswith(".ts")]
        assert len(names) >= 4, playlist
        durations = [
            float(line[8:-1]) for line in playlist.splitlines() if line.startswith("#EXTINF")
        ]
        assert durations[:-1] == [1.0] * (len(durations) - 1)  # cut on the aligned keyframes
        for name in names:
            data = store.get(f"room-1/{rendition.name}/{name}")
            assert data is not None
            segment = tmp_path / "check.ts"
            segment.write_bytes(data)
            with av.open(str(segment)) as check:
                first = next(check.decode(video=0))
                assert (first.width, first.height) == (rendition.width, rendition.height)
                assert first.key_frame  # every segment starts on a keyframe
                assert check.streams.audio  # and carries the sound
    assert not list((tmp_path / "work").rglob("*.ts"))  # everything moved into the store


def test_a_restart_continues_the_playlist_with_a_discontinuity(tmp_path: Path) -> None:
    source = tmp_path / "source.ts"
    synthetic(source, width=640, height=360, fps=30, seconds=3)
    store = LocalDiskStore(tmp_path / "hls")
    options = {"store": store, "prefix": "r", "now": lambda: T0, "segment_seconds": 1.0,
               "preset": "ultrafast"}  # fmt: skip
    first = transcode_file(source, work=tmp_path / "w1", **options)
    playlists = first.playlists
    for playlist in playlists.values():
        playlist.restart()
    transcode_file(source, work=tmp_path / "w2", playlists=playlists, **options)
    text = (store.get("r/360p/index.m3u8") or b"").decode()
    assert "#EXT-X-DISCONTINUITY" in text
    names = [line for line in text.splitlines() if line.endswith(".ts")]
    assert len(names) == len(set(names))  # numbering went on: no segment overwritten


_SAMPLE_TYPES = {
    "u8": np.uint8,
    "s16": np.int16,
    "s32": np.int32,
    "flt": np.float32,
    "dbl": np.float64,
}


def tone(fmt: str, layout: str, rate: int, start: int, samples: int) -> av.AudioFrame:
    """``samples`` of a 440 Hz tone (from sample ``start``) in any sample format, layout
    and rate: the same sound as each kind of source hands it over."""
    t = (np.arange(samples) + start) / rate
    wave = 0.2 * np.sin(2 * math.pi * 440 * t)
    kind = fmt.removesuffix("p")
    if kind == "u8":
        values = np.round(128 + 127 * wave)
    elif kind in ("s16", "s32"):
        values = np.round(wave * np.iinfo(_SAMPLE_TYPES[kind]).max)
    else:
        values = wave
    channels = len(av.AudioLayout(layout).channels)
    planes = np.tile(values.astype(_SAMPLE_TYPES[kind]), (channels, 1))
    array = planes if fmt.endswith("p") else planes.T.reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(array), format=fmt, layout=layout)
    frame.sample_rate = rate
    return frame


#: Half a second each, in this order: (format, layout, rate, another source takes over).
#: None: the slate's silence. The first four are what crashed the transcoder with "Frame
#: does not match AudioResampler setup": WHIP then RTMP, and an RTMP source already in the
#: encoders' format (its frames passed through untouched) followed by WHIP's.
SOUNDS: list[tuple[str | None, str, int, bool]] = [
    ("s16", "stereo", 48_000, True),  # WHIP: aiortc's Opus decoder
    ("fltp", "stereo", 44_100, True),  # RTMP: FLV's AAC at 44.1 kHz
    ("fltp", "stereo", 48_000, False),  # the publisher changes its rate mid-stream
    ("s16", "stereo", 48_000, True),  # WHIP again
    (None, "", 0, True),  # the slate
    ("s16", "mono", 8_000, False),  # aiortc's own silence track, as it is generated
    ("flt", "mono", 32_000, False),
    ("s32p", "5.1", 22_050, True),
    ("dbl", "stereo", 96_000, False),
    ("u8", "mono", 16_000, False),
]


def test_sound_in_any_format_from_any_source_is_encoded(tmp_path: Path) -> None:
    """Sources switch (WHIP to RTMP and back, the slate between) and change their sound's
    rate, layout and sample format mid-stream: every piece of it is resampled to the
    encoders' 48 kHz stereo, nothing fails, and the recording holds the whole sound in
    step with the pictures, loud where a source spoke and silent on the slate."""
    store = LocalDiskStore(tmp_path / "hls")
    heard: list[av.AudioFrame] = []
    encoder = LadderEncoder(
        width=320,
        height=180,
        fps=30,
        now=lambda: T0,
        segment_seconds=0.5,
        preset="ultrafast",
        rungs=parse_ladder("180:200"),
        on_audio=heard.append,
        store=store,
        prefix="r",
        work=tmp_path / "w",
        record=True,
    )
    n = 0
    for fmt, layout, rate, switch in SOUNDS:
        if switch:
            encoder.rebase()  # what LiveStream does when another source goes on air
        sent = 0
        for i in range(15):
            encoder.video(picture(320, 180, n), at=n / 30)
            n += 1
            if fmt is None:
                encoder.pad_audio()
                continue
            while sent < (i + 1) * rate // 30:  # 20 ms pieces, as Opus sends them
                encoder.audio(tone(fmt, layout, rate, sent, rate // 50))
                sent += rate // 50
    encoder.close()
    encoder.end()
    check_output(store, "r", HlsChecker())
    # The WHEP relay and every AAC encoder get one format whatever the source sent.
    assert {(f.format.name, f.layout.name, f.sample_rate) for f in heard} == {
        ("fltp", "stereo", 48_000)
    }
    names = [name for name, _ in _segments(store, "r", "180p/vod.m3u8")]
    recording = b"".join(store.get(f"r/180p/{name}") or b"" for name in names)
    with av.open(io.BytesIO(recording), format="mpegts") as container:
        sound = np.hstack([f.to_ndarray() for f in container.decode(audio=0)])
    assert abs(sound.shape[1] / 48_000 - n / 30) < 0.1, (sound.shape, n)
    for k, (fmt, *_) in enumerate(SOUNDS):
        middle = sound[:, int((k / 2 + 0.1) * 48_000) : int((k / 2 + 0.4) * 48_000)]
        level = float(np.sqrt(np.mean(middle**2)))
        assert (level > 0.05) if fmt else (level == 0.0), (SOUNDS[k], level)


def test_a_stamp_survives_scaling_and_h264() -> None:
    from liveshop.media.stamp import picture, read_stamp

    for value in (0, 1, 0xDEADBEEF, 2**32 - 1):
        frame = picture(854, 480, value)
        assert read_stamp(frame) == value
        assert read_stamp(frame.reformat(width=640, height=360)) == value
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = 640, 360, "yuv420p"
    codec.time_base = Fraction(1, 30)
    codec.options = {"preset": "ultrafast", "crf": "35"}
    decoder = av.CodecContext.create("h264", "r")
    decoded = []
    for i in range(5):
        frame = picture(640, 360, 1_000_000 + i).reformat(format="yuv420p")
        frame.pts = i
        for packet in [*codec.encode(frame), *([] if i < 4 else codec.encode(None))]:
            decoded += decoder.decode(packet)
    assert [read_stamp(f) for f in decoded] == [1_000_000 + i for i in range(5)]


def test_a_live_stream_whose_encoder_fails_reports_the_crash(tmp_path: Path) -> None:
    """A failing store (disk full) must not leave a stream that looks alive but makes
    nothing: the owner hears of it and restarts."""
    import threading
    import time

    from liveshop.media.live import LiveOptions, LiveStream
    from liveshop.media.sources import TrackSource
    from liveshop.media.stamp import picture

    class FullDisk(LocalDiskStore):
        def put(self, name: str, data: bytes) -> None:
            if name.endswith(".ts"):
                raise OSError(28, "No space left on device")
            super().put(name, data)

    crashed: list[BaseException] = []
    done = threading.Event()

    def on_crash(exc: BaseException) -> None:
        crashed.append(exc)
        done.set()

    stream = LiveStream(
        "room:1", store=FullDisk(tmp_path / "store"), work=tmp_path / "work",
        options=LiveOptions(segment_seconds=0.5), on_crash=on_crash,
    )  # fmt: skip
    source = stream.attach("primary", "cam", track=True)
    assert isinstance(source, TrackSource)
    for i in range(60):
        frame = picture(320, 180, i)
        frame.pts, frame.time_base = i, Fraction(1, 30)
        source.receive(frame)
        time.sleep(1 / 60)
        if done.is_set():
            break
    assert done.wait(10)
    assert isinstance(crashed[0], OSError)
    stream.join(5)


def _segments(store: LocalDiskStore, prefix: str, playlist: str) -> list[tuple[str, float]]:
    text = (store.get(f"{prefix}/{playlist}") or b"").decode()
    lines = text.splitlines()
    return [
        (lines[i + 1], float(line[8:-1]))
        for i, line in enumerate(lines)
        if line.startswith("#EXTINF:")
    ]


def test_segments_keep_their_length_when_the_source_loses_frames(tmp_path: Path) -> None:
    """Frames dropped (an encoder behind drops the oldest), a source pausing for over a
    segment: every segment still lasts exactly one period and starts with the one keyframe
    it holds, on every rung (they once ran 0.07-5.9 s, and the target duration grew)."""
    store = LocalDiskStore(tmp_path / "hls")
    encoder = LadderEncoder(
        width=640, height=360, fps=30, store=store, prefix="r", work=tmp_path / "w",
        now=lambda: T0, segment_seconds=0.5, preset="ultrafast", record=True,
        rungs=parse_ladder("360:500,180:200"),
    )  # fmt: skip
    checker = HlsChecker()
    rng = random.Random(7)
    sent = 0
    for i in range(180):
        if rng.random() < 0.4 or 60 <= i < 100:  # 40% lost, and 1.3 s with nothing
            continue
        frame = picture(640, 360, i)
        encoder.video(frame, at=i / 30)
        encoder.pad_audio()
        sent += 1
        if i % 15 == 0:
            check_output(store, "r", checker)
    encoder.close()
    encoder.end()
    check_output(store, "r", checker)
    for rung, size in (("360p", (640, 360)), ("180p", (320, 180))):
        listed = _segments(store, "r", f"{rung}/vod.m3u8")
        assert [d for _, d in listed[:-1]] == [0.5] * (len(listed) - 1)
        assert len(listed) == 12  # 6 s of output clock, 0.5 s each
        starts = []
        for name, _ in listed:
            data = store.get(f"r/{rung}/{name}")
            assert data is not None
            with av.open(io.BytesIO(data), format="mpegts") as container:
                frames = list(container.decode(video=0))
            assert (frames[0].width, frames[0].height) == size
            assert [f.key_frame for f in frames] == [True] + [False] * (len(frames) - 1)
            starts.append(frames[0].pts * frames[0].time_base)
        # On the grid (the muxer shifts every timestamp by the sound's priming, 1024 samples).
        assert [start - starts[0] for start in starts] == [Fraction(n, 2) for n in range(12)]
    assert sent < 180 and encoder.frames == sent


def test_rungs_are_shed_when_the_encoder_is_behind_and_come_back(tmp_path: Path) -> None:
    """A live stream told its encoder is behind (the shedder's controllable load) sheds the
    top rungs one by one, announced in the master playlist and health; told there is room,
    it restores them at segment boundaries. Every playlist read meanwhile obeys RFC 8216:
    the target duration never changes, segments keep their length, renditions stay
    aligned; the replay keeps only the rung recorded throughout."""
    from liveshop.media.live import LiveOptions, LiveStream
    from liveshop.media.sources import TrackSource

    store = LocalDiskStore(tmp_path / "store")
    views: list[dict[str, object]] = []
    options = LiveOptions(
        segment_seconds=0.5, preset="ultrafast", shed_after=0.4, restore_after=0.8,
        rungs=parse_ladder("360:500,240:300,144:150"), thumbnail_interval=60,
    )  # fmt: skip
    stream = LiveStream(
        "room:shed", store=store, work=tmp_path / "work", options=options,
        on_view=views.append,
    )  # fmt: skip
    source = stream.attach("primary", "cam", track=True)
    assert isinstance(source, TrackSource)
    checker = HlsChecker()
    masters: list[list[str]] = []
    stop = threading.Event()

    def camera() -> None:
        started, i = time.monotonic(), 0
        while not stop.is_set():
            frame = picture(640, 360, i)
            frame.pts, frame.time_base = i, Fraction(1, 30)
            source.receive(frame)
            i += 1
            time.sleep(max(0.0, started + i / 30 - time.monotonic()))

    def observe() -> list[str]:
        if store.get(f"{stream.prefix}/master.m3u8") is None:
            return []
        listed = sorted(check_output(store, stream.prefix, checker))
        if not masters or masters[-1] != listed:
            masters.append(listed)
        return listed

    def until(condition: object, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not callable(condition) or not condition():
            assert time.monotonic() < deadline, (masters, views[-1:] if views else None)
            observe()
            time.sleep(0.1)

    feeder = threading.Thread(target=camera, daemon=True)
    feeder.start()
    try:
        until(lambda: stream.shedder is not None and len(observe()) == 3)
        assert stream.shedder is not None
        stream.shedder.forced_load = 5.0  # behind
        until(lambda: observe() == ["144p"])
        shed = stream.view()
        assert shed["renditions"] == ["144p"]
        assert shed["health"]["shed"] == ["360p", "240p"]
        assert "rungs_shed" in shed["health"]["alerts"]
        assert store.get(f"{stream.prefix}/360p/index.m3u8") is None  # players move down
        replay = (store.get(f"{stream.prefix}/replay.m3u8") or b"").decode()
        assert "144p/vod.m3u8" in replay and "360p" not in replay
        stream.shedder.forced_load = 0.0  # room again
        until(lambda: observe() == ["144p", "240p", "360p"])
        back = stream.view()
        assert back["renditions"] == ["360p", "240p", "144p"] and back["health"]["shed"] == []
    finally:
        stop.set()
        feeder.join(5)
        stream.stop()
    check_output(store, stream.prefix, checker)
    # Shed one at a time, top first; restored bottom up, listed once they can be played.
    full, middle, low = ["144p", "240p", "360p"], ["144p", "240p"], ["144p"]
    assert masters[:3] == [full, middle, low] and masters[-1] == full, masters
    assert all(m in (full, middle, low) for m in masters), masters
    vod = (store.get(f"{stream.prefix}/360p/vod.m3u8") or b"").decode()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in vod and vod.endswith("#EXT-X-ENDLIST\n")
    assert checker.checked > 20


def test_a_restart_after_a_shed_keeps_every_rendition_in_step(tmp_path: Path) -> None:
    """The transcoder restarts while a rung is shed: the recorded rung continues after a
    discontinuity, the other starts a live playlist numbered like it (same sequence and
    discontinuity numbers for the same moment), listed once it holds three target
    durations; the replay keeps only the rung recorded throughout."""
    store = LocalDiskStore(tmp_path / "hls")
    options = {"width": 640, "height": 360, "fps": 30, "store": store, "prefix": "r",
               "segment_seconds": 0.5, "preset": "ultrafast", "record": True,
               "rungs": parse_ladder("360:500,180:200")}  # fmt: skip
    checker = HlsChecker()
    first = LadderEncoder(work=tmp_path / "w1", now=lambda: T0, **options)  # type: ignore[arg-type]
    for i in range(90):
        if i == 45:
            first.set_shed(1)
            assert check_output(store, "r", checker).keys() == {"180p"}
            assert store.get("r/360p/index.m3u8") is None
        first.video(picture(640, 360, i), at=i / 30)
        first.pad_audio()
    first.close()  # and the process dies: no end
    check_output(store, "r", checker)
    assert set(first.recordings) == {"180p"}
    recordings = {n: MediaPlaylist.parse(r.render()) for n, r in first.recordings.items()}
    playlists = {n: r.tail(6) for n, r in recordings.items()}
    for playlist in (*playlists.values(), *recordings.values()):
        playlist.restart()
    second = LadderEncoder(
        work=tmp_path / "w2", now=lambda: T0 + 10, playlists=playlists,
        recordings=recordings, **options,  # type: ignore[arg-type]
    )  # fmt: skip
    assert second.playlists["360p"].next_sequence == second.playlists["180p"].next_sequence
    assert check_output(store, "r", checker).keys() == {"180p"}  # 360p: not yet
    listed = set()
    for i in range(120):  # three target durations (3 s) and a bit
        second.video(picture(640, 360, 1000 + i), at=i / 30)
        second.pad_audio()
        listed |= check_output(store, "r", checker).keys()
    assert listed == {"180p", "360p"}
    second.close()
    second.end()
    check_output(store, "r", checker)
    replay = (store.get("r/replay.m3u8") or b"").decode()
    assert "180p/vod.m3u8" in replay and "360p" not in replay


class _Publisher(threading.Thread):
    """A WHIP camera (pictures and aiortc's Opus sound: ``s16`` stereo 48 kHz, 20 ms) or
    an RTMP encoder (FLV with H.264 and AAC, which decodes to ``fltp``) feeding ``source``
    in real time until stopped."""

    def __init__(self, source: object, first: int) -> None:
        super().__init__(daemon=True)
        self.source, self.first, self.frames = source, first, 0
        self.halt = threading.Event()

    def run(self) -> None:
        from liveshop.media.sources import FlvSource, TrackSource

        started, samples = time.monotonic(), 0
        if isinstance(self.source, TrackSource):
            while not self.halt.is_set():
                frame = picture(320, 180, self.first + self.frames)
                frame.pts, frame.time_base = self.frames, Fraction(1, 30)
                self.source.receive(frame)
                while samples < (self.frames + 1) * 1600:
                    sound = tone("s16", "stereo", 48_000, samples, 960)
                    sound.pts, sound.time_base = samples, Fraction(1, 48_000)
                    self.source.receive(sound)
                    samples += 960
                self.frames += 1
                time.sleep(max(0.0, started + self.frames / 30 - time.monotonic()))
            return
        assert isinstance(self.source, FlvSource)
        flv = self.source

        class Pipe(io.RawIOBase):
            def writable(self) -> bool:
                return True

            def write(self, data: bytes) -> int:  # type: ignore[override]
                flv.write(bytes(data))
                return len(data)

        with av.open(Pipe(), "w", format="flv") as out:
            video = out.add_stream("libx264", rate=30, options={"preset": "ultrafast", "g": "15"})
            video.width, video.height, video.pix_fmt = 320, 180, "yuv420p"
            audio = out.add_stream("aac", rate=48_000)
            audio.layout = "stereo"
            while not self.halt.is_set():
                frame = picture(320, 180, self.first + self.frames)
                frame.pts, frame.time_base = self.frames, Fraction(1, 30)
                out.mux(video.encode(frame))
                while samples < (self.frames + 1) * 1600:
                    sound = tone("fltp", "stereo", 48_000, samples, 1024)
                    sound.pts = samples
                    out.mux(audio.encode(sound))
                    samples += 1024
                self.frames += 1
                time.sleep(max(0.0, started + self.frames / 30 - time.monotonic()))

    def stop(self) -> None:
        self.halt.set()
        self.join(10)


def test_a_stream_switching_whip_and_rtmp_survives_and_resumes_on_the_slate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A browser camera (WHIP) on the primary key, an RTMP encoder on the backup: the
    camera stops and the RTMP one goes on air, then the camera is back (the sound changes
    format both times; the transcoder once crashed on it). Then the process dies with no
    publisher on air: the restarted stream goes on at once on the slate, with the same
    ladder, its playlists continued after a discontinuity and its view naming them."""
    from liveshop.media.live import LiveOptions, LiveStream
    from liveshop.media.stamp import read_stamp

    store = LocalDiskStore(tmp_path / "store")
    options = LiveOptions(
        segment_seconds=0.5,
        preset="ultrafast",
        stall_after=0.5,
        rungs=parse_ladder("180:200"),
        thumbnail_interval=60,
        budget=None,
    )
    crashed: list[BaseException] = []
    stream = LiveStream(
        "room:switch", store=store, work=tmp_path / "work", options=options,
        on_crash=crashed.append,
    )  # fmt: skip
    checker = HlsChecker()
    playlist = f"{stream.prefix}/180p/index.m3u8"

    def on_air(source: str, segments: int, live: LiveStream = stream) -> list[str]:
        """Wait for ``source`` on air and ``segments`` more segments; the newest names."""
        deadline = time.monotonic() + 30
        seen: list[str] = []
        while True:
            assert not crashed, crashed
            assert time.monotonic() < deadline, (live.view(), seen)
            if live.view()["source"] == source:
                names = [name for name, _ in _segments(store, live.prefix, "180p/index.m3u8")]
                seen = seen or names
                if len([n for n in names if n not in seen]) >= segments:
                    check_output(store, live.prefix, checker)
                    return names
            time.sleep(0.1)

    whip = _Publisher(stream.attach("primary", "whip-1", track=True), 0)
    whip.start()
    rtmp = _Publisher(stream.attach("backup", "rtmp-1"), 100_000)
    rtmp.start()
    try:
        on_air("primary", 2)
        whip.stop()
        stream.detach("whip-1")
        names = on_air("backup", 3)
        frames = _decode_segment(store, f"{stream.prefix}/180p/{names[-1]}")
        assert read_stamp(frames[-1]) > 100_000  # the RTMP encoder's pictures
        whip = _Publisher(stream.attach("primary", "whip-2", track=True), 200_000)
        whip.start()
        on_air("primary", 2)
        view = stream.view()
        assert view["status"] == "live" and view["failovers"] == 1 and not crashed
    finally:
        whip.stop()
        rtmp.stop()
    # The process dies (nothing is ended, the sources just vanish).
    monkeypatch.setattr(stream, "_finish", lambda: None)
    stream.stop()
    for source in list(stream.sources.values()):
        source.close()
    hls = stream.view()["hls"]
    assert hls is not None

    again = LiveStream(
        "room:switch", store=store, work=tmp_path / "work", options=options,
        on_crash=crashed.append,
    )  # fmt: skip
    try:
        view = again.view()
        assert (view["status"], view["source"], view["incarnation"]) == ("slate", "slate", 1)
        assert view["hls"] == hls and view["renditions"] == ["180p"]
        names = on_air("slate", 3, again)
        assert "#EXT-X-DISCONTINUITY" in (store.get(playlist) or b"").decode()
        frames = _decode_segment(store, f"{again.prefix}/180p/{names[-1]}")
        assert frames and read_stamp(frames[-1]) == 0  # the slate
    finally:
        again.stop()
    assert again.view()["status"] == "ended" and not crashed
    vod = (store.get(f"{again.prefix}/180p/vod.m3u8") or b"").decode()
    assert vod.endswith("#EXT-X-ENDLIST\n")
    check_output(store, again.prefix, checker)


def _decode_segment(store: LocalDiskStore, name: str) -> list[av.VideoFrame]:
    data = store.get(name)
    assert data is not None
    with av.open(io.BytesIO(data), format="mpegts") as container:
        assert container.streams.audio  # every segment carries the sound
        return list(container.decode(video=0))
