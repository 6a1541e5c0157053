"""Channels and programming in real PostgreSQL: concurrent double bookings, templates,
availability, reminders sent once, audit, analytics and the sales a show is credited with."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import pytest

from liveshop.errors import Conflict
from liveshop.rooms.channel import Audit, ChannelInfo, feed_room
from liveshop.rooms.runofshow import Cue, RunOfShow
from liveshop.rooms.schedule import Availability, Recurrence, Show
from liveshop.storage.channels import ChannelStore
from liveshop.storage.rooms import RoomStore

T = dt.datetime(2026, 6, 1, tzinfo=dt.UTC).timestamp()  # a Monday


def show(show_id: str, channel: str, start: float, hours: float = 1, **kw: object) -> Show:
    return Show(show_id, channel, show_id.title(), start, start + hours * 3600,  # type: ignore[arg-type]
                **kw)  # type: ignore[arg-type]  # fmt: skip


@pytest.fixture
async def store(pool: asyncpg.Pool) -> ChannelStore:
    await pool.execute("TRUNCATE follows")
    channels = ChannelStore(pool)
    for cid, title in (("deals", "Deals"), ("beauty", "Beauty")):
        await channels.save_channel(ChannelInfo(cid, title, tz="Europe/London"), epoch="e1")
    return channels


async def test_a_channel_has_a_feed_room_and_its_details(store: ChannelStore) -> None:
    info = ChannelInfo("deals", "Deals EMEA", "Deals", "EMEA", "Europe/London", "https://a/x.png")
    await store.save_channel(info, epoch="e2")  # an update keeps the feed room
    assert (await store.channel("deals"))[0] == info
    assert await RoomStore(store.pool).room_exists(feed_room("deals"))
    assert [c.channel_id for c in await store.list_channels(region="EMEA")] == ["deals"]


async def test_two_channels_booking_one_host_at_once_get_one_yes(store: ChannelStore) -> None:
    a = show("a", "deals", T, hosts=("ana",), room_id="ra")
    b = show("b", "beauty", T + 1800, hosts=("ana",), room_id="rb")
    results = await asyncio.gather(
        store.book(a, create_room=True, epoch="e"), store.book(b, create_room=True, epoch="e"),
        return_exceptions=True,
    )  # fmt: skip
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(refused) == 1 and len([r for r in results if isinstance(r, Show)]) == 1
    assert refused[0].details["show"]["show_id"] in ("a", "b")  # names the one in the way
    # Cancelling frees the slot; moving a show over itself is no conflict.
    winner = next(r for r in results if isinstance(r, Show))
    moved = Show(**{**winner.__dict__, "ends_at": winner.ends_at + 600})
    await store.book(moved, create_room=False, epoch="", replacing=True)
    cancelled = Show(**{**moved.__dict__, "status": "cancelled"})
    await store.book(cancelled, create_room=False, epoch="", replacing=True)
    loser = b if winner.show_id == "a" else a
    await store.book(loser, create_room=True, epoch="e")
    calendar = await store.calendar(host="ana", start=T - 3600, end=T + 86400)
    assert {(s.show_id, s.status) for s in calendar} == {(winner.show_id, "cancelled"),
                                                        (loser.show_id, "scheduled")}  # fmt: skip


async def test_templates_book_ahead_around_other_shows_and_availability(
    store: ChannelStore,
) -> None:
    await store.book(show("special", "deals", T + 2 * 86400 + 19 * 3600), create_room=False,
                     epoch="e")  # fmt: skip  # Wednesday 20:00 London (BST)
    # bo hosts Mondays to Thursdays only.
    await store.set_availability("bo", Availability("Europe/London", tuple(
        (d, dt.time(18), dt.time(23)) for d in range(4))))  # fmt: skip
    weekdays = Recurrence(frozenset(range(5)), dt.time(20), 3600, "Europe/London",
                          dt.date(2026, 6, 1))  # fmt: skip
    make = Show("nightly", "deals", "Nightly", 0, 3600, ("bo",), series_id="nightly")
    booked, clashes = await store.create_template("nightly", weekdays, make, now=T - 1,
                                                  until=T + 5 * 86400, epoch="e")  # fmt: skip
    assert [s.show_id for s in booked] == ["nightly-20260601", "nightly-20260602",
                                           "nightly-20260604"]  # fmt: skip
    assert [(s.show_id, c.show_id) for s, c in clashes] == [("nightly-20260603", "special")]
    assert all(s.room_id == s.show_id for s in booked)  # each occurrence has its room
    assert await RoomStore(store.pool).room_exists("nightly-20260601")
    # Extending to the same day again books nothing twice; further on books the next week.
    assert (await store.extend_template("nightly", now=T, until=T + 5 * 86400, epoch="e"))[0] == []
    more, _ = await store.extend_template("nightly", now=T, until=T + 8 * 86400, epoch="e")
    # Never the past: a template created late books from now on.
    late = Show("late", "beauty", "Late", 0, 3600)
    from_now, _ = await store.create_template("late", weekdays, late, now=T + 3 * 86400,
                                              until=T + 5 * 86400, epoch="e")  # fmt: skip
    assert [s.show_id for s in from_now] == ["late-20260604", "late-20260605"]
    assert [s.show_id for s in more] == ["nightly-20260608"]
    assert (await store.templates("deals"))[0]["occurrences"] == 4


async def test_reminders_reach_show_and_series_followers_once(store: ChannelStore) -> None:
    s = show("launch", "deals", T, series_id="tech-tuesdays")
    await store.book(s, create_room=False, epoch="e")
    assert await store.follow("ana", "show", "launch")
    assert not await store.follow("ana", "show", "launch")  # already
    await store.follow("ana", "series", "tech-tuesdays")  # both: still one reminder
    await store.follow("bo", "series", "tech-tuesdays")
    assert await store.remind(s, 900, T - 900) == 2
    assert await store.remind(s, 900, T - 899) == 0  # a restarted actor sends nothing again
    assert await store.remind(s, 60, T - 30, covers=[900, 300, 60]) == 2
    rows = await store.pool.fetch(
        "SELECT user_id, data FROM commerce_events WHERE kind = 'show_reminder' "
        "AND data->'show'->>'show_id' = 'launch' ORDER BY user_id"
    )
    assert sorted((r["user_id"], r["data"]["lead"]) for r in rows) == [
        ("ana", 60),
        ("ana", 900),
        ("bo", 60),
        ("bo", 900),
    ]  # once per lead, the missed 300 s one not sent late
    assert await store.reminded(["launch"]) == {("launch", 900.0), ("launch", 300.0),
                                                ("launch", 60.0)}  # fmt: skip
    assert await store.unfollow("ana", "show", "launch")
    assert await store.follows("ana") == [{"kind": "series", "id": "tech-tuesdays"}]


async def test_run_of_show_audit_and_analytics_are_kept(store: ChannelStore) -> None:
    s = show("launch", "deals", T)
    await store.book(s, create_room=False, epoch="e")
    run = RunOfShow(T)
    run.add(Cue("pin", 30, "pin", {"product_id": "kettle"}))
    run.fire("pin", T + 10, by="ana")
    await store.save_run("launch", run)
    assert (await store.show("launch"))[1].to_state() == run.to_state()
    entry = Audit("cut_to_slate", "ops", "rights", T + 5, "launch")
    await store.audit("deals", entry)
    log = await store.audit_log("deals")
    assert [(e["action"], e["by"], e["reason"], e["show_id"]) for e in log] == [
        ("cut_to_slate", "ops", "rights", "launch")
    ]
    await store.save_analytics("launch", {"viewers": 3}, {"show_id": "launch"}, minute=0)
    await store.save_analytics("launch", {"viewers": 5}, {"show_id": "launch"}, minute=1)
    assert (await store.analytics("launch")) == ({"viewers": 5}, {"show_id": "launch"})
    assert [m["minute"] for m in await store.analytics_minutes("launch")] == [0, 1]


async def test_sales_count_the_shows_room_and_time_only(store: ChannelStore) -> None:
    pool = store.pool
    await pool.execute("INSERT INTO products (id, title, price_minor, currency) VALUES "
                       "('kettle', 'Kettle', 2500, 'EUR')")  # fmt: skip
    await pool.execute(
        "INSERT INTO skus (id, product_id, price_minor, currency, on_hand, reserved, sold) "
        "VALUES ('k1', 'kettle', 2500, 'EUR', 10, 0, 0)"
    )

    async def order(oid: str, room: str, at: float, status: str = "paid", qty: int = 1) -> None:
        when = dt.datetime.fromtimestamp(at, dt.UTC)
        await pool.execute(
            "INSERT INTO orders (id, buyer_id, status, currency, subtotal_minor, total_minor, "
            "room_id, idem_scope, idem_key, created_at) VALUES ($1, $2, $3, 'EUR', $4, $4, $5, "
            "'buy', $1, $6)",
            oid, f"buyer-{oid}", status, 2500 * qty, room, when,
        )  # fmt: skip
        await pool.execute(
            "INSERT INTO order_lines (order_id, line, sku, product_id, quantity, price_minor) "
            "VALUES ($1, 1, 'k1', 'kettle', $2, 2500)",
            oid, qty,
        )  # fmt: skip

    await order("o1", "r1", T + 10, qty=2)
    await order("o2", "r1", T + 20)
    await order("o3", "r1", T + 30, status="cancelled")  # not counted
    await order("o4", "r2", T + 40)  # another room
    await order("o5", "r1", T + 4000)  # after the show
    await pool.execute("INSERT INTO cart_adds (room_id, user_id, sku, quantity, at) VALUES "
                       "('r1', 'ana', 'k1', 3, $1), ('r2', 'bo', 'k1', 1, $1)", T + 5)  # fmt: skip
    sales = await store.sales("r1", T, T + 3600)
    assert sales == {"orders": 2, "buyers": 2, "gmv_minor": {"EUR": 7500},
                     "units": {"kettle": 3}, "carts": {"kettle": 3}}  # fmt: skip
