"""The ladder, HLS playlists and the segment store: what the transcoder's output looks like,
checked against RFC 8216 (tests/hls_rules.py) for any input hypothesis finds."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveshop.errors import InvalidRequest
from liveshop.media.grid import Grid
from liveshop.media.hls import MediaPlaylist, avc1_codec, master_playlist, rounded
from liveshop.media.ladder import (
    DEFAULT_LADDER,
    Budget,
    EncodeCost,
    Rendition,
    fit_ladder,
    ladder_for,
    target_duration,
)
from liveshop.media.segments import LocalDiskStore, cache_control, check_name, content_type
from tests.hls_rules import HlsChecker, PlaylistError

T0 = 1_800_000_000.0


def test_the_ladder_never_upscales_and_keeps_keyframes_aligned() -> None:
    full = ladder_for(1920, 1080, 30)
    assert [(r.name, r.width, r.height) for r in full] == [
        ("1080p", 1920, 1080), ("720p", 1280, 720), ("480p", 854, 480), ("360p", 640, 360),
    ]  # fmt: skip
    hd = ladder_for(1280, 720, 30, segment_seconds=1)
    assert [r.name for r in hd] == ["720p", "480p", "360p"]
    assert {r.gop for r in hd} == {30}  # one keyframe per segment on every rung
    options = hd[0].x264_options()
    assert (options["g"], options["keyint_min"], options["sc_threshold"], options["bf"]) == (
        "30", "30", "0", "0",
    )  # fmt: skip
    vertical = ladder_for(1080, 1920, 30)  # a phone held upright
    assert [(r.width, r.height) for r in vertical[:2]] == [(1080, 1920), (720, 1280)]
    tiny = ladder_for(320, 240, 25)
    assert [(r.width, r.height) for r in tiny] == [(320, 240)]
    assert all(r.width % 2 == 0 and r.height % 2 == 0 for r in ladder_for(1001, 563, 29.97))
    for bad in ((8, 8, 30), (1280, 720, 0), (1280, 720, 500)):
        with pytest.raises(InvalidRequest):
            ladder_for(*bad)


def test_the_master_playlist_declares_each_renditions_own_codecs() -> None:
    ladder = ladder_for(1280, 720, 30)
    codecs = {"720p": "avc1.64001f,mp4a.40.2", "480p": "avc1.64001f,mp4a.40.2",
              "360p": "avc1.64001e,mp4a.40.2"}  # fmt: skip
    text = master_playlist(ladder, codecs=codecs)
    assert text.startswith("#EXTM3U\n")
    assert text.count("#EXT-X-STREAM-INF:") == 3
    assert "RESOLUTION=1280x720" in text and "720p/index.m3u8" in text
    variants = HlsChecker().master_playlist("master.m3u8", text)
    assert variants == [(f"{name}/index.m3u8", codecs[name]) for name in codecs]
    assert "avc1.640028" not in text  # level 4.0 was declared for every rung once


def test_the_codec_string_comes_from_the_sequence_parameter_set() -> None:
    # An access unit delimiter, then an SPS: High (0x64), no constraints, level 3.1 (0x1f).
    keyframe = b"\x00\x00\x00\x01\x09\xf0\x00\x00\x00\x01\x67\x64\x00\x1f\xac\xd9"
    assert avc1_codec(keyframe) == "avc1.64001f"
    assert avc1_codec(b"\x00\x00\x01\x67\x42\xc0\x1e\x00") == "avc1.42c01e"
    assert avc1_codec(b"\x00\x00\x01\x68\xce\x3c\x80") is None  # a PPS only
    assert avc1_codec(b"\x00\x00\x01\x67\x64") is None  # cut short


def test_a_live_playlist_slides_and_marks_restarts() -> None:
    checker = HlsChecker()
    pl = MediaPlaylist(target_duration=2, window=3)
    for i in range(4):
        pl.add_segment(f"seg{i}.ts", 2.0, T0 + 2 * i)
        checker.media_playlist("live", pl.render())
    text = pl.render()
    assert "#EXT-X-MEDIA-SEQUENCE:1" in text and "seg0.ts" not in text
    assert "#EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:02.000Z" in text
    pl.restart()  # the transcoder came back: a discontinuity, not an error
    assert pl.next_discontinuity == 1
    pl.add_segment("seg4.ts", 2.0, T0 + 9)
    text = checker_render(checker, pl)
    assert text.index("#EXT-X-DISCONTINUITY\n") < text.index("seg4.ts")
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:0" in text
    for i in range(5, 8):
        pl.add_segment(f"seg{i}.ts", 2.0, T0 + 2 * i)
        checker_render(checker, pl)
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1" in pl.render()  # the marked one left the window
    assert pl.next_discontinuity == 1
    pl.end()
    assert checker_render(checker, pl).endswith("#EXT-X-ENDLIST\n")


def checker_render(checker: HlsChecker, playlist: MediaPlaylist, uri: str = "live") -> str:
    text = playlist.render()
    checker.media_playlist(uri, text)
    return text


def test_the_target_duration_is_fixed_and_a_segment_above_it_is_refused() -> None:
    pl = MediaPlaylist(target_duration=1, window=6)
    pl.add_segment("seg0.ts", 1.0, T0)
    pl.add_segment("seg1.ts", 1.49, T0 + 1)  # rounds to 1: allowed (RFC 8216 4.3.3.1)
    for bad in (1.5, 2.4, 0.0, -1.0):
        with pytest.raises(ValueError):
            pl.add_segment("bad.ts", bad, T0 + 3)
    assert [s.uri for s in pl.segments] == ["seg0.ts", "seg1.ts"] and pl.next_sequence == 2
    assert "#EXT-X-TARGETDURATION:1\n" in pl.render()
    # A window of short segments keeps three target durations (6.2.2), not just `window`.
    short = MediaPlaylist(target_duration=1, window=2)
    for i in range(10):
        short.add_segment(f"seg{i}.ts", 0.5, T0 + i / 2)
    assert len(short.segments) == 6 and short.duration == 3.0


def test_a_recording_read_back_gives_the_live_playlist_a_restart_continues() -> None:
    recording = MediaPlaylist(target_duration=1, window=None, playlist_type="EVENT")
    for i in range(5):
        recording.add_segment(f"seg{i}.ts", 1.0, T0 + i)
    recording.restart()
    for i in range(5, 9):
        recording.add_segment(f"seg{i}.ts", 1.0, T0 + i)
    text = recording.render()
    assert "#EXT-X-TARGETDURATION:1\n" in text
    HlsChecker().media_playlist("vod", text)
    again = MediaPlaylist.parse(text)
    assert again.render() == text
    assert (again.next_sequence, again.playlist_type) == (9, "EVENT")
    live = again.tail(3)
    assert [s.uri for s in live.segments] == ["seg6.ts", "seg7.ts", "seg8.ts"]
    assert live.discontinuity_sequence == 1  # seg5's discontinuity left the window
    live.add_segment("seg9.ts", 1.0, T0 + 9)
    assert "#EXT-X-MEDIA-SEQUENCE:7" in live.render()
    again.end()
    assert MediaPlaylist.parse(again.render()).ended
    # A tail of short segments reaches back to hold three target durations (6.2.2).
    recording.add_segment("seg9.ts", 0.5, T0 + 9)
    short = recording.tail(3)
    assert [s.uri for s in short.segments] == ["seg6.ts", "seg7.ts", "seg8.ts", "seg9.ts"]


def test_the_store_writes_atomically_and_names_cannot_escape(tmp_path: Path) -> None:
    store = LocalDiskStore(tmp_path / "hls")
    store.put("room-1/720p/seg1.ts", b"x" * 1000)
    assert store.get("room-1/720p/seg1.ts") == b"x" * 1000
    store.put("room-1/720p/index.m3u8", b"#EXTM3U\n")
    store.put("room-1/720p/index.m3u8", b"#EXTM3U\n#2\n")
    assert store.get("room-1/720p/index.m3u8") == b"#EXTM3U\n#2\n"
    assert not [p for p in (tmp_path / "hls").rglob(".tmp-*")]
    store.delete("room-1/720p/seg1.ts")
    assert store.get("room-1/720p/seg1.ts") is None
    for bad in ("../etc/passwd", "a//b", "/abs", "a/./b", "a b", ""):
        with pytest.raises(InvalidRequest):
            check_name(bad)
    assert cache_control("x/seg1.ts").endswith("immutable")
    assert "max-age=1" in cache_control("x/index.m3u8")
    assert content_type("a/index.m3u8") == "application/vnd.apple.mpegurl"


def test_the_ladder_is_configurable_and_bad_specs_are_refused() -> None:
    from liveshop.media.ladder import DEFAULT_LADDER, DEFAULT_LADDER_SPEC, Rung, parse_ladder

    assert parse_ladder(DEFAULT_LADDER_SPEC) == DEFAULT_LADDER
    custom = parse_ladder("360:700, 720:2800:160")
    assert custom == (Rung("720p", 720, 2800, 160), Rung("360p", 360, 700, 128))
    assert [r.name for r in ladder_for(1920, 1080, 30, rungs=custom)] == ["720p", "360p"]
    for bad in ("", "720", "720:x", "720:2800,720:1000", "50:100", "720:2800:9999", "a:b:c:d"):
        with pytest.raises(InvalidRequest):
            parse_ladder(bad)


@given(
    gop=st.integers(1, 60),
    indices=st.lists(st.integers(0, 2_000), min_size=1, max_size=200),
)
def test_the_grid_puts_a_keyframe_on_every_segment_boundary(gop: int, indices: list[int]) -> None:
    """Whatever frames arrive (late, repeated, with gaps), the encoded frames go forward,
    every segment boundary up to the last frame has its keyframe, and only boundaries do:
    so every segment is exactly ``gop`` frames long."""
    grid = Grid(gop)
    encoded = []
    for index in indices:
        slots = grid.place(index)
        if slots:
            assert not slots[-1].held  # the new picture is placed, after any held ones
            assert slots[-1].index <= index  # never later than it belongs
        encoded += slots
    numbers = [s.index for s in encoded]
    assert numbers == sorted(set(numbers))
    assert numbers[0] == 0 or min(indices) > 0
    keyframes = [s.index for s in encoded if s.keyframe]
    assert all(k % gop == 0 for k in keyframes)
    first = keyframes[0]
    assert keyframes == list(range(first, numbers[-1] + 1, gop))
    assert first == numbers[0]  # the first frame opens a segment


@settings(deadline=None, max_examples=60)  # parses every reload: ~0.1 s an example
@given(
    fps=st.floats(1, 120),
    segment_seconds=st.floats(0.5, 10),
    gaps=st.lists(st.integers(1, 90), min_size=1, max_size=60),
    restarts=st.sets(st.integers(0, 60), max_size=4),
    window=st.integers(1, 10),
)
def test_target_duration_never_changes_and_every_segment_is_within_it(
    fps: float, segment_seconds: float, gaps: list[int], restarts: set[int], window: int
) -> None:
    """The live playlist and the recording of a stream whose frames come with any gaps, and
    whose encoder restarts anywhere, stay valid HLS on every reload: one target duration
    (``segment_seconds`` rounded up), every EXTINF within it."""
    (rendition,) = ladder_for(640, 360, fps, segment_seconds=segment_seconds)[-1:]
    target = target_duration(segment_seconds)
    # A segment is one frame at least: at 1 fps a 0.5 s segment lasts 1 s, still <= target.
    assert rendition.period <= max(segment_seconds, 1 / fps) + 1e-9
    assert rounded(rendition.period) <= target
    grid = Grid(rendition.gop)
    live = MediaPlaylist(target, window)
    recording = MediaPlaylist(target, None, "EVENT")
    checker = HlsChecker()
    index, opened = -1, None
    for n, gap in enumerate(gaps):
        index += gap
        for slot in grid.place(index):
            if not slot.keyframe:
                continue
            if opened is not None:  # a segment ends where the next keyframe opens one
                duration = (slot.index - opened) / fps
                assert math.isclose(duration, rendition.period)
                for playlist in (live, recording):
                    playlist.add_segment(f"seg{live.next_sequence:06d}.ts", duration, T0 + n)
            opened = slot.index
        if n in restarts:
            live.restart()
            recording.restart()
        checker.media_playlist("live", live.render())
        if n % 10 == 0:
            checker.media_playlist("vod", recording.render())
    checker.media_playlist("vod", recording.render())
    assert f"#EXT-X-TARGETDURATION:{target}\n" in live.render()


def test_the_checker_catches_what_players_reject() -> None:
    checker = HlsChecker()
    pl = MediaPlaylist(target_duration=1, window=6)
    pl.add_segment("seg0.ts", 1.0, T0)
    checker.media_playlist("live", pl.render())
    with pytest.raises(PlaylistError, match="target duration changed"):
        checker.media_playlist("live", pl.render().replace("TARGETDURATION:1", "TARGETDURATION:2"))
    with pytest.raises(PlaylistError, match="rounds above"):
        checker.media_playlist("other", pl.render().replace("EXTINF:1.000", "EXTINF:1.600"))
    with pytest.raises(PlaylistError, match="segment 0 changed"):
        checker.media_playlist("live", pl.render().replace("seg0.ts", "segX.ts"))


def test_a_rung_is_never_upscaled_and_never_longer_than_a_segment() -> None:
    for fps in (23.976, 25, 29.97, 30, 50, 59.94, 60):
        for seconds in (0.5, 1, 2, 6):
            for r in ladder_for(1920, 1080, fps, segment_seconds=seconds):
                assert r.period <= seconds and r.gop >= 1
                assert r.period > seconds - 1 / fps  # but not a frame shorter


COST = EncodeCost(per_frame=0.0005, per_megapixel=0.006, decode_per_megapixel=0.0025,
                  scale_per_megapixel=0.001)  # fmt: skip


@given(cores=st.integers(1, 64), share=st.floats(0.0, 1.0), speed=st.floats(0.1, 10))
def test_the_ladder_is_sized_to_what_the_node_sustains(
    cores: int, share: float, speed: float
) -> None:
    """Top rungs go first; the lowest always stays; what is kept fits one encoding thread's
    share and the node's (or is that one rung); a rung more would not have fitted; more
    cores or a faster machine never get fewer rungs."""
    ladder = ladder_for(1920, 1080, 30, rungs=DEFAULT_LADDER)
    cost = EncodeCost(
        COST.per_frame / speed,
        COST.per_megapixel / speed,
        COST.decode_per_megapixel / speed,
        COST.scale_per_megapixel / speed,
    )
    source = (1920, 1080)
    kept = fit_ladder(ladder, Budget(cost, cores, share), source=source)
    assert kept == ladder[len(ladder) - len(kept) :] and kept

    def fits(rungs: list[Rendition]) -> bool:
        encode = sum(cost.rung(r, source) for r in rungs)
        return encode <= share and cost.source(*source, 30) + encode <= share * cores

    assert fits(kept) or len(kept) == 1
    if len(kept) < len(ladder):
        assert not fits(ladder[len(ladder) - len(kept) - 1 :])
    more = fit_ladder(ladder, Budget(cost, cores + 1, share), source=source)
    base = fit_ladder(ladder, Budget(COST, cores, share), source=source)  # speed 1
    assert len(more) >= len(kept)
    assert len(base) <= len(kept) if speed >= 1 else len(base) >= len(kept)
