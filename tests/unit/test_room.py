from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveshop.commerce.product import Product
from liveshop.errors import Forbidden, InvalidRequest, LiveshopError
from liveshop.rooms.chat import DEFAULT_REACTIONS
from liveshop.rooms.commands import (
    Actor,
    Ask,
    Chat,
    ChatSettings,
    Command,
    Joined,
    MarkAnswered,
    Pin,
    React,
    ReportViewers,
    StockChanged,
    StreamChanged,
    SystemMessage,
    Unpin,
    Upvote,
)
from liveshop.rooms.room import (
    MAX_CHAT_CHARS,
    MAX_OPEN_QUESTIONS_PER_USER,
    MAX_QUESTIONS,
    SNAPSHOT_CHAT,
    VIEWER_REPORT_TTL,
    Room,
    RoomInfo,
)
from liveshop.tokens import Role

T0 = 1_800_000_000.0
VIEWER = Actor("v1", "Vee", frozenset({Role.VIEWER}))
HOST = Actor("h1", "Host", frozenset({Role.HOST}))
NOBODY = Actor("n1", "Nobody", frozenset())
KETTLE = Product("sku-kettle", "Kettle", 5400, "USD", None)


def new_room() -> Room:
    return Room(RoomInfo("r1", "Room one"), epoch="e1")


def test_the_pinned_products_stock_counter_is_published_and_deals_are_events() -> None:
    room = new_room()
    view = {"sku": "k1", "product_id": KETTLE.product_id, "available": 5, "deal": None}
    assert room.apply(StockChanged(view), T0) == {"watching": False}  # nothing pinned
    room.apply(Pin(HOST, KETTLE), T0)
    room.drain(T0)
    assert room.apply(StockChanged(view), T0) == {"watching": True}
    assert room.drain(T0).state["stock"] == {"k1": view}
    room.apply(StockChanged(view), T0)
    assert "stock" not in room.drain(T0).state  # unchanged: not published again
    deal = {"deal_id": "d1", "phase": "live", "ends_at": T0 + 60}
    room.apply(StockChanged({**view, "available": 4, "deal": deal}), T0 + 1)
    tick = room.drain(T0 + 1)
    assert [e.kind for e in tick.events] == ["deal_started"]
    assert tick.state["stock"]["k1"]["available"] == 4
    room.apply(StockChanged({**view, "deal": {**deal, "phase": "ended"}}), T0 + 2)
    assert [e.kind for e in room.drain(T0 + 2).events] == ["deal_ended"]
    assert room.snapshot(T0 + 2)["stock"]["k1"]["deal"]["phase"] == "ended"
    other = {**view, "product_id": "another"}
    assert room.apply(StockChanged(other), T0 + 3) == {"watching": False}
    room.apply(Unpin(HOST), T0 + 3)
    assert room.drain(T0 + 3).state["stock"] == {}
    assert room.snapshot(T0 + 3)["stock"] == {}


def test_the_live_stream_is_state_and_its_start_alerts_and_end_are_events() -> None:
    room = new_room()
    live = {"stream_id": "s1", "status": "live", "hls": "/m.m3u8", "health": {"alerts": []}}
    room.apply(StreamChanged(live), T0)
    tick = room.drain(T0)
    assert [e.kind for e in tick.events] == ["stream_started"]
    assert tick.state["stream"] == live
    room.apply(StreamChanged(live), T0 + 1)
    assert room.drain(T0 + 1).state == {}  # unchanged: nothing published
    behind = {**live, "health": {"alerts": ["encoder_behind"]}}
    room.apply(StreamChanged(behind), T0 + 2)
    room.apply(StreamChanged(behind), T0 + 3)  # still behind: one alert event, not two
    tick = room.drain(T0 + 3)
    assert [(e.kind, e.data["alerts"]) for e in tick.events] == [
        ("stream_alert", ["encoder_behind"])
    ]
    slate = {**live, "status": "slate", "health": {"alerts": ["no_input"]}}
    room.apply(StreamChanged(slate), T0 + 4)
    assert [e.kind for e in room.drain(T0 + 4).events] == ["stream_alert"]  # not a restart
    room.apply(StreamChanged({**slate, "status": "ended"}), T0 + 5)
    assert [e.kind for e in room.drain(T0 + 5).events] == ["stream_ended"]
    assert room.snapshot(T0 + 5)["stream"]["status"] == "ended"
    restored = Room.restore(
        room.info, epoch="e2", offset=room.offset, state=room.durable_state(), history=[]
    )
    assert restored.stream == room.stream
    room.apply(StreamChanged({**live, "stream_id": "s2"}), T0 + 6)  # the next show
    assert [e.kind for e in room.drain(T0 + 6).events] == ["stream_started"]


