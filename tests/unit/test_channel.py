"""A 24/7 channel under a controllable clock: shows start and end, cues fire while their
show is on screen, reminders go out once, emergency controls and what viewers are told."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveshop.errors import ChatFrozen, Forbidden, InvalidRequest, NotFound
from liveshop.rooms import router
from liveshop.rooms.channel import Channel, ChannelInfo, feed_room
from liveshop.rooms.commands import Actor, ChannelChanged, Chat, ChatSettings
from liveshop.rooms.room import Room, RoomInfo
from liveshop.rooms.router import Replay
from liveshop.rooms.runofshow import Cue, RunOfShow
from liveshop.rooms.schedule import Availability, Show
from liveshop.tokens import Role

T = 1_800_000_000.0
DEALS = ChannelInfo("deals", "Deals", "Deals", "EMEA", "Europe/London")


def live_show(show_id: str, start: float, minutes: float = 60, room: str = "r1") -> Show:
    return Show(show_id, "deals", show_id.title(), start, start + minutes * 60, ("ana",),
                room_id=room)  # fmt: skip


def test_a_channel_follows_its_schedule_and_says_so_only_on_change() -> None:
    show = live_show("morning", T + 60)
    replay = Replay("old", "/media/old/replay.m3u8", 600)
    channel = Channel(DEALS, shows=[show], replays=[replay])
    first = channel.tick(T, live_rooms={})
    assert first.view is not None and first.view["route"]["source"] == router.REPLAY
    assert first.view["next"]["show_id"] == "morning"
    assert channel.tick(T + 1, live_rooms={}).view is None  # the replay plays on: no news
    started = channel.tick(T + 60, live_rooms={})
    assert [s.show_id for s in started.started] == ["morning"]
    assert started.view is not None and started.view["now"]["status"] == "live"
    assert started.view["route"]["source"] == router.REPLAY  # the host is not on air yet
    on_air = channel.tick(T + 65, live_rooms={"r1": "/media/r1/master.m3u8"})
    assert on_air.view is not None and on_air.view["route"]["source"] == router.LIVE
    assert on_air.view["route"]["playlist"] == "/media/r1/master.m3u8"
    over = channel.tick(T + 60 + 3600, live_rooms={"r1": "/media/r1/master.m3u8"})
    assert [s.show_id for s in over.ended] == ["morning"]
    assert over.ended[0].ended_at == T + 60 + 3600
    assert over.view is not None and over.view["route"]["source"] == router.REPLAY


def test_cues_fire_on_time_only_while_their_show_is_on_screen() -> None:
    show = live_show("morning", T)
    run = RunOfShow(T)
    run.add(Cue("pin", 30, "pin", {"product_id": "kettle"}))
    run.add(Cue("deal", 90, "start_deal", {"sku": "kettle-1"}))
    run.add(Cue("poll", 900, "open_poll", {"question": "?", "options": ["a", "b"]}))
    channel = Channel(DEALS, shows=[show], runs={"morning": run})
    up = {"r1": "/m/r1.m3u8"}
    assert channel.tick(T + 10, up).cues == []
    # The host's stream drops at T+25: the pin waits for it instead of firing off screen.
    assert channel.tick(T + 31, {}).cues == []
    fired = channel.tick(T + 40, up)
    assert [c.cue_id for _, c in fired.cues] == ["pin"] and fired.runs == ["morning"]
    assert channel.tick(T + 41, up).cues == []  # once
    # An operator cuts to slate: the deal does not start on a slate; five minutes later it
    # is too late to start at all.
    channel.cut_to_slate("ops-1", "technical problem", T + 80)
    assert channel.tick(T + 95, up).cues == []
    stale = channel.tick(T + 90 + 301, up)
    assert stale.cues == [] and stale.runs == ["morning"]
    assert run.cues["deal"].status == "skipped" and run.log[-1]["how"] == "stale"
    channel.resume("ops-1", "fixed", T + 400)
    assert [c.cue_id for _, c in channel.tick(T + 901, up).cues] == ["poll"]


def test_reminders_go_out_once_and_only_the_nearest_when_late() -> None:
    soon = live_show("soon", T + 3600)
    later = live_show("later", T + 7200, room="r2")
    channel = Channel(DEALS, shows=[soon, later], reminder_leads=(900, 60))
    assert channel.tick(T, {}).reminders == []
    assert [(s.show_id, lead) for s, lead in channel.tick(T + 2700, {}).reminders] == [
        ("soon", 900)
    ]
    assert channel.tick(T + 2701, {}).reminders == []  # once
    # The channel was down from before the 15-minute mark of "later" until 30 s before it:
    # one reminder (the 1-minute one), not two.
    late = channel.tick(T + 7170, {}).reminders
    assert [(s.show_id, lead) for s, lead in late] == [("later", 60)]
    assert ("later", 900) in channel.reminded
    # A restart with what storage says was sent sends nothing again.
    again = Channel(DEALS, shows=[soon, later], reminded=channel.reminded,
                    reminder_leads=(900, 60))  # fmt: skip
    assert again.tick(T + 7175, {}).reminders == []


def test_emergency_controls_need_a_reason_and_are_audited() -> None:
    show = live_show("morning", T)
    channel = Channel(DEALS, shows=[show])
    up = {"r1": "/m/r1.m3u8", "r9": "/m/r9.m3u8"}
    channel.tick(T + 1, up)
    with pytest.raises(InvalidRequest):
        channel.cut_to_slate("ops-1", "   ", T + 2)
    audit = channel.cut_to_slate("ops-1", "rights issue", T + 2)
    assert (audit.action, audit.by, audit.reason, audit.show_id) == (
        "cut_to_slate", "ops-1", "rights issue", "morning",
    )  # fmt: skip
    cut = channel.tick(T + 2, up)
    assert cut.view is not None and cut.view["route"]["source"] == router.SLATE
    assert cut.view["override"]["reason"] == "rights issue"
    channel.switch_to("r9", "ops-1", "backup studio", T + 3)
    switched = channel.tick(T + 3, up)
    assert switched.view is not None and switched.view["route"]["source"] == router.OVERRIDE
    assert switched.view["route"]["room_id"] == "r9"
    lifted = channel.resume("ops-1", "back to schedule", T + 4)
    assert lifted.details["lifted"]["room_id"] == "r9"
    with pytest.raises(NotFound):
        channel.resume("ops-1", "twice", T + 5)
    rooms, frozen = channel.freeze_chat(True, "ops-1", "raid", T + 5)
    assert rooms == [feed_room("deals"), "r1"] and frozen.action == "freeze_chat"
    ended, audit = channel.end_show("morning", "ops-1", "host unwell", T + 6)
    assert ended.status == "ended" and ended.ended_at == T + 6
    with pytest.raises(InvalidRequest):
        channel.end_show("morning", "ops-1", "again", T + 7)
    after = channel.tick(T + 7, up)
    assert after.view is not None and after.view["route"]["source"] == router.SLATE
    assert after.ended == []  # ended by hand, not by the clock


def test_a_thaw_reaches_every_room_frozen_before_whatever_is_on_air_now() -> None:
    first, second = live_show("first", T, room="r1"), live_show("second", T + 3600, room="r2")
    channel = Channel(DEALS, shows=[first, second])
    rooms, _ = channel.freeze_chat(True, "ops", "raid", T + 10)
    assert rooms == [feed_room("deals"), "r1"]
    thawed, audit = channel.freeze_chat(False, "ops", "over", T + 3700)
    assert thawed == [feed_room("deals"), "r2", "r1"] and audit.action == "unfreeze_chat"
    with pytest.raises(InvalidRequest):
        Availability("Nowhere/Land")
    with pytest.raises(InvalidRequest):
        Availability("UTC", ((0, dt.time(22), dt.time(21)),))


def test_a_room_tells_its_viewers_what_the_channel_plays_and_freezes_chat() -> None:
    room = Room(RoomInfo(feed_room("deals"), "Deals", "deals"), epoch="e1")
    service = Actor("channel:deals", "Deals", frozenset({Role.SERVICE}))
    viewer = Actor("bo", "Bo", frozenset({Role.VIEWER}))
    channel = Channel(DEALS, shows=[live_show("morning", T)])
    view = channel.tick(T + 1, {"r1": "/m/r1.m3u8"}).view
    assert view is not None
    room.apply(ChannelChanged(view), T + 1)
    room.apply(ChannelChanged({**view, "route": {**view["route"], "at": T + 2}}), T + 2)
    tick = room.drain(T + 2)
    assert [e.kind for e in tick.events] == ["route_changed"]  # one change, one event
    assert tick.state["channel"]["route"]["source"] == "live"
    assert room.snapshot(T + 3)["channel"]["now"]["show_id"] == "morning"
    moderator = Actor("mod", "Mod", frozenset({Role.MODERATOR}))
    with pytest.raises(Forbidden):  # an operator's control, not a moderator's
        room.apply(ChatSettings(moderator, frozen=True), T + 3)
    room.apply(ChatSettings(service, frozen=True), T + 3)
    with pytest.raises(ChatFrozen):
        room.apply(Chat(viewer, "hello?"), T + 4)
    room.apply(Chat(service, "we'll be right back"), T + 4)  # staff still speak
    room.apply(ChatSettings(service, frozen=False), T + 5)
    room.apply(Chat(viewer, "back!"), T + 6)
    restored = Room.restore(room.info, epoch="e1", offset=room.offset,
                            state=room.durable_state(), history=[])  # fmt: skip
    assert restored.channel == room.channel


def test_room_activity_reports_counters_and_the_events_analytics_counts() -> None:
    room = Room(RoomInfo("r1", "Show", "deals"), epoch="e1")
    viewer = Actor("bo", "Bo", frozenset({Role.VIEWER}))
    room.apply(Chat(viewer, "one"), T)
    first = room.activity(None, T)
    assert first["events"] == [] and first["offset"] == 1 and not first["gap"]
    room.apply(Chat(viewer, "two"), T + 1)
    later = room.activity((1, "e1"), T + 1)
    assert [e["text"] for e in later["events"]] == ["two"]
    assert room.activity((1, "other-epoch"), T + 1)["gap"]


def _any_show(n: int, start: int, minutes: int, room: str | None, premiere: bool) -> Show:
    kind = "premiere" if premiere else "live"
    recording = "/m/p.m3u8" if premiere else None
    return Show(f"s{n}", "deals", "x", T + start, T + start + minutes * 60, ("ana",), kind,
                recording=recording, room_id=room)  # fmt: skip


any_show = st.builds(
    _any_show, st.integers(0, 99), st.integers(0, 7200), st.integers(1, 120),
    st.sampled_from(["r1", "r2", None]), st.booleans(),
)  # fmt: skip
shows = st.lists(any_show, max_size=6, unique_by=lambda s: s.show_id)
steps = st.lists(
    st.tuples(
        st.integers(1, 900),
        st.sets(st.sampled_from(["r1", "r2", "r9"])),
        st.sampled_from([None, "cut", "switch", "resume", "end"]),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(shows, steps, st.booleans())
def test_a_channel_always_has_something_to_play(
    calendar: list[Show], timeline: list[tuple[int, set[str], str | None]], with_replays: bool
) -> None:
    """Whatever the calendar, the streams that fail and the controls operators use, every
    tick routes the channel to something playable, and every change is published."""
    replays = [Replay("old", "/m/old.m3u8", 900)] if with_replays else []
    channel = Channel(DEALS, shows=calendar, replays=replays)
    now = T
    published = None
    for step, up, control in timeline:
        now += step
        if control == "cut":
            channel.cut_to_slate("ops", "why", now)
        elif control == "switch":
            channel.switch_to("r9", "ops", "why", now)
        elif control == "resume" and channel.override is not None:
            channel.resume("ops", "why", now)
        elif control == "end":
            current = channel.on_air(now)
            if current is not None:
                channel.end_show(current.show_id, "ops", "why", now)
        tick = channel.tick(now, {r: f"/m/{r}.m3u8" for r in up})
        assert channel.route is not None
        playing = channel.route
        assert playing.source == router.SLATE or playing.playlist
        if playing.source in (router.LIVE, router.OVERRIDE):
            assert playing.room_id in up
        if tick.view is not None:
            published = tick.view["route"]
        assert published is not None
        assert (published["source"], published["playlist"]) == (playing.source, playing.playlist)
