"""Programming: shows across time zones and daylight saving, recurring templates,
conflicts, availability, the grid; the always-on router; run-of-show cues."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveshop.errors import AlreadyDone, Conflict, InvalidRequest
from liveshop.rooms import router
from liveshop.rooms.router import Override, Replay, route
from liveshop.rooms.runofshow import STALE_AFTER, Cue, RunOfShow
from liveshop.rooms.schedule import (
    Availability,
    Calendar,
    Recurrence,
    Show,
    now_and_next,
)


def utc(*args: int) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


def hhmm(ts: float, tz: str) -> str:
    from zoneinfo import ZoneInfo

    return dt.datetime.fromtimestamp(ts, ZoneInfo(tz)).strftime("%a %Y-%m-%d %H:%M %Z")


def show(show_id: str, start: float, hours: float = 1, **kw: object) -> Show:
    return Show(show_id, kw.pop("channel_id", "deals"), show_id.title(), start,  # type: ignore[arg-type]
                start + hours * 3600, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_a_weekday_template_keeps_local_time_across_daylight_saving() -> None:
    # London goes to summer time on Sunday 2026-03-29: 20:00 local moves from 20:00 UTC
    # to 19:00 UTC, and the template follows local time.
    weekdays = Recurrence(frozenset(range(5)), dt.time(20), 3600, "Europe/London",
                          dt.date(2026, 3, 23))  # fmt: skip
    occurrences = weekdays.occurrences(utc(2026, 3, 23), utc(2026, 4, 4))
    assert [hhmm(s, "Europe/London") for s, _ in occurrences] == [
        f"{d} 20:00 {'GMT' if i < 5 else 'BST'}" for i, d in enumerate([
            "Mon 2026-03-23", "Tue 2026-03-24", "Wed 2026-03-25", "Thu 2026-03-26",
            "Fri 2026-03-27", "Mon 2026-03-30", "Tue 2026-03-31", "Wed 2026-04-01",
            "Thu 2026-04-02", "Fri 2026-04-03",
        ])
    ]  # fmt: skip
    assert occurrences[4][0] == utc(2026, 3, 27, 20) and occurrences[5][0] == utc(2026, 3, 30, 19)
    assert all(e - s == 3600 for s, e in occurrences)


def test_gap_and_overlap_local_times_resolve_predictably() -> None:
    # 02:30 does not exist in New York on 2026-03-08 (clocks jump 02:00 -> 03:00): it moves
    # forward by the gap. 01:30 on 2026-11-01 exists twice: the first one (EDT) is used.
    spring = Recurrence(frozenset({6}), dt.time(2, 30), 1800, "America/New_York",
                        dt.date(2026, 3, 8), dt.date(2026, 3, 8))  # fmt: skip
    [(start, _)] = spring.occurrences(utc(2026, 3, 1), utc(2026, 3, 15))
    assert hhmm(start, "America/New_York") == "Sun 2026-03-08 03:30 EDT"
    autumn = Recurrence(frozenset({6}), dt.time(1, 30), 1800, "America/New_York",
                        dt.date(2026, 11, 1), dt.date(2026, 11, 1))  # fmt: skip
    [(start, _)] = autumn.occurrences(utc(2026, 10, 25), utc(2026, 11, 8))
    assert start == utc(2026, 11, 1, 5, 30)  # 01:30 EDT, not 01:30 EST (06:30 UTC)


def test_regional_editions_air_at_their_own_prime_time() -> None:
    day = dt.date(2026, 7, 1)
    editions = {"America/New_York": 0, "Europe/Berlin": 0, "Asia/Tokyo": 0}
    for tz in editions:
        template = Recurrence(frozenset({day.weekday()}), dt.time(20), 3600, tz, day, day)
        [(start, _)] = template.occurrences(utc(2026, 6, 30), utc(2026, 7, 3))
        editions[tz] = int(start)
    assert editions == {
        "America/New_York": utc(2026, 7, 2, 0),  # 20:00 EDT
        "Europe/Berlin": utc(2026, 7, 1, 18),  # 20:00 CEST
        "Asia/Tokyo": utc(2026, 7, 1, 11),  # 20:00 JST (no daylight saving)
    }


def test_a_double_booked_channel_or_host_is_refused_naming_the_show() -> None:
    t = utc(2026, 5, 4, 18)
    calendar = Calendar([show("beauty-hour", t, hosts=("ana",))])
    with pytest.raises(Conflict, match="channel 'deals' is booked for 'Beauty-Hour'") as exc:
        calendar.check(show("tech-talk", t + 1800, hosts=("bo",)), {})
    assert exc.value.details["show"]["show_id"] == "beauty-hour"
    with pytest.raises(Conflict, match="host 'ana'"):
        calendar.check(show("elsewhere", t + 600, channel_id="home", hosts=("ana",)), {})
    calendar.check(show("after", t + 3600, hosts=("ana",)), {})  # back to back is fine
    calendar.check(show("beauty-hour", t + 300, hosts=("ana",)), {})  # moving itself is fine
    calendar.shows[0] = show("beauty-hour", t, hosts=("ana",), status="cancelled")
    calendar.check(show("tech-talk", t + 1800, hosts=("bo",)), {})  # a cancelled show frees


def test_creator_availability_is_checked_in_the_creators_time_zone() -> None:
    # Available Mondays 09:00-17:00 in Tokyo.
    ana = Availability("Asia/Tokyo", ((0, dt.time(9), dt.time(17)),))
    monday_10_jst = utc(2026, 5, 4, 1)
    Calendar().check(show("ok", monday_10_jst, hosts=("ana",)), {"ana": ana})
    with pytest.raises(Conflict, match="not available"):
        Calendar().check(show("late", monday_10_jst + 7 * 3600, hosts=("ana",)), {"ana": ana})


def test_expanding_a_template_books_the_free_dates_and_reports_the_clashes() -> None:
    template = Recurrence(frozenset(range(5)), dt.time(20), 3600, "UTC", dt.date(2026, 5, 4))
    calendar = Calendar([show("special", utc(2026, 5, 6, 19, 30), channel_id="deals")])
    make = show("nightly", 0, channel_id="deals", hosts=("ana",), series_id="nightly")
    booked, clashes = calendar.expand(template, make, utc(2026, 5, 4), utc(2026, 5, 9))
    assert [s.show_id for s in booked] == [
        "nightly-20260504", "nightly-20260505", "nightly-20260507", "nightly-20260508",
    ]  # fmt: skip
    assert [(s.show_id, c.show_id) for s, c in clashes] == [("nightly-20260506", "special")]
    assert all(s.series_id == "nightly" for s in booked)


def test_the_grid_shows_now_and_next_per_channel() -> None:
    t = utc(2026, 5, 4, 18)
    shows = [
        show("a", t - 1800), show("b", t + 1800), show("c", t + 9000),
        show("d", t + 600, channel_id="tech"), show("x", t - 60, status="cancelled"),
    ]  # fmt: skip
    grid = now_and_next(shows, t)
    ids = {c: {k: v.show_id if v else None for k, v in slot.items()} for c, slot in grid.items()}
    assert ids == {
        "deals": {"now": "a", "next": "b"},
        "tech": {"now": None, "next": "d"},
    }  # fmt: skip


def test_bad_shows_and_templates_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        show("short", 0, hours=0.001)
    with pytest.raises(InvalidRequest):
        show("premiere", 0, kind="premiere")  # no recording
    with pytest.raises(InvalidRequest, match="time zone"):
        Recurrence(frozenset({1}), dt.time(20), 3600, "Mars/Olympus", dt.date(2026, 1, 1))
    with pytest.raises(InvalidRequest):
        Recurrence(frozenset({7}), dt.time(20), 3600, "UTC", dt.date(2026, 1, 1))


# -- the router --------------------------------------------------------------------------

T = utc(2026, 5, 4, 18)
REPLAYS = [Replay("best", "/r/best.m3u8", 1200.0), Replay("second", "/r/2.m3u8", 600.0)]


def test_the_router_prefers_override_live_premiere_replay_slate() -> None:
    live = show("live", T - 600, room_id="room-1")
    premiere = show("prem", T + 3600, kind="premiere", recording="/r/prem.m3u8")
    rooms = {"room-1": "/m/room-1.m3u8", "room-9": "/m/room-9.m3u8"}
    assert route([live], T, live_rooms=rooms).source == router.LIVE
    # The host is late: the loop keeps playing until the stream is on air.
    assert route([live], T, live_rooms={}, replays=REPLAYS).source == router.REPLAY
    later = route([premiere], T + 3600 + 42, live_rooms=rooms)
    assert (later.source, later.playlist, later.offset) == (router.PREMIERE, "/r/prem.m3u8", 42)
    cut = Override("slate", by="ops", reason="rights issue", at=T)
    assert route([live], T, live_rooms=rooms, override=cut).source == router.SLATE
    switch = Override("stream", room_id="room-9", by="ops")
    assert route([live], T, live_rooms=rooms, override=switch).playlist == "/m/room-9.m3u8"
    assert route([], T, live_rooms={}).source == router.SLATE


def test_the_replay_loop_position_is_the_same_for_everyone() -> None:
    first = route([], 1000.0, live_rooms={}, replays=REPLAYS, loop_anchor=0)
    assert (first.show_id, first.offset) == ("best", 1000.0)
    wrapped = route([], 1800.0 * 3 + 1300, live_rooms={}, replays=REPLAYS, loop_anchor=0)
    assert (wrapped.show_id, wrapped.offset) == ("second", 100.0)


shows_strategy = st.lists(
    st.builds(
        lambda i, start, hours, kind, status, room: Show(
            f"s{i}",
            "deals",
            "S",
            start,
            start + hours * 3600,
            kind=kind,
            status=status,
            recording="/r.m3u8" if kind == "premiere" else None,
            room_id=room,
        ),
        st.integers(0, 50),
        st.floats(0, 20_000),
        st.floats(0.02, 3),
        st.sampled_from(["live", "premiere"]),
        st.sampled_from(["scheduled", "live", "ended", "cancelled"]),
        st.sampled_from([None, "r1", "r2"]),
    ),
    max_size=8,
)


@settings(max_examples=300)
@given(
    shows_strategy,
    st.floats(0, 30_000),
    st.sets(st.sampled_from(["r1", "r2", "r3"])),
    st.booleans(),
    st.none()
    | st.builds(
        Override, st.sampled_from(["slate", "stream"]), st.sampled_from([None, "r1", "r3"])
    ),
)
def test_the_router_never_leaves_a_channel_without_a_source(
    shows: list[Show], now: float, up: set[str], with_replays: bool, override: Override | None
) -> None:
    """Whatever the calendar, the failures (streams down) and the overrides, the route is
    playable: a stream that is on air, a recording, or the slate, in priority order."""
    rooms = {r: f"/m/{r}.m3u8" for r in up}
    replays = REPLAYS if with_replays else []
    chosen = route(shows, now, live_rooms=rooms, replays=replays, override=override)
    assert chosen.source in (router.LIVE, router.PREMIERE, router.REPLAY, router.SLATE,
                             router.OVERRIDE)  # fmt: skip
    if chosen.source == router.SLATE:
        assert chosen.playlist is None
    else:
        assert chosen.playlist  # something to play
    if chosen.source in (router.LIVE, router.OVERRIDE):
        assert chosen.room_id in up
    if override is not None:
        assert chosen.source in (router.OVERRIDE, router.SLATE)
        return
    on_air_live = [s for s in shows if s.on_air(now) and s.kind == "live" and s.room_id in up]
    premieres = [s for s in shows if s.on_air(now) and s.kind == "premiere"]
    if on_air_live or premieres:
        assert chosen.source in (router.LIVE, router.PREMIERE)
    elif with_replays:
        assert chosen.source == router.REPLAY and 0 <= chosen.offset < 1200
    else:
        assert chosen.source == router.SLATE


# -- run-of-show ---------------------------------------------------------------------------


def test_cues_fire_at_their_times_under_a_controllable_clock() -> None:
    run = RunOfShow(starts_at=T)
    run.add(Cue("pin-kettle", 60, "pin", {"product_id": "kettle"}))
    run.add(Cue("deal", 300, "start_deal", {"sku": "kettle-1", "price_minor": 999}))
    run.add(Cue("poll", 600, "open_poll", {"question": "Colour?", "options": ["red", "blue"]}))
    run.add(Cue("auction", 900, "start_auction", {"sku": "sneaker"}))
    assert run.due(T + 59) == []
    assert [c.cue_id for c in run.due(T + 61)] == ["pin-kettle"]
    assert run.due(T + 62) == []  # fired once
    run.reschedule("poll", 200, T + 100, by="host-1")  # the host moves the poll earlier
    assert [c.cue_id for c in run.due(T + 301)] == ["poll", "deal"]
    assert run.fire("auction", T + 400, by="host-1").status == "fired"  # early, by hand
    assert run.due(T + 10_000) == []
    assert [(e["cue_id"], e["event"], e.get("how")) for e in run.log] == [
        ("pin-kettle", "fired", "on_time"), ("poll", "rescheduled", None),
        ("poll", "fired", "on_time"), ("deal", "fired", "on_time"), ("auction", "fired", "early"),
    ]  # fmt: skip
    with pytest.raises(AlreadyDone):
        run.skip("auction", T + 500, by="host-1")
    restored = RunOfShow.from_state(run.to_state())
    assert restored.to_state() == run.to_state()


def test_stale_cues_are_skipped_not_fired_late_and_bad_cues_refused() -> None:
    run = RunOfShow(starts_at=T)
    run.add(Cue("deal", 60, "start_deal"))
    run.add(Cue("late", 120, "message", {"text": "hi"}))
    run.skip("late", T, by="host-1")
    assert run.due(T + 60 + STALE_AFTER + 1) == []  # the channel was down past it
    assert run.cues["deal"].status == "skipped" and run.log[-1]["how"] == "stale"
    for bad in (Cue("x", 10, "dance"), Cue("y", -1, "pin"), Cue("deal", 10, "pin")):
        with pytest.raises((InvalidRequest, AlreadyDone)):
            run.add(bad)
