"""The ladder, HLS playlists and the segment store: what the transcoder's output looks like."""

from __future__ import annotations

from pathlib import Path

import pytest

from liveshop.errors import InvalidRequest
from liveshop.media.hls import MediaPlaylist, master_playlist
from liveshop.media.ladder import ladder_for
from liveshop.media.segments import LocalDiskStore, cache_control, check_name, content_type

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


def test_the_master_playlist_lists_every_rendition() -> None:
    text = master_playlist(ladder_for(1280, 720, 30))
    assert text.startswith("#EXTM3U\n")
    assert text.count("#EXT-X-STREAM-INF:") == 3
    assert "RESOLUTION=1280x720" in text and "720p/index.m3u8" in text
    assert 'CODECS="avc1.640028,mp4a.40.2"' in text


def test_a_live_playlist_slides_and_marks_restarts() -> None:
    pl = MediaPlaylist(target_duration=2.0, window=3)
    for i in range(4):
        pl.add_segment(f"seg{i}.ts", 2.0, T0 + 2 * i)
    text = pl.render()
    assert "#EXT-X-MEDIA-SEQUENCE:1" in text and "seg0.ts" not in text
    assert "#EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:02.000Z" in text
    pl.restart()  # the transcoder came back: a discontinuity, not an error
    pl.add_segment("seg4.ts", 1.5, T0 + 9)
    text = pl.render()
    assert text.index("#EXT-X-DISCONTINUITY\n") < text.index("seg4.ts")
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:0" in text
    for i in range(5, 8):
        pl.add_segment(f"seg{i}.ts", 2.0, T0 + 2 * i)
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1" in pl.render()  # the marked one left the window
    pl.end()
    assert pl.render().endswith("#EXT-X-ENDLIST\n")


def test_a_recording_read_back_gives_the_live_playlist_a_restart_continues() -> None:
    recording = MediaPlaylist(target_duration=1.0, window=None, playlist_type="EVENT")
    for i in range(5):
        recording.add_segment(f"seg{i}.ts", 1.0, T0 + i)
    recording.restart()
    for i in range(5, 9):
        recording.add_segment(f"seg{i}.ts", 2.4 if i == 8 else 1.0, T0 + i)
    text = recording.render()
    assert "#EXT-X-TARGETDURATION:2" in text  # grew with the long segment, never shrinks
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