def test_chat_gets_increasing_offsets_and_is_published_once() -> None:
    room = new_room()
    first = room.apply(Chat(VIEWER, "  hello  "), T0)
    second = room.apply(Chat(VIEWER, "again"), T0)
    assert (first["offset"], second["offset"]) == (1, 2)
    tick = room.drain(T0)
    assert [e.offset for e in tick.events] == [1, 2]
    assert tick.events[0].data == {"user": {"id": "v1", "name": "Vee"}, "text": "hello"}
    assert room.drain(T0).events == []


@pytest.mark.parametrize("text", ["", "   ", "x" * (MAX_CHAT_CHARS + 1)])
def test_empty_or_overlong_chat_is_refused_and_changes_nothing(text: str) -> None:
    room = new_room()
    with pytest.raises(InvalidRequest):
        room.apply(Chat(VIEWER, text), T0)
    assert room.offset == 0
    assert not room.drain(T0).events


def test_chat_needs_a_role_in_the_room() -> None:
    with pytest.raises(Forbidden):
        new_room().apply(Chat(NOBODY, "hi"), T0)


def test_only_staff_pin_unpin_and_post_system_messages() -> None:
    room = new_room()
    for command in (Pin(VIEWER, KETTLE), Unpin(VIEWER), SystemMessage(VIEWER, "x")):
        with pytest.raises(Forbidden):
            room.apply(command, T0)
    room.apply(Pin(HOST, KETTLE), T0)
    assert room.pinned == KETTLE
    assert room.snapshot(T0)["pinned"]["price_minor"] == 5400
    room.apply(Unpin(HOST), T0)
    assert room.pinned is None
    assert room.apply(Unpin(HOST), T0) == {"offset": None}  # nothing pinned: no event
    kinds = [e.kind for e in room.drain(T0).events]
    assert kinds == ["pin", "unpin"]


def test_a_bad_command_fails_alone_in_its_batch() -> None:
    room = new_room()
    results = room.apply_batch([Chat(VIEWER, "ok"), Chat(VIEWER, ""), Chat(VIEWER, "ok2")], T0)
    assert results[0] == {"offset": 1, "message_id": 1}
    assert isinstance(results[1], InvalidRequest)
    assert results[2]["offset"] == 2  # type: ignore[index]


def test_reactions_are_counted_per_tick_and_published_as_totals() -> None:
    room = new_room()
    for _ in range(1000):
        room.apply(React(VIEWER, "heart", 1), T0)
    room.apply(React(VIEWER, "fire", 5), T0)
    tick = room.drain(T0)
    assert tick.events == []  # taps are not events: a million taps cost one message per tick
    assert tick.state["reactions"] == {"heart": 1000, "fire": 5}
    room.apply(React(VIEWER, "fire", 2), T0)
    tick = room.drain(T0)
    assert tick.state["reaction_burst"] == {"fire": 2}
    assert tick.state["reactions"] == {"heart": 1000, "fire": 7}


@pytest.mark.parametrize(("kind", "count"), [("Heart", 1), ("", 1), ("x" * 33, 1), ("ok", 0)])
def test_bad_reactions_are_refused(kind: str, count: int) -> None:
    with pytest.raises(InvalidRequest):
        new_room().apply(React(VIEWER, kind, count), T0)


def test_reactions_come_from_the_rooms_set() -> None:
    """Made-up kinds are refused, so no viewer can fill a shared table and lock everyone
    else out of ``heart``; the host configures the set."""
    room = new_room()
    for i in range(100):
        with pytest.raises(InvalidRequest):
            room.apply(React(VIEWER, f"junk{i}"), T0)
    room.apply(React(VIEWER, "heart"), T0)
    assert room.drain(T0).state["reactions"] == {"heart": 1}
    assert room.snapshot(T0)["chat_settings"]["reactions"] == list(DEFAULT_REACTIONS)
    with pytest.raises(Forbidden):
        room.apply(ChatSettings(VIEWER, reactions=("junk",)), T0)
    with pytest.raises(InvalidRequest):
        room.apply(ChatSettings(HOST, reactions=tuple(f"k{i}" for i in range(17))), T0)
    room.apply(ChatSettings(HOST, reactions=("heart", "rose")), T0)
    room.apply(React(VIEWER, "rose", 2), T0)
    with pytest.raises(InvalidRequest):
        room.apply(React(VIEWER, "fire"), T0)


def test_recent_joiners_list_each_user_once() -> None:
    room = new_room()
    for _ in range(30):
        room.apply(Joined(VIEWER), T0)
    room.apply(Joined(HOST), T0)
    room.apply(Joined(VIEWER), T0)
    assert room.drain(T0).state["recent_joiners"] == [
        {"id": "h1", "name": "Host"},
        {"id": "v1", "name": "Vee"},
    ]


