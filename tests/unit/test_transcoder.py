"""The ladder encoder on a synthetic source: every rung's segments decode at their size, the
playlists list exactly what the store holds, a restart continues with a discontinuity."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from liveshop.media.segments import LocalDiskStore
from liveshop.media.transcoder import transcode_file

T0 = 1_800_000_000.0


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
    assert "480p/index.m3u8" in master and "RESOLUTION=640x360" in master
    for rendition in encoder.renditions:
        playlist = (store.get(f"room-1/{rendition.name}/index.m3u8") or b"").decode()
        names = [line for line in playlist.splitlines() if line.endswith(".ts")]
        assert len(names) >= 4, playlist
        durations = [
            float(line[8:-1]) for line in playlist.splitlines() if line.startswith("#EXTINF")
        ]
        assert all(abs(d - 1.0) < 0.05 for d in durations[:-1])  # cut on the aligned keyframes
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
