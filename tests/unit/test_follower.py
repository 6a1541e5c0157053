"""The client-side follower: offsets, gaps and epochs, as the load tests and drills judge
"nothing missed"."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from liveshop.follower import RoomFollower, Verdict

EPOCH = "r-1"


def events(first: int, last: int) -> list[dict[str, Any]]:
    return [{"offset": o, "kind": "chat", "text": f"t{o}"} for o in range(first, last + 1)]


def push(first: int, last: int, epoch: str = EPOCH) -> dict[str, Any]:
    return {"push": "room", "room": "r", "epoch": epoch, "events": events(first, last)}


def snapshot(offset: int, epoch: str = EPOCH) -> dict[str, Any]:
    return {"recovered": False, "epoch": epoch, "offset": offset}


def recovery(since: int, upto: int) -> dict[str, Any]:
    return {"recovered": True, "epoch": EPOCH, "offset": upto, "events": events(since + 1, upto)}


def test_pushes_before_the_subscribe_reply_are_ignored() -> None:
    follower = RoomFollower("r", keep=True)
    assert follower.since() is None
    assert follower.on_push(push(1, 1)) == (Verdict.IGNORED, [])
    follower.on_subscribed(snapshot(1))
    verdict, taken = follower.on_push(push(2, 3))
    assert verdict is Verdict.OK and [e["offset"] for e in taken] == [2, 3]
    assert follower.since() == {"offset": 3, "epoch": EPOCH}


def test_a_jump_stops_at_the_gap_and_asks_for_a_resubscribe() -> None:
    follower = RoomFollower("r", keep=True)
    follower.on_subscribed(snapshot(0))
    verdict, taken = follower.on_push({**push(1, 1), "events": events(1, 1) + events(4, 5)})
    assert verdict is Verdict.GAP and [e["offset"] for e in taken] == [1]
    assert follower.since() == {"offset": 1, "epoch": EPOCH} and follower.gaps == 1
    assert follower.on_push(push(6, 6))[0] is Verdict.IGNORED  # until the new reply
    follower.on_subscribed(recovery(1, 6))
    assert [e["offset"] for e in follower.events] == [1, 2, 3, 4, 5, 6]


def test_a_new_epoch_forgets_the_offset() -> None:
    follower = RoomFollower("r")
    follower.on_subscribed(snapshot(10))
    assert follower.on_push(push(1, 1, epoch="r-2"))[0] is Verdict.NEW_EPOCH
    assert follower.since() is None and follower.new_epochs == 1


def test_repeated_events_are_counted_not_taken() -> None:
    follower = RoomFollower("r", keep=True)
    follower.on_subscribed(snapshot(3))
    verdict, taken = follower.on_push(push(2, 4))
    assert verdict is Verdict.OK and [e["offset"] for e in taken] == [4]
    assert follower.duplicates == 2


@given(
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=40),
    dropped=st.sets(st.integers(0, 39)),
)
def test_recovery_returns_exactly_what_was_missed(sizes: list[int], dropped: set[int]) -> None:
    """Whatever pushes are lost, a follower that resubscribes on every gap ends up with
    every event once, in order."""
    follower = RoomFollower("r", keep=True)
    follower.on_subscribed(snapshot(0))
    first = 1
    for i, size in enumerate(sizes):
        last = first + size - 1
        if i not in dropped:
            verdict, _ = follower.on_push(push(first, last))
            if verdict is Verdict.GAP:
                since = follower.since()
                assert since is not None
                follower.on_subscribed(recovery(since["offset"], last))
        first = last + 1
    total = first - 1
    if follower.offset != total:  # the last pushes were lost: the next reconnect recovers
        follower.on_subscribed(recovery(follower.offset or 0, total))
    assert [e["offset"] for e in follower.events] == list(range(1, total + 1))
    assert follower.duplicates == 0
