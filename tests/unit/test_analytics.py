"""Live host analytics: the counters match the events that produced them."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from liveshop.rooms.analytics import ShowAnalytics

T = 1_800_000_000.0


def chat(offset: int, at: float) -> dict[str, Any]:
    return {"offset": offset, "kind": "chat", "ts": int(at * 1000), "text": "hi"}


def pin(offset: int, at: float, product_id: str) -> dict[str, Any]:
    return {"offset": offset, "kind": "pin", "ts": int(at * 1000),
            "product": {"product_id": product_id}}  # fmt: skip


def test_a_show_report_counts_what_happened() -> None:
    show = ShowAnalytics("s1")
    # The room already had 3 uniques and 7 reactions from an earlier show: not ours.
    show.sample(T, viewers=2, unique_viewers=3, reactions_total=7)
    show.skip_to("e1", 10)
    show.room_events([pin(11, T + 1, "kettle")])  # seen by the 2 viewers watching
    show.sample(T + 10, viewers=5, unique_viewers=8, reactions_total=7)
    show.sample(T + 20, viewers=5, unique_viewers=8, reactions_total=7)
    show.room_events([chat(12 + i, T + 20 + i) for i in range(4)])
    show.room_events([chat(12, T + 20)])  # delivered again: counted once
    show.sample(T + 30, viewers=3, unique_viewers=8, reactions_total=17)
    show.sales(orders=2, buyers=2, gmv_minor={"EUR": 2_598, "USD": 1_200},
               units={"kettle": 2, "mug": 1}, carts={"kettle": 2})  # fmt: skip
    report = show.report(T + 40)
    assert report["viewers"] == 3 and report["peak_viewers"] == 5
    assert report["unique_viewers"] == 5
    # 2 viewers for 10 s, then 5 for 20 s: 120 viewer-seconds over 5 uniques.
    assert report["average_watch_seconds"] == 120 / 5
    assert report["chat_messages"] == 4 and report["chat_per_minute"] == 4
    assert report["reactions"] == 10 and report["reactions_per_minute"] == 10
    assert report["orders"] == 2 and report["gmv_minor"] == {"EUR": 2_598, "USD": 1_200}
    assert report["conversion_bps"] == 4_000  # two buyers of five unique viewers
    assert report["add_to_carts"] == 2
    assert report["products"]["kettle"] == {"views": 2, "add_to_carts": 2, "units_sold": 2}
    assert report["products"]["mug"] == {"views": 0, "add_to_carts": 0, "units_sold": 1}
    show.sample(T + 100, viewers=3, unique_viewers=8, reactions_total=17)
    later = show.report(T + 200)  # rates are over the last minute
    # 70 s without a sample (the actor was away): nobody knows who watched, none counted.
    assert later["average_watch_seconds"] == 120 / 5
    assert later["chat_per_minute"] == 0 and later["reactions_per_minute"] == 0
    assert later["chat_messages"] == 4
    # A restarted channel actor carries on from the stored state.
    restored = ShowAnalytics.from_state(show.to_state())
    restored.sample(T + 201, viewers=3, unique_viewers=9, reactions_total=18)
    again = restored.report(T + 201)
    assert again["chat_messages"] == 4 and again["reactions"] == 11
    assert again["unique_viewers"] == 6 and again["peak_viewers"] == 5
    assert again["products"]["kettle"]["views"] == 2


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["chat", "pin", "react", "tick"]),
            st.integers(0, 50),  # viewers, or reactions in one go
            st.integers(1, 3),  # how many times the batch is delivered
        ),
        max_size=60,
    )
)
def test_counters_match_the_events_however_often_they_are_delivered(
    steps: list[tuple[str, int, int]],
) -> None:
    show = ShowAnalytics("s1")
    show.sample(T, 0, 0, 0)
    show.skip_to("e1", 0)
    offset, now, reactions, viewers = 0, T, 0, 0
    chats = 0
    views: dict[str, int] = {}
    for kind, n, deliveries in steps:
        now += 1
        if kind in ("chat", "pin"):
            offset += 1
            event = chat(offset, now) if kind == "chat" else pin(offset, now, f"p{n % 3}")
            if kind == "chat":
                chats += 1
            else:
                views[f"p{n % 3}"] = views.get(f"p{n % 3}", 0) + viewers
            for _ in range(deliveries):
                show.room_events([event])
        elif kind == "react":
            reactions += n
        else:
            viewers = n
        show.sample(now, viewers, 0, reactions)
    report = show.report(now)
    assert report["chat_messages"] == chats
    assert report["reactions"] == reactions
    assert {p: s["views"] for p, s in report["products"].items()} == views
