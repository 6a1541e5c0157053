"""Failover choice and stream health: a stream is never without a picture, and the host
sees why (no input, no video, encoder behind, dropped frames, long keyframe interval)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
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


def test_a_whip_publishers_bytes_count_as_input() -> None:
    """A WebRTC source gets decoded frames, not bytes: the connection's received-bytes
    counter is what shows its bitrate (it read 0 kbps before)."""
    import time

    from liveshop.media.sources import TrackSource

    source = TrackSource("primary", "whip-1")
    for total in (0, 250_000, 500_000, 500_000, 400_000, 1_000_000):  # never counted twice
        source.received(total)
    report = source.meter.report(time.monotonic(), source=PRIMARY)
    assert report["input_kbps"] == 1600.0  # 1,000,000 bytes over the 5 s window


def test_the_encoder_load_is_the_time_per_frame_against_the_frame_rate() -> None:
    from liveshop.media.shedding import LoadMeter

    meter = LoadMeter(window=2.0, min_frames=10)
    for i in range(9):
        meter.add(i / 30, 1 / 60)
    assert meter.load(30) is None  # too few frames to say
    meter.add(9 / 30, 1 / 60)
    assert meter.load(30) == pytest.approx(0.5)  # half of real time: room to spare
    for i in range(60):
        meter.add(10 + i / 30, 1 / 20)  # the old readings leave the window
    assert meter.load(30) == pytest.approx(1.5)  # it cannot keep up
    meter.reset()
    assert meter.load(30) is None


def test_shedding_takes_the_top_rung_first_and_restores_it_after_room_for_long() -> None:
    from liveshop.media.shedding import Shedder

    shedder = Shedder([4.0, 2.0, 1.0], shed_after=3.0, restore_after=30.0)
    assert shedder.step(0.0, None) is None
    assert shedder.step(0.0, 1.4) is None  # behind, but not for long yet
    assert shedder.step(2.9, 1.4) is None
    assert shedder.step(3.0, 1.4) == 1  # the 1080p-like top rung goes
    assert shedder.step(4.0, 1.2) is None  # a new count starts after each change
    assert shedder.step(7.0, 1.2) == 2
    assert shedder.step(20.0, 3.0) is None  # the lowest rung is never shed
    assert shedder.shed == 2
    # Room for the next rung back is judged with its cost: 0.3 * (1 + 2) / 1 = 0.9 > 0.8.
    assert shedder.step(21.0, 0.3) is None and shedder.step(60.0, 0.3) is None
    assert shedder.step(61.0, 0.2) is None  # 0.6 predicted: the wait starts now
    assert shedder.step(90.9, 0.2) is None
    assert shedder.step(91.0, 0.2) == 1
    # Behind again soon after that restore: shed, and wait twice as long before the next.
    assert shedder.step(92.0, 1.5) is None and shedder.step(95.0, 1.5) == 2
    assert shedder.step(96.0, 0.1) is None and shedder.step(126.0, 0.1) is None
    assert shedder.step(156.0, 0.1) == 1
    # A drill (or a test) says "behind" without loading the machine.
    shedder.forced_load = 5.0
    assert shedder.step(157.0, 0.1) is None and shedder.step(160.0, 0.1) == 2


@settings(deadline=None)
@given(
    costs=st.lists(st.floats(0.01, 10), min_size=1, max_size=5),
    readings=st.lists(
        st.tuples(st.floats(0.0, 5.0), st.none() | st.floats(0.0, 3.0)), max_size=200
    ),
)
def test_shedding_never_drops_the_last_rung_and_never_flaps(
    costs: list[float], readings: list[tuple[float, float | None]]
) -> None:
    """Whatever the load does: the lowest rung always stays, changes are one rung at a time,
    a shed follows ``shed_after`` of load at or above ``high`` and a restore
    ``restore_after`` of room, so two changes are never closer than the shorter of both."""
    from liveshop.media.shedding import Shedder

    shedder = Shedder(costs, shed_after=3.0, restore_after=10.0)
    now, last_change, shed = 0.0, None, 0
    high_since: float | None = None
    for step, load in readings:
        now += step
        if load is None or load < shedder.high:
            high_since = None
        elif high_since is None:
            high_since = now
        changed = shedder.step(now, load)
        assert 0 <= shedder.shed <= len(costs) - 1
        if changed is None:
            assert shedder.shed == shed
            continue
        assert changed == shedder.shed and abs(changed - shed) == 1
        if changed > shed:
            assert high_since is not None and now - high_since >= 3.0
            high_since = None
        if last_change is not None:
            assert now - last_change >= 3.0
        last_change, shed = now, changed


def test_health_announces_shed_rungs_and_a_behind_encoder() -> None:
    report = health.with_ladder({"source": PRIMARY, "alerts": []}, shed=["1080p"], load=1.3)
    assert report["shed"] == ["1080p"] and report["encoder_load"] == 1.3
    assert report["alerts"] == [health.ENCODER_BEHIND, health.RUNGS_SHED]
    calm = health.with_ladder({"source": PRIMARY, "alerts": []}, shed=[], load=None)
    assert calm["alerts"] == [] and calm["encoder_load"] is None
