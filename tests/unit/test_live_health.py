"""Failover choice and stream health: a stream is never without a picture, and the host
sees why (no input, no video, encoder behind, dropped frames, long keyframe interval)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from liveshop.media import health
from liveshop.media.failover import BACKUP, PRIMARY, SLATE, SourceState, choose
from liveshop.media.failover import usable as is_usable
from liveshop.media.live import media_name

STALL = 2.0


def test_primary_wins_while_it_delivers_then_the_backup_then_the_slate() -> None:
    fresh, stale = SourceState(9.5), SourceState(5.0)
    assert choose({PRIMARY: fresh, BACKUP: fresh}, 10.0, STALL) == PRIMARY
    assert choose({PRIMARY: stale, BACKUP: fresh}, 10.0, STALL) == BACKUP
    assert choose({PRIMARY: stale, BACKUP: stale}, 10.0, STALL) == SLATE
    assert choose({PRIMARY: SourceState(None), BACKUP: fresh}, 10.0, STALL) == BACKUP
    assert choose({PRIMARY: SourceState(9.9, failed=True)}, 10.0, STALL) == SLATE
    assert choose({}, 10.0, STALL) == SLATE


@given(
    st.dictionaries(
        st.sampled_from([PRIMARY, BACKUP]),
        st.tuples(st.none() | st.floats(0, 100), st.booleans()),
    ),
    st.floats(0, 100),
)
def test_the_choice_is_always_a_usable_source_or_the_slate(
    sources: dict[str, tuple[float | None, bool]], now: float
) -> None:
    states = {slot: SourceState(last, failed) for slot, (last, failed) in sources.items()}
    chosen = choose(states, now, STALL)
    usable = [s for s in (PRIMARY, BACKUP) if s in states and is_usable(states[s], now, STALL)]
    assert chosen == (usable[0] if usable else SLATE)


def test_health_reports_rates_and_raises_alerts() -> None:
    meter = health.HealthMeter(window=5.0)
    for i in range(150):  # 30 fps for 5 s, a keyframe every 2 s of media time
        at = 100 + i / 30
        meter.source_frame(at, keyframe=i % 60 == 0, media_time=i / 30)
        meter.input_bytes(12_500, at)
        meter.encoded(at, 1 / 30, 1 / 60)  # twice real time
    report = meter.report(105.0, source=PRIMARY)
    assert report["fps"] == 30.0 and report["input_kbps"] == 3000.0
    assert report["keyframe_interval"] == 2.0 and report["encoder_speed"] == 2.0
    assert report["alerts"] == []
    for i in range(150):
        meter.encoded(105 + i / 30, 1 / 30, 1 / 20)  # now slower than real time
    meter.dropped(109.0, 3)
    meter.source_frame(110.0, keyframe=True, media_time=10.0)  # 10 - 4 = 6 s since the last
    report = meter.report(110.0, source=PRIMARY)
    assert health.ENCODER_BEHIND in report["alerts"]
    assert health.FRAMES_DROPPED in report["alerts"] and report["dropped_frames"] == 3
    assert health.LONG_KEYFRAME_INTERVAL in report["alerts"]
    meter.source_error, meter.source_error_detail = health.NO_VIDEO, "audio only"
    assert health.slate_report([meter])["alerts"] == [health.NO_INPUT, health.NO_VIDEO]


def test_room_ids_map_to_store_names_one_to_one() -> None:
    ids = ["shop", "a:b", "a_3ab", "a_b", "x.y-z", "ü"]
    names = [media_name(i) for i in ids]
    assert len(set(names)) == len(ids)
    assert all(n.replace("_", "").replace(".", "").replace("-", "").isalnum() for n in names)


def test_restream_urls_are_checked_and_never_shown_with_their_key() -> None:
    import pytest

    from liveshop.errors import InvalidRequest
    from liveshop.media.restream import check_url, masked

    url = "rtmps://live.example.com:443/app/sk_live_secret"
    assert check_url(url) == url
    assert masked(url) == "rtmps://live.example.com:443/app/***"
    for bad in ("http://x/y", "rtmp://", "rtmp://host", "rtmp://a b/c", "file:///etc/passwd"):
        with pytest.raises(InvalidRequest):
            check_url(bad)
