"""Recovery: a client that comes back with (offset, epoch) gets exactly what it missed, or a
fresh snapshot with recovered: false."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from liveshop.rooms.commands import Actor, Chat
from liveshop.rooms.history import History
from liveshop.rooms.room import Room, RoomInfo
from liveshop.tokens import Role

T0 = 1_800_000_000.0
VIEWER = Actor("v", "Vee", frozenset({Role.VIEWER}))


def _room(size: int = 100, age: float = 60.0) -> Room:
    return Room(RoomInfo("r", "R"), epoch="e1", history_size=size, history_age=age)


def test_recovery_returns_exactly_the_missed_events() -> None:
    room = _room()
    for i in range(10):
        room.apply(Chat(VIEWER, f"m{i}"), T0)
    reply = room.join((4, "e1"), T0)
    assert reply["recovered"] is True
    assert [e["offset"] for e in reply["events"]] == [5, 6, 7, 8, 9, 10]
    assert reply["offset"] == 10 and "recent_chat" not in reply
    assert room.join((10, "e1"), T0)["events"] == []  # nothing missed


def test_no_recovery_across_epochs_or_from_the_future() -> None:
    room = _room()
    room.apply(Chat(VIEWER, "x"), T0)
    for since in [(0, "other-epoch"), (2, "e1"), (-1, "e1")]:
        reply = room.join(since, T0)
        assert reply["recovered"] is False
        assert reply["recent_chat"][0]["text"] == "x"
    assert room.join(None, T0)["recovered"] is False


def test_gaps_older_than_the_window_get_a_snapshot() -> None:
    room = _room(size=5, age=60.0)
    for i in range(8):
        room.apply(Chat(VIEWER, f"m{i}"), T0)
    assert room.join((2, "e1"), T0)["recovered"] is False  # offsets 3.. fell out by count
    assert room.join((3, "e1"), T0)["recovered"] is True  # 4..8 still held
    assert room.join((3, "e1"), T0 + 61)["recovered"] is False  # and later by age
    assert room.join((8, "e1"), T0 + 61)["recovered"] is True  # nothing missed: always fine


@settings(max_examples=300)
@given(
    st.lists(st.floats(min_value=0, max_value=30), min_size=0, max_size=60),
    st.integers(min_value=0, max_value=70),
    st.floats(min_value=0, max_value=60),
    st.integers(min_value=1, max_value=40),
)
def test_recovery_is_exact_or_refused(
    gaps: list[float], stopped_at: int, later: float, size: int
) -> None:
    room = _room(size=size, age=45.0)
    now = T0
    for gap in gaps:
        now += gap
        room.apply(Chat(VIEWER, "m"), now)
    room.drain(now)
    stopped_at = min(stopped_at, room.offset)
    reply = room.join((stopped_at, "e1"), now + later)
    if reply["recovered"]:
        offsets = [e["offset"] for e in reply["events"]]
        assert offsets == list(range(stopped_at + 1, room.offset + 1))
    else:
        # Refused only when something it missed is no longer held.
        held = {e.offset for e in room.history}
        assert any(o not in held for o in range(stopped_at + 1, room.offset + 1))


def test_history_bounds() -> None:
    from liveshop.rooms.event import Event

    history = History(3, 10.0, [Event(i, "chat", {}, int(T0 * 1000) + i) for i in range(1, 6)])
    assert [e.offset for e in history] == [3, 4, 5]
    assert history.since(2, 5, T0) is not None
    assert history.since(1, 5, T0) is None
    history.trim(T0 + 20)
    assert len(history) == 0
