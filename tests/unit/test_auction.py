"""Auction rules: proxy bids, reserve, anti-sniping; the highest valid bid wins."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveshop.commerce.auction import Auction, AuctionTerms
from liveshop.errors import (
    AuctionNotLive,
    BidTooLow,
    IdempotencyMismatch,
    InvalidRequest,
    LiveshopError,
)

T0 = 1_800_000_000.0


def auction(**terms: Any) -> Auction:
    base: dict[str, Any] = {
        "auction_id": "a1", "start_price": 1000, "min_increment": 100, "starts_at": T0,
        "ends_at": T0 + 60,
    }  # fmt: skip
    t = AuctionTerms(**{**base, **terms})
    t.check()
    return Auction(t)


def test_proxy_bids_answer_for_their_bidder_one_increment_at_a_time() -> None:
    a = auction()
    assert a.bid("ann", 1000, 5000, "k1", T0 + 1) == {
        "auction_id": "a1", "leading": True, "price": 1000, "ends_at": T0 + 60,
    }  # fmt: skip
    with pytest.raises(BidTooLow) as low:
        a.bid("bob", 1000, None, "k1", T0 + 2)
    assert low.value.details == {"minimum": 1100}
    answer = a.bid("bob", 1500, None, "k2", T0 + 2)
    assert (answer["leading"], answer["price"], a.leader) == (False, 1600, "ann")
    assert [(h["bidder"], h["amount"], h["auto"]) for h in a.history[-2:]] == [
        ("bob", 1500, False), ("ann", 1600, True),
    ]  # fmt: skip
    answer = a.bid("bob", 6000, None, "k3", T0 + 3)  # above ann's maximum
    assert (answer["leading"], answer["price"], a.leader) == (True, 6000, "bob")
    with pytest.raises(BidTooLow):  # the leader can only raise their own maximum
        a.bid("bob", 6000, 6000, "k4", T0 + 4)
    assert a.bid("bob", 6000, 9000, "k4", T0 + 4)["price"] == 6000  # no bidding against self


def test_equal_maximums_go_to_the_earlier_bidder() -> None:
    a = auction()
    a.bid("ann", 1000, 3000, "k", T0 + 1)
    a.bid("bob", 1100, 3000, "k", T0 + 2)
    assert (a.leader, a.price) == ("ann", 3000)


def test_the_reserve_price_decides_whether_there_is_a_sale() -> None:
    a = auction(reserve_price=4000)
    a.bid("ann", 1000, None, "k", T0 + 1)
    assert a.view(T0 + 1)["reserve_met"] is False
    a.bid("bob", 1100, 8000, "k", T0 + 2)
    assert (a.leader, a.price, a.reserve_met()) == ("bob", 4000, True)  # raised to the reserve
    assert a.close(T0 + 59) is None
    assert a.close(T0 + 60) == {"winner": "bob", "price": 4000, "reason": "sold"}
    b = auction(reserve_price=4000)
    b.bid("ann", 1000, 3000, "k", T0 + 1)
    assert b.close(T0 + 61) == {"winner": None, "price": 1000, "reason": "reserve not met"}
    assert auction().close(T0 + 61) == {"winner": None, "price": None, "reason": "no bids"}


def test_late_bids_extend_the_end_unless_sudden_death() -> None:
    a = auction(extend_window=10)
    a.bid("ann", 1000, None, "k", T0 + 55)
    assert a.ends_at == T0 + 65
    a.bid("bob", 1100, None, "k", T0 + 64.5)
    assert a.ends_at == T0 + 74.5
    assert a.phase(T0 + 70) == "live" and a.close(T0 + 70) is None
    s = auction(mode="sudden_death")
    s.bid("ann", 1000, None, "k", T0 + 59.9)
    assert s.ends_at == T0 + 60
    with pytest.raises(AuctionNotLive, match="ended"):
        s.bid("bob", 1100, None, "k", T0 + 60)
    with pytest.raises(AuctionNotLive, match="upcoming"):
        auction(starts_at=T0 + 10, ends_at=T0 + 20).bid("ann", 1000, None, "k", T0)


def test_keys_replay_and_bad_bids_are_refused() -> None:
    a = auction()
    first = a.bid("ann", 1000, None, "k1", T0 + 1)
    assert a.bid("ann", 1000, None, "k1", T0 + 2) == {**first, "replayed": True}
    with pytest.raises(IdempotencyMismatch):
        a.bid("ann", 1200, None, "k1", T0 + 2)
    for amount, ceiling in [(1500, 1400), (True, None), (1500.5, None)]:
        with pytest.raises(InvalidRequest):
            a.bid("bob", amount, ceiling, "k2", T0 + 3)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        AuctionTerms("x", 100, 0, T0, T0 + 1).check()


bids = st.lists(
    st.tuples(
        st.sampled_from(["ann", "bob", "cat", "dan"]),
        st.integers(0, 6000),  # amount
        st.none() | st.integers(0, 8000),  # maximum
        st.floats(0, 70),  # seconds after the start
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(program=bids, reserve=st.none() | st.integers(1000, 6000), sudden=st.booleans())
def test_the_highest_valid_bid_wins_and_replay_agrees(
    program: list[tuple[str, int, int | None, float]], reserve: int | None, sudden: bool
) -> None:
    a = auction(reserve_price=reserve, mode="sudden_death" if sudden else "extend")
    accepted: dict[str, tuple[int, int]] = {}  # bidder -> (highest maximum, order reached)
    answers = []
    for i, (bidder, amount, ceiling, offset) in enumerate(sorted(program, key=lambda b: b[3])):
        try:
            answers.append(a.bid(bidder, amount, ceiling, f"k{i}", T0 + offset))
        except LiveshopError:
            continue
        top = max(amount, ceiling if ceiling is not None else amount)
        if bidder not in accepted or top > accepted[bidder][0]:
            accepted[bidder] = (top, i)
        # The price never passes the leader's maximum, never drops below the others'.
        assert a.price is not None and a.leader is not None
        assert a.price <= accepted[a.leader][0]
        assert all(a.price >= m for b, (m, _) in accepted.items() if b != a.leader)
    if accepted:
        best = min(accepted.items(), key=lambda kv: (-kv[1][0], kv[1][1]))[0]
        assert a.leader == best  # the highest maximum, the earlier on a tie
    result = a.close(T0 + 10_000)
    assert result is not None
    if accepted and (reserve is None or (a.price or 0) >= reserve):
        assert result["winner"] == a.leader
    else:
        assert result["winner"] is None
    # A restart replays the stored bids into the same auction.
    back = Auction.replay(a.terms, list(a.pending), ended=True)
    assert (back.leader, back.price, back.ends_at, back.history) == (
        a.leader, a.price, a.ends_at, a.history,
    )  # fmt: skip