def test_questions_are_bounded_per_user_and_a_full_room_forgets_answered_ones() -> None:
    room = new_room()
    for i in range(MAX_OPEN_QUESTIONS_PER_USER):
        room.apply(Ask(VIEWER, f"question {i}?"), T0 + i * 10)
    with pytest.raises(InvalidRequest, match="unanswered"):
        room.apply(Ask(VIEWER, "one more?"), T0 + 100)
    first = next(iter(room.questions))
    room.apply(MarkAnswered(HOST, first), T0 + 101)
    room.apply(Ask(VIEWER, "now may I?"), T0 + 110)  # an answer frees a turn
    for i in range(MAX_QUESTIONS - len(room.questions)):
        room.apply(Ask(Actor(f"u{i}", "U", frozenset({Role.VIEWER})), "q?"), T0 + 200)
    room.apply(Upvote(Actor("u0", "U", frozenset({Role.VIEWER})), first), T0 + 201)
    room.apply(Ask(Actor("late", "L", frozenset({Role.VIEWER})), "full?"), T0 + 202)
    assert len(room.questions) == MAX_QUESTIONS and first not in room.questions
    room.drain(T0 + 203)  # a forgotten question's pending tally is dropped with it
    # Full of unanswered questions (many accounts asking at once): the least upvoted,
    # oldest first, makes way; a question with votes stays.
    oldest = next(iter(room.questions))
    room.apply(Upvote(Actor("fan", "F", frozenset({Role.VIEWER})), oldest), T0 + 204)
    room.apply(Ask(Actor("later", "L", frozenset({Role.VIEWER})), "still?"), T0 + 205)
    assert len(room.questions) == MAX_QUESTIONS and oldest in room.questions


def test_viewers_are_the_sum_of_fresh_gateway_reports() -> None:
    room = new_room()
    room.apply(ReportViewers("g1", 10), T0)
    room.apply(ReportViewers("g2", 5), T0)
    tick = room.drain(T0)
    assert tick.state["viewers"] == 15
    assert tick.state["peak_viewers"] == 15
    room.apply(ReportViewers("g1", 3), T0 + 1)
    assert room.drain(T0 + 1).state["viewers"] == 8
    assert "viewers" not in room.drain(T0 + 1).state  # unchanged: not republished
    # g2 stops reporting (its gateway died): it stops counting.
    room.apply(ReportViewers("g1", 3), T0 + VIEWER_REPORT_TTL + 1.5)
    tick = room.drain(T0 + VIEWER_REPORT_TTL + 1.5)
    assert tick.state["viewers"] == 3
    assert tick.state["peak_viewers"] == 15
    with pytest.raises(InvalidRequest):
        room.apply(ReportViewers("g1", -1), T0)


def test_snapshot_holds_recent_chat_pin_and_counts() -> None:
    room = new_room()
    room.apply(Pin(HOST, KETTLE), T0)
    for i in range(SNAPSHOT_CHAT + 10):
        room.apply(Chat(VIEWER, f"m{i}"), T0 + 2 * i)  # within the per-user rate limit
    snap = room.snapshot(T0)
    assert snap["offset"] == SNAPSHOT_CHAT + 11
    assert snap["epoch"] == "e1"
    assert len(snap["recent_chat"]) == SNAPSHOT_CHAT
    assert snap["recent_chat"][-1]["text"] == f"m{SNAPSHOT_CHAT + 9}"
    assert snap["pinned"]["product_id"] == "sku-kettle"


def test_restore_brings_back_state_history_and_offset() -> None:
    room = new_room()
    room.apply(Pin(HOST, KETTLE), T0)
    room.apply(Chat(VIEWER, "before restart"), T0)
    room.apply(React(VIEWER, "heart", 3), T0)
    events = room.drain(T0).events
    again = Room.restore(
        room.info, epoch=room.epoch, offset=room.offset, state=room.durable_state(), history=events
    )
    assert again.snapshot(T0) == room.snapshot(T0)
    assert again.apply(Chat(VIEWER, "after"), T0)["offset"] == 3


commands = st.one_of(
    st.builds(Chat, st.sampled_from([VIEWER, HOST, NOBODY]), st.text(max_size=20)),
    st.builds(React, st.just(VIEWER), st.sampled_from(["heart", "fire", "BAD"]), st.integers(0, 3)),
    st.builds(Pin, st.sampled_from([VIEWER, HOST]), st.just(KETTLE)),
    st.builds(Unpin, st.sampled_from([VIEWER, HOST])),
)


@settings(max_examples=200)
@given(st.lists(st.lists(commands, max_size=8), max_size=12))
def test_offsets_strictly_increase_and_each_accepted_event_is_published_once(
    batches: list[list[Command]],
) -> None:
    room = new_room()
    published: list[int] = []
    accepted: list[int] = []
    reactions = 0
    for batch in batches:
        for command, result in zip(batch, room.apply_batch(batch, T0), strict=True):
            if isinstance(result, LiveshopError):
                continue
            if result.get("offset") is not None:
                accepted.append(result["offset"])
            if isinstance(command, React):
                reactions += command.count
        published += [e.offset for e in room.drain(T0).events]
    assert published == sorted(set(published))  # strictly increasing, no repeats
    assert published == accepted
    assert published == list(range(1, room.offset + 1))
    assert sum(room.reactions.values()) == reactions
