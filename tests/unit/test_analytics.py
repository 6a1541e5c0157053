"""Live host analytics: the counters match the events that produced them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from liveshop.rooms.analytics import ShowAnalytics

T = 1_800_000_000.0


def test_a_show_report_counts_what_happened() -> None:
    show = ShowAnalytics("s1", T)
    show.viewer_count(2)
    for user, at in (("ana", T), ("bo", T + 10), ("ana", T + 20)):  # ana twice: one unique
        show.joined(user, at)
    show.pinned("kettle")  # seen by the 2 viewers watching
    show.viewer_count(5)
    show.viewer_count(3)
    for i in range(4):
        show.chat(T + 30 + i)
    show.reacted(10, T + 40)
    show.added_to_cart("kettle", 2)
    show.ordered("o1", "ana", [("kettle", 2)], 2_598, "EUR")
    show.ordered("o1", "ana", [("kettle", 2)], 2_598, "EUR")  # the same order again
    show.ordered("o2", "cy", [("mug", 1)], 1_200, "USD")
    show.left("bo", T + 70)
    report = show.report(T + 80)
    assert report["viewers"] == 3 and report["peak_viewers"] == 5
    assert report["unique_viewers"] == 2
    assert report["average_watch_seconds"] == (60 + 80) / 2  # bo left after 60 s; ana watches
    assert report["chat_per_minute"] == 4 and report["reactions_per_minute"] == 10
    assert report["orders"] == 2 and report["gmv_minor"] == {"EUR": 2_598, "USD": 1_200}
    assert report["conversion_bps"] == 10_000  # two buyers for two uniques (cy bought via link)
    assert report["products"]["kettle"] == {"views": 2, "add_to_carts": 2, "units_sold": 2}
    later = show.report(T + 200)  # rates are over the last minute
    assert later["chat_per_minute"] == 0 and later["chat_messages"] == 4


@given(st.lists(st.tuples(st.sampled_from(["o1", "o2", "o3"]), st.integers(1, 10_000))))
def test_gmv_counts_each_order_once_however_often_its_event_arrives(
    events: list[tuple[str, int]],
) -> None:
    show = ShowAnalytics("s1", T)
    first: dict[str, int] = {}
    for order_id, total in events:
        show.ordered(order_id, "buyer", [("p", 1)], total, "USD")
        first.setdefault(order_id, total)
    report = show.report(T)
    assert report["orders"] == len(first)
    assert report["gmv_minor"].get("USD", 0) == sum(first.values())
    assert report["products"].get("p", {}).get("units_sold", 0) == len(first)
