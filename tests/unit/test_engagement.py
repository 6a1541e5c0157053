"""Polls, Q&A, giveaways, the product queue and presence, with their invariants."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveshop.commerce.product import Product
from liveshop.errors import AlreadyDone, AudienceRestricted, Closed, Forbidden, InvalidRequest
from liveshop.rooms.commands import (
    Actor,
    Ask,
    Chat,
    ClosePoll,
    CreatePoll,
    DrawGiveaway,
    EnterGiveaway,
    GiftSent,
    Joined,
    MarkAnswered,
    OpenGiveaway,
    Pin,
    QueueProduct,
    ReportViewers,
    SendGift,
    UnqueueProduct,
    Upvote,
    Vote,
)
from liveshop.rooms.gift import GiftReceipt
from liveshop.rooms.giveaway import draw_winners, entrants_digest
from liveshop.rooms.room import MAX_QUEUE, Room, RoomInfo
from liveshop.tokens import Role

T0 = 1_800_000_000.0
HOST = Actor("host", "Host", frozenset({Role.HOST}))
ANON = Actor("anon", "Anon", frozenset({Role.ANONYMOUS}))


def viewer(i: int | str, *badges: str) -> Actor:
    return Actor(f"u{i}", f"User {i}", frozenset({Role.VIEWER}), frozenset(badges))


def room() -> Room:
    return Room(RoomInfo("r", "R"), epoch="e")


def product(i: int) -> Product:
    return Product(f"sku-{i}", f"Thing {i}", 100 + i, "USD")


def test_poll_lifecycle_tallies_and_close_on_time() -> None:
    r = room()
    poll_id = r.apply(CreatePoll(HOST, "Which colour?", ("red", "blue"), 60), T0)["poll_id"]
    r.apply(Vote(viewer(1), poll_id, 0), T0)
    r.apply(Vote(viewer(2), poll_id, 1), T0)
    with pytest.raises(AlreadyDone):
        r.apply(Vote(viewer(1), poll_id, 1), T0)
    with pytest.raises(InvalidRequest):
        r.apply(Vote(viewer(3), poll_id, 2), T0)
    with pytest.raises(Forbidden):
        r.apply(Vote(ANON, poll_id, 0), T0)
    tick = r.drain(T0)
    assert tick.state["polls"] == {str(poll_id): [1, 1]}
    # The poll closes by itself at its end time, with the final tallies as an event.
    closed = r.drain(T0 + 61).events
    assert closed[0].kind == "poll_closed" and closed[0].data["poll"]["tallies"] == [1, 1]
    with pytest.raises(Closed):
        r.apply(Vote(viewer(4), poll_id, 0), T0 + 62)


def test_poll_validation_and_changeable_votes() -> None:
    r = room()
    for options in [("only",), tuple("abcdefg"), ("a", "a")]:
        with pytest.raises(InvalidRequest):
            r.apply(CreatePoll(HOST, "Q?", options, 60), T0)
    with pytest.raises(Forbidden):
        r.apply(CreatePoll(viewer(1), "Q?", ("a", "b"), 60), T0)
    poll_id = r.apply(CreatePoll(HOST, "Q?", ("a", "b"), 60, allow_change=True), T0)["poll_id"]
    r.apply(Vote(viewer(1), poll_id, 0), T0)
    r.apply(Vote(viewer(1), poll_id, 1), T0)
    assert r.polls[poll_id].tallies() == [0, 1]
    r.apply(ClosePoll(HOST, poll_id), T0)
    with pytest.raises(Closed):
        r.apply(ClosePoll(HOST, poll_id), T0)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 3)), max_size=200))
def test_a_vote_is_counted_once(votes: list[tuple[int, int]]) -> None:
    r = room()
    poll_id = r.apply(CreatePoll(HOST, "Q?", ("a", "b", "c", "d"), 60), T0)["poll_id"]
    first: dict[int, int] = {}
    for user, option in votes:
        try:
            r.apply(Vote(viewer(user), poll_id, option), T0)
            first.setdefault(user, option)
        except AlreadyDone:
            assert user in first
    tallies = r.polls[poll_id].tallies()
    assert sum(tallies) == len(first)
    assert tallies == [list(first.values()).count(o) for o in range(4)]


def test_questions_sorted_by_votes_and_answered() -> None:
    r = room()
    q1 = r.apply(Ask(viewer(1), "Does it ship to Canada?"), T0)["question_id"]
    q2 = r.apply(Ask(viewer(2), "What sizes?"), T0)["question_id"]
    for i in range(3):
        r.apply(Upvote(viewer(10 + i), q2), T0)
    r.apply(Upvote(viewer(10), q1), T0)
    with pytest.raises(AlreadyDone):
        r.apply(Upvote(viewer(10), q1), T0)
    assert [q["question_id"] for q in r.snapshot(T0)["questions"]] == [q2, q1]
    r.apply(MarkAnswered(HOST, q2), T0)
    assert [q["question_id"] for q in r.snapshot(T0)["questions"]] == [q1, q2]
    assert r.drain(T0).state["questions"] == {str(q1): 1, str(q2): 3}
    with pytest.raises(Forbidden):
        r.apply(MarkAnswered(viewer(1), q1), T0)


def test_giveaway_eligibility_single_entry_and_verifiable_draw() -> None:
    r = room()
    gid = r.apply(OpenGiveaway(HOST, "A kettle", ("chatted", "follower")), T0)["giveaway_id"]
    with pytest.raises(AudienceRestricted):
        r.apply(EnterGiveaway(viewer(1, "follower"), gid), T0)  # has not chatted
    r.apply(Chat(viewer(1, "follower"), "hi"), T0)
    r.apply(EnterGiveaway(viewer(1, "follower"), gid), T0)
    with pytest.raises(AlreadyDone):
        r.apply(EnterGiveaway(viewer(1, "follower"), gid), T0)
    for i in range(2, 8):
        r.apply(Chat(viewer(i, "follower"), "me!"), T0)
        r.apply(EnterGiveaway(viewer(i, "follower"), gid), T0)
    result = r.apply(DrawGiveaway(HOST, gid, 2, "seed-123"), T0)
    entrants = sorted(f"u{i}" for i in range(1, 8))
    assert result["winners"] == draw_winners(entrants, 2, "seed-123")  # anyone can verify
    assert result["entrants_sha256"] == entrants_digest(entrants)
    assert result["entrants"] == 7
    with pytest.raises(Closed):
        r.apply(EnterGiveaway(viewer(9, "follower"), gid), T0)
    with pytest.raises(Closed):
        r.apply(DrawGiveaway(HOST, gid, 1, "again"), T0)


@given(st.lists(st.integers(0, 20), max_size=100), st.integers(1, 5), st.text(max_size=8))
def test_giveaway_entries_unique_and_winners_among_them(
    users: list[int], winners: int, seed: str
) -> None:
    r = room()
    gid = r.apply(OpenGiveaway(HOST, "Prize"), T0)["giveaway_id"]
    for user in users:
        with contextlib.suppress(AlreadyDone):
            r.apply(EnterGiveaway(viewer(user), gid), T0)
    assert r.giveaways[gid].entrants == {f"u{u}" for u in users}
    drawn = r.apply(DrawGiveaway(HOST, gid, winners, seed), T0)["winners"]
    assert len(drawn) == len(set(drawn)) == min(winners, len(set(users)))
    assert set(drawn) <= {f"u{u}" for u in users}


def test_product_queue_and_pin() -> None:
    r = room()
    for i in range(MAX_QUEUE):
        r.apply(QueueProduct(HOST, product(i)), T0)
    with pytest.raises(InvalidRequest):
        r.apply(QueueProduct(HOST, product(99)), T0)
    with pytest.raises(AlreadyDone):
        r.apply(QueueProduct(HOST, product(0)), T0)
    r.apply(Pin(HOST, product(3)), T0)  # pinning takes it off the queue
    assert r.snapshot(T0)["pinned"]["product_id"] == "sku-3"
    assert len(r.snapshot(T0)["queue"]) == MAX_QUEUE - 1
    r.apply(UnqueueProduct(HOST, "sku-4"), T0)
    assert "sku-4" not in [p["product_id"] for p in r.snapshot(T0)["queue"]]


def test_presence_unique_viewers_and_recent_joiners() -> None:
    r = room()
    for i in range(30):
        r.apply(Joined(viewer(i % 25)), T0)
    state = r.drain(T0).state
    assert state["unique_viewers"] == 25
    assert len(state["recent_joiners"]) == 20
    assert state["recent_joiners"][-1] == {"id": "u4", "name": "User 4"}


def test_everything_survives_a_restore() -> None:
    r = room()
    r.apply(Pin(HOST, product(1)), T0)
    r.apply(QueueProduct(HOST, product(2)), T0)
    poll_id = r.apply(CreatePoll(HOST, "Q?", ("a", "b"), 600), T0)["poll_id"]
    r.apply(Vote(viewer(1), poll_id, 1), T0)
    qid = r.apply(Ask(viewer(2), "Price?"), T0)["question_id"]
    r.apply(Upvote(viewer(3), qid), T0)
    gid = r.apply(OpenGiveaway(HOST, "Prize", ("chatted",)), T0)["giveaway_id"]
    r.apply(Chat(viewer(4), "hello"), T0)
    r.apply(EnterGiveaway(viewer(4), gid), T0)
    r.apply(Joined(viewer(5)), T0)
    events = r.drain(T0).events
    again = Room.restore(
        r.info, epoch="e", offset=r.offset, state=r.durable_state(), history=events
    )
    assert again.snapshot(T0) | {"recent_joiners": []} == r.snapshot(T0) | {"recent_joiners": []}
    with pytest.raises(AlreadyDone):
        again.apply(Vote(viewer(1), poll_id, 0), T0)
    with pytest.raises(AlreadyDone):
        again.apply(EnterGiveaway(viewer(4), gid), T0)


def _receipt(send_id: int, sender: str, coins: int, **kw: object) -> GiftReceipt:
    return GiftReceipt(send_id, sender, sender.title(), "host", "rose", "Rose", 1, coins, 0, **kw)  # type: ignore[arg-type]


def test_a_paid_gift_is_published_once_and_ranks_the_sender() -> None:
    r = room()
    first = r.apply(GiftSent(_receipt(1, "ann", 10)), T0)
    replay = r.apply(GiftSent(_receipt(1, "ann", 10, replayed=True)), T0)
    assert replay["offset"] == first["offset"] and replay["replayed"] is True
    r.apply(GiftSent(_receipt(2, "bob", 500)), T0)
    r.apply(GiftSent(_receipt(3, "ann", 10)), T0)
    tick = r.drain(T0)
    assert [e.kind for e in tick.events] == ["gift", "gift", "gift"]
    assert tick.gift_offsets == [(1, 1), (2, 2), (3, 3)]
    assert tick.state["gift_leaderboard"] == [
        {"user": {"id": "bob", "name": "Bob"}, "coins": 500},
        {"user": {"id": "ann", "name": "Ann"}, "coins": 20},
    ]
    # A receipt already published by an earlier incarnation is answered, not republished.
    again = Room.restore(r.info, epoch="e", offset=r.offset, state=r.durable_state(), history=[])
    old = again.apply(GiftSent(_receipt(2, "bob", 500, replayed=True, event_offset=2)), T0)
    assert old["offset"] == 2 and not again.drain(T0).events
    with pytest.raises(InvalidRequest):
        r.apply(SendGift(viewer(1), "rose", 1, "k"), T0)


def test_the_state_version_moves_with_durable_changes_only() -> None:
    r = room()
    poll_id = r.apply_batch([CreatePoll(HOST, "Q?", ("a", "b"), 60)], T0)[0]["poll_id"]  # type: ignore[index]
    v = r.version
    r.apply_batch([ReportViewers("g1", 5)], T0)
    assert r.version == v  # a viewer report is not durable state
    r.apply_batch([Vote(viewer(1), poll_id, 0), Vote(viewer(1), poll_id, 1)], T0)
    assert r.version == v + 1  # the refused second vote changed nothing
    r.drain(T0)  # peak viewers rose to 5
    assert r.version == v + 2


def test_presence_is_published_at_most_once_a_second() -> None:
    r = room()
    r.apply(Joined(viewer(1)), T0)
    assert r.drain(T0).state["unique_viewers"] == 1
    r.apply(Joined(viewer(2)), T0 + 0.05)
    assert "unique_viewers" not in r.drain(T0 + 0.05).state
    assert r.drain(T0 + 1.0).state["unique_viewers"] == 2
