"""Channels and their programming in PostgreSQL: shows, recurring templates, creator
availability, follows and reminders, run-of-shows, the operators' audit and show analytics.

Booking is where two writers can race (two services booking one host on two channels at
once), so every booking runs in one transaction holding advisory locks on its channel and
each of its hosts, taken in one global order (no deadlocks), and decides with the domain's
:class:`~liveshop.rooms.schedule.Calendar` over what the database holds then.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Iterable
from typing import Any

import asyncpg

from liveshop.errors import Conflict, InvalidRequest, NotFound
from liveshop.rooms.channel import Audit, ChannelInfo, feed_room
from liveshop.rooms.room import RoomInfo
from liveshop.rooms.router import Replay
from liveshop.rooms.runofshow import RunOfShow
from liveshop.rooms.schedule import Availability, Calendar, Recurrence, Show
from liveshop.storage.owners import Fence, check_fence, fenced_execute
from liveshop.storage.rooms import insert_room

#: Replays: ended shows with a recording from this far back, best first.
REPLAY_WINDOW = 30 * 86400.0
MAX_REPLAYS = 10


class ChannelNotFound(NotFound):
    code = "channel_not_found"


class ShowNotFound(NotFound):
    code = "show_not_found"


def channel_from_row(row: asyncpg.Record) -> ChannelInfo:
    return ChannelInfo(row["id"], row["title"], row["category"], row["region"], row["tz"],
                       row["artwork_url"], row["description"])  # fmt: skip


def show_from_row(row: asyncpg.Record) -> Show:
    return Show(
        row["id"], row["channel_id"], row["title"], row["starts_at"], row["ends_at"],
        tuple(row["hosts"]), row["kind"], row["status"], row["series_id"], row["season"],
        tuple(row["products"]), row["recording"], row["room_id"], row["ended_at"],
    )  # fmt: skip


def _lock_keys(channel_ids: Iterable[str], hosts: Iterable[str]) -> list[str]:
    return sorted({f"channel:{c}" for c in channel_ids} | {f"host:{h}" for h in hosts})


async def _lock(conn: asyncpg.Connection, keys: list[str]) -> None:
    for key in keys:  # one global order: sorted
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", key)


_ACTIVE_NEAR = (
    "SELECT * FROM shows WHERE status IN ('scheduled', 'live') AND starts_at < $2 "
    "AND ends_at > $1 AND (channel_id = ANY($3::text[]) OR hosts && $4::text[])"
)


class ChannelStore:
    """``fence``: the channel actor's claim on the channel (storage/owners.py); set, the
    writes the actor makes (:meth:`control`, :meth:`set_status`, :meth:`save_run`,
    :meth:`set_recording`, :meth:`save_analytics`, :meth:`remind`,
    :meth:`extend_template`) check it in their transaction and raise
    :class:`~liveshop.storage.owners.Fenced` (nothing written) once another host claimed
    the channel. The API's store has none: its writes are not the actor's."""

    def __init__(self, pool: asyncpg.Pool, *, fence: Fence | None = None) -> None:
        self.pool = pool
        self.fence = fence

    # -- channels -------------------------------------------------------------------------

    async def save_channel(self, info: ChannelInfo, *, epoch: str) -> ChannelInfo:
        """Create or update a channel, and its feed room on first creation."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO channels (id, title, category, region, tz, artwork_url, "
                "description) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE "
                "SET title = EXCLUDED.title, category = EXCLUDED.category, region = "
                "EXCLUDED.region, tz = EXCLUDED.tz, artwork_url = EXCLUDED.artwork_url, "
                "description = EXCLUDED.description",
                info.channel_id, info.title, info.category, info.region, info.tz,
                info.artwork_url, info.description,
            )  # fmt: skip
            feed = RoomInfo(feed_room(info.channel_id), info.title, info.channel_id)
            await insert_room(conn, feed, epoch=epoch, if_absent=True)
        return info

    async def channel(self, channel_id: str) -> tuple[ChannelInfo, dict[str, Any] | None]:
        """The channel and its operator override, if any."""
        row = await self.pool.fetchrow("SELECT * FROM channels WHERE id = $1", channel_id)
        if row is None:
            raise ChannelNotFound(f"no channel {channel_id!r}")
        return channel_from_row(row), row["override"]

    async def channel_exists(self, channel_id: str) -> bool:
        return bool(await self.pool.fetchval("SELECT 1 FROM channels WHERE id = $1", channel_id))

    async def list_channels(
        self, *, category: str | None = None, region: str | None = None
    ) -> list[ChannelInfo]:
        rows = await self.pool.fetch(
            "SELECT * FROM channels WHERE ($1::text IS NULL OR category = $1) "
            "AND ($2::text IS NULL OR region = $2) ORDER BY id",
            category, region,
        )  # fmt: skip
        return [channel_from_row(r) for r in rows]

    # -- shows ------------------------------------------------------------------------------

    async def book(
        self,
        show: Show,
        *,
        create_room: bool,
        epoch: str,
        replacing: bool = False,
        run: RunOfShow | None = None,
    ) -> Show:
        """Book a show (with its cues, ``run``) or move/edit/cancel it (``replacing``; its
        status is kept unless it is cancelled), refused with :class:`Conflict` naming the
        show in the way or the host who is not available. ``create_room``: make the show's
        room (``show.room_id``) in the same transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            old = None
            if replacing:
                row = await conn.fetchrow(
                    "SELECT * FROM shows WHERE id = $1 FOR UPDATE", show.show_id
                )
                if row is None:
                    raise ShowNotFound(f"no show {show.show_id!r}")
                old = show_from_row(row)
                if old.status == "live" and show.status == "cancelled":
                    raise InvalidRequest("a show on air is ended (end_show), not cancelled")
                if not old.active:
                    raise InvalidRequest(f"show {show.show_id!r} is {old.status}")
            channels = {show.channel_id} | ({old.channel_id} if old else set())
            hosts = set(show.hosts) | (set(old.hosts) if old else set())
            await _lock(conn, _lock_keys(channels, hosts))
            if show.active:
                near = await conn.fetch(_ACTIVE_NEAR, show.starts_at, show.ends_at,
                                        [show.channel_id], list(show.hosts))  # fmt: skip
                hours = await self._availability(conn, show.hosts)
                Calendar([show_from_row(r) for r in near]).check(show, hours)
            if create_room and show.room_id:
                await insert_room(conn, _room_of(show), epoch=epoch, if_absent=True)
            try:
                if old is None:
                    await self._insert(conn, show, None, run)
                else:
                    # The status is the channel actor's (started, ended) unless cancelling.
                    await conn.execute(
                        "UPDATE shows SET channel_id = $2, title = $3, kind = $4, status = "
                        "CASE WHEN $5 = 'cancelled' THEN 'cancelled' ELSE status END, "
                        "starts_at = $6, ends_at = $7, hosts = $8, products = $9, "
                        "series_id = $10, season = $11, recording = $12, room_id = $13, "
                        "updated_at = now() WHERE id = $1",
                        show.show_id, show.channel_id, show.title, show.kind, show.status,
                        show.starts_at, show.ends_at, list(show.hosts), list(show.products),
                        show.series_id, show.season, show.recording, show.room_id,
                    )  # fmt: skip
            except asyncpg.UniqueViolationError:
                raise Conflict(f"show {show.show_id!r} already exists") from None
            except asyncpg.ForeignKeyViolationError:
                raise NotFound(f"channel {show.channel_id!r} or room {show.room_id!r} "
                               "does not exist") from None  # fmt: skip
        return show

    @staticmethod
    async def _insert(
        conn: asyncpg.Connection, show: Show, template_id: str | None, run: RunOfShow | None
    ) -> bool:
        done = await conn.fetchval(
            "INSERT INTO shows (id, channel_id, title, kind, status, starts_at, ends_at, hosts, "
            "products, series_id, season, recording, room_id, template_id, run_of_show) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) "
            + ("ON CONFLICT (id) DO NOTHING " if template_id else "") + "RETURNING 1",
            show.show_id, show.channel_id, show.title, show.kind, show.status, show.starts_at,
            show.ends_at, list(show.hosts), list(show.products), show.series_id, show.season,
            show.recording, show.room_id, template_id, run.to_state() if run else {},
        )  # fmt: skip
        return bool(done)

    async def show(self, show_id: str) -> tuple[Show, RunOfShow]:
        row = await self.pool.fetchrow("SELECT * FROM shows WHERE id = $1", show_id)
        if row is None:
            raise ShowNotFound(f"no show {show_id!r}")
        return show_from_row(row), _run(row)

    async def window(
        self, channel_id: str, start: float, end: float
    ) -> list[tuple[Show, RunOfShow]]:
        """The channel's shows overlapping ``[start, end)`` with their run-of-shows."""
        rows = await self.pool.fetch(
            "SELECT * FROM shows WHERE channel_id = $1 AND starts_at < $3 AND ends_at > $2 "
            "ORDER BY starts_at",
            channel_id, start, end,
        )  # fmt: skip
        return [(show_from_row(r), _run(r)) for r in rows]

    async def calendar(
        self,
        *,
        channel_id: str | None = None,
        host: str | None = None,
        series_id: str | None = None,
        start: float,
        end: float,
        limit: int = 500,
    ) -> list[Show]:
        """A programming calendar: a channel's, a creator's or a series' shows (cancelled
        included, so a calendar shows what changed)."""
        rows = await self.pool.fetch(
            "SELECT * FROM shows WHERE starts_at < $2 AND ends_at > $1 "
            "AND ($3::text IS NULL OR channel_id = $3) AND ($4::text IS NULL OR $4 = ANY(hosts)) "
            "AND ($5::text IS NULL OR series_id = $5) ORDER BY starts_at, id LIMIT $6",
            start, end, channel_id, host, series_id, limit,
        )  # fmt: skip
        return [show_from_row(r) for r in rows]

    async def upcoming(self, now: float, horizon: float) -> list[Show]:
        """Every active show on air at ``now`` or starting before ``now + horizon`` (the grid)."""
        rows = await self.pool.fetch(
            "SELECT * FROM shows WHERE status IN ('scheduled', 'live') AND ends_at > $1 "
            "AND starts_at < $2 ORDER BY starts_at",
            now, now + horizon,
        )  # fmt: skip
        return [show_from_row(r) for r in rows]

    async def set_status(self, show: Show, *, conn: asyncpg.Connection | None = None) -> None:
        """``conn``: in the caller's transaction (which checked the fence, if any)."""
        sql = "UPDATE shows SET status = $2, ended_at = $3, updated_at = now() WHERE id = $1"
        if conn is not None:
            await conn.execute(sql, show.show_id, show.status, show.ended_at)
        else:
            await fenced_execute(
                self.pool, self.fence, sql, show.show_id, show.status, show.ended_at
            )

    async def set_recording(self, show_id: str, recording: str, seconds: float) -> None:
        await fenced_execute(self.pool, self.fence,
            "UPDATE shows SET recording = $2, recording_seconds = $3, updated_at = now() "
            "WHERE id = $1",
            show_id, recording, seconds,
        )  # fmt: skip

    async def save_run(self, show_id: str, run: RunOfShow) -> None:
        await fenced_execute(self.pool, self.fence,
            "UPDATE shows SET run_of_show = $2, updated_at = now() WHERE id = $1",
            show_id, run.to_state(),
        )  # fmt: skip

    async def replays(self, channel_id: str, now: float) -> list[Replay]:
        """The channel's best recent shows with a recording: most watched first."""
        rows = await self.pool.fetch(
            "SELECT s.id, s.recording, s.recording_seconds FROM shows s "
            "LEFT JOIN show_analytics a ON a.show_id = s.id "
            "WHERE s.channel_id = $1 AND s.status = 'ended' AND s.recording IS NOT NULL "
            "AND s.recording_seconds > 0 AND s.starts_at > $2 "
            "ORDER BY COALESCE((a.report->>'peak_viewers')::int, 0) DESC, s.starts_at DESC "
            "LIMIT $3",
            channel_id, now - REPLAY_WINDOW, MAX_REPLAYS,
        )  # fmt: skip
        return [Replay(r["id"], r["recording"], r["recording_seconds"]) for r in rows]

    # -- templates ----------------------------------------------------------------------------

    async def create_template(
        self,
        template_id: str,
        recurrence: Recurrence,
        make: Show,
        *,
        now: float,
        until: float,
        epoch: str,
    ) -> tuple[list[Show], list[tuple[Show, Show]]]:
        """Store a recurring template and book its shows from ``now`` up to ``until``."""
        try:
            await self.pool.execute(
                "INSERT INTO show_templates (id, channel_id, title, weekdays, at_local, "
                "duration, tz, first_day, last_day, hosts, products, series_id, season, "
                "room_id, booked_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
                "$12, $13, $14, $15)",
                template_id, make.channel_id, make.title, sorted(recurrence.weekdays),
                recurrence.at, recurrence.duration, recurrence.tz, recurrence.first_day,
                recurrence.last_day, list(make.hosts), list(make.products), make.series_id,
                make.season, make.room_id, 0.0,
            )  # fmt: skip
        except asyncpg.UniqueViolationError:
            raise Conflict(f"template {template_id!r} already exists") from None
        except asyncpg.ForeignKeyViolationError:
            raise NotFound(f"channel {make.channel_id!r} or room {make.room_id!r} "
                           "does not exist") from None  # fmt: skip
        return await self.extend_template(template_id, now=now, until=until, epoch=epoch)

    async def templates(self, channel_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM show_templates WHERE channel_id = $1 ORDER BY id", channel_id
        )
        return [_template_wire(r) for r in rows]

    async def extend_template(
        self, template_id: str, *, now: float, until: float, epoch: str
    ) -> tuple[list[Show], list[tuple[Show, Show]]]:
        """Book the template's free dates from where it was booked (never the past) up to
        ``until``; report the dates another show holds. Each occurrence gets its own room
        (``<show id>`` unless the template names one)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await check_fence(self.fence, conn)
            row = await conn.fetchrow(
                "SELECT * FROM show_templates WHERE id = $1 FOR UPDATE", template_id
            )
            if row is None:
                raise NotFound(f"no template {template_id!r}")
            start = max(row["booked_until"], now)
            if until <= start:
                return [], []
            recurrence = Recurrence(frozenset(row["weekdays"]), row["at_local"], row["duration"],
                                    row["tz"], row["first_day"], row["last_day"])  # fmt: skip
            make = Show(template_id, row["channel_id"], row["title"], 0.0, row["duration"],
                        tuple(row["hosts"]), series_id=row["series_id"], season=row["season"],
                        products=tuple(row["products"]), room_id=row["room_id"])  # fmt: skip
            await _lock(conn, _lock_keys([make.channel_id], make.hosts))
            near = await conn.fetch(_ACTIVE_NEAR, start, until + row["duration"],
                                    [make.channel_id], list(make.hosts))  # fmt: skip
            calendar = Calendar([show_from_row(r) for r in near])
            booked, clashes = calendar.expand(recurrence, make, start, until)
            hours = await self._availability(conn, make.hosts)
            kept = []
            for show in booked:
                if any(h in hours and not hours[h].covers(show.starts_at, show.ends_at)
                       for h in show.hosts):  # fmt: skip
                    continue
                if show.room_id is None:
                    show = dataclasses.replace(show, room_id=show.show_id)
                    await insert_room(conn, _room_of(show), epoch=epoch, if_absent=True)
                if await self._insert(conn, show, template_id, None):
                    kept.append(show)
            await conn.execute(
                "UPDATE show_templates SET booked_until = $2, occurrences = occurrences + $3 "
                "WHERE id = $1",
                template_id, until, len(kept),
            )  # fmt: skip
        return kept, clashes

    async def templates_due(self, channel_id: str, until: float) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT id FROM show_templates WHERE channel_id = $1 AND booked_until < $2 "
            "AND (last_day IS NULL OR last_day >= CURRENT_DATE - 1)",
            channel_id, until,
        )  # fmt: skip
        return [r["id"] for r in rows]

    # -- creators -------------------------------------------------------------------------------

    async def set_availability(self, user_id: str, hours: Availability) -> None:
        windows = [[d, a.isoformat(), b.isoformat()] for d, a, b in hours.windows]
        await self.pool.execute(
            "INSERT INTO creator_availability (user_id, tz, windows) VALUES ($1, $2, $3) "
            "ON CONFLICT (user_id) DO UPDATE SET tz = EXCLUDED.tz, windows = EXCLUDED.windows",
            user_id, hours.tz, windows,
        )  # fmt: skip

    async def availability(self, user_id: str) -> Availability | None:
        found = await self._availability(self.pool, (user_id,))
        return found.get(user_id)

    @staticmethod
    async def _availability(
        conn: asyncpg.Connection | asyncpg.Pool, users: Iterable[str]
    ) -> dict[str, Availability]:
        rows = await conn.fetch(
            "SELECT * FROM creator_availability WHERE user_id = ANY($1::text[])", list(users)
        )
        return {
            r["user_id"]: Availability(r["tz"], tuple(
                (int(d), dt.time.fromisoformat(a), dt.time.fromisoformat(b))
                for d, a, b in r["windows"]
            ))
            for r in rows
        }  # fmt: skip

    # -- follows and reminders ------------------------------------------------------------------

    async def follow(self, user_id: str, kind: str, target_id: str) -> bool:
        """Follow a show or a series; False if already following."""
        if kind not in ("show", "series"):
            raise InvalidRequest("follow a 'show' or a 'series'")
        exists = await self.pool.fetchval(
            "SELECT 1 FROM shows WHERE " + ("id" if kind == "show" else "series_id") + " = $1 "
            "LIMIT 1",
            target_id,
        )
        if not exists:
            raise ShowNotFound(f"no {kind} {target_id!r}")
        done = await self.pool.fetchval(
            "INSERT INTO follows (user_id, target_kind, target_id) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING RETURNING 1",
            user_id, kind, target_id,
        )  # fmt: skip
        return bool(done)

    async def unfollow(self, user_id: str, kind: str, target_id: str) -> bool:
        done = await self.pool.fetchval(
            "DELETE FROM follows WHERE user_id = $1 AND target_kind = $2 AND target_id = $3 "
            "RETURNING 1",
            user_id, kind, target_id,
        )  # fmt: skip
        return bool(done)

    async def follows(self, user_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT target_kind, target_id FROM follows WHERE user_id = $1 "
            "ORDER BY created_at DESC LIMIT 1000",
            user_id,
        )
        return [{"kind": r["target_kind"], "id": r["target_id"]} for r in rows]

    async def reminded(self, show_ids: list[str]) -> set[tuple[str, float]]:
        rows = await self.pool.fetch(
            "SELECT show_id, lead FROM show_reminders WHERE show_id = ANY($1::text[])", show_ids
        )
        return {(r["show_id"], r["lead"]) for r in rows}

    async def remind(
        self, show: Show, lead: float, now: float, *, covers: Iterable[float] = ()
    ) -> int:
        """Send the ``(show, lead)`` reminder once: one ``show_reminder`` event (GET /events)
        per follower of the show or its series; ``covers``: earlier leads it stands for (they
        were missed), recorded as sent too. Returns how many were sent now (0: before)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await check_fence(self.fence, conn)
            first = await conn.fetchval(
                "INSERT INTO show_reminders (show_id, lead) VALUES ($1, $2) "
                "ON CONFLICT DO NOTHING RETURNING 1",
                show.show_id, lead,
            )  # fmt: skip
            if not first:
                return 0
            await conn.executemany(
                "INSERT INTO show_reminders (show_id, lead) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                [(show.show_id, other) for other in covers if other != lead],
            )
            data = {"show": show.to_wire(), "starts_in": round(show.starts_at - now),
                    "lead": lead}  # fmt: skip
            status = await conn.execute(
                "INSERT INTO commerce_events (kind, user_id, data) "
                "SELECT DISTINCT 'show_reminder', user_id, $3::jsonb FROM follows "
                "WHERE (target_kind = 'show' AND target_id = $1) "
                "OR (target_kind = 'series' AND target_id = $2)",
                show.show_id, show.series_id or "", data,
            )  # fmt: skip
        return int(status.split()[-1])

    # -- audit ------------------------------------------------------------------------------------

    async def control(
        self,
        channel_id: str,
        entry: Audit,
        *,
        ended: Show | None,
        override: dict[str, Any] | None,
        set_override: bool,
    ) -> int:
        """An emergency control, all or nothing: the override (``set_override``), the show
        it ended, and its audit entry. Returns the entry's id."""
        async with self.pool.acquire() as conn, conn.transaction():
            await check_fence(self.fence, conn)
            if set_override:
                await conn.execute(
                    "UPDATE channels SET override = $2 WHERE id = $1", channel_id, override
                )
            if ended is not None:
                await self.set_status(ended, conn=conn)
            return await self.audit(channel_id, entry, conn=conn)

    async def audit(
        self, channel_id: str, entry: Audit, *, conn: asyncpg.Connection | None = None
    ) -> int:
        audit_id: int = await (conn or self.pool).fetchval(
            "INSERT INTO channel_audit (channel_id, show_id, action, by_user, reason, at, "
            "details) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            channel_id, entry.show_id, entry.action, entry.by, entry.reason, entry.at,
            entry.details,
        )  # fmt: skip
        return audit_id

    async def audit_log(
        self, channel_id: str, *, after: int | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM channel_audit WHERE channel_id = $1 AND ($2::bigint IS NULL OR id > $2) "
            "ORDER BY id LIMIT $3",
            channel_id, after, limit,
        )  # fmt: skip
        return [
            {"id": r["id"], "action": r["action"], "by": r["by_user"], "reason": r["reason"],
             "at": r["at"], "show_id": r["show_id"], "details": r["details"]}
            for r in rows
        ]  # fmt: skip

    # -- analytics --------------------------------------------------------------------------------

    async def save_analytics(
        self, show_id: str, report: dict[str, Any], state: dict[str, Any], minute: int | None
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await check_fence(self.fence, conn)
            await conn.execute(
                "INSERT INTO show_analytics (show_id, report, state) VALUES ($1, $2, $3) "
                "ON CONFLICT (show_id) DO UPDATE SET report = EXCLUDED.report, "
                "state = EXCLUDED.state, updated_at = now()",
                show_id, report, state,
            )  # fmt: skip
            if minute is not None:
                await conn.execute(
                    "INSERT INTO show_analytics_minutes (show_id, minute, report) "
                    "VALUES ($1, $2, $3) ON CONFLICT (show_id, minute) DO UPDATE "
                    "SET report = EXCLUDED.report",
                    show_id, minute, report,
                )  # fmt: skip

    async def analytics(self, show_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        row = await self.pool.fetchrow(
            "SELECT report, state FROM show_analytics WHERE show_id = $1", show_id
        )
        return (row["report"], row["state"]) if row else None

    async def analytics_minutes(self, show_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT minute, report FROM show_analytics_minutes WHERE show_id = $1 ORDER BY minute",
            show_id,
        )
        return [{"minute": r["minute"], **r["report"]} for r in rows]

    async def sales(self, room_id: str, start: float, end: float) -> dict[str, Any]:
        """What was sold and added to cart in ``room_id`` during ``[start, end)``: orders
        not cancelled, distinct buyers, GMV per currency, units and adds per product."""
        since = dt.datetime.fromtimestamp(start, dt.UTC)
        until = dt.datetime.fromtimestamp(end, dt.UTC)
        async with self.pool.acquire() as conn:
            totals = await conn.fetch(
                "SELECT currency, count(*) AS orders, sum(total_minor) AS gmv FROM orders "
                "WHERE room_id = $1 AND created_at >= $2 AND created_at < $3 "
                "AND status <> 'cancelled' GROUP BY currency",
                room_id, since, until,
            )  # fmt: skip
            buyers = await conn.fetchval(
                "SELECT count(DISTINCT buyer_id) FROM orders WHERE room_id = $1 "
                "AND created_at >= $2 AND created_at < $3 AND status <> 'cancelled'",
                room_id, since, until,
            )  # fmt: skip
            units = await conn.fetch(
                "SELECT l.product_id, sum(l.quantity) AS units FROM orders o "
                "JOIN order_lines l ON l.order_id = o.id WHERE o.room_id = $1 "
                "AND o.created_at >= $2 AND o.created_at < $3 AND o.status <> 'cancelled' "
                "GROUP BY l.product_id",
                room_id, since, until,
            )  # fmt: skip
            carts = await conn.fetch(
                "SELECT s.product_id, sum(a.quantity) AS quantity FROM cart_adds a "
                "JOIN skus s ON s.id = a.sku WHERE a.room_id = $1 AND a.at >= $2 AND a.at < $3 "
                "GROUP BY s.product_id",
                room_id, start, end,
            )  # fmt: skip
        return {
            "orders": sum(r["orders"] for r in totals),
            "buyers": int(buyers),
            "gmv_minor": {r["currency"]: int(r["gmv"]) for r in totals},
            "units": {r["product_id"]: int(r["units"]) for r in units},
            "carts": {r["product_id"]: int(r["quantity"]) for r in carts},
        }


def _room_of(show: Show) -> RoomInfo:
    """A show's own room: on its channel, its first host receiving the gifts."""
    assert show.room_id is not None
    return RoomInfo(show.room_id, show.title, show.channel_id,
                    host_id=show.hosts[0] if show.hosts else None)  # fmt: skip


def _run(row: asyncpg.Record) -> RunOfShow:
    state = row["run_of_show"]
    if not state:
        return RunOfShow(row["starts_at"])
    run = RunOfShow.from_state(state)
    run.starts_at = row["starts_at"]  # the show may have moved since
    return run


def _template_wire(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": r["id"], "channel_id": r["channel_id"], "title": r["title"],
        "weekdays": list(r["weekdays"]), "at": r["at_local"].isoformat(),
        "duration": r["duration"], "tz": r["tz"], "first_day": r["first_day"].isoformat(),
        "last_day": r["last_day"].isoformat() if r["last_day"] else None,
        "hosts": list(r["hosts"]), "products": list(r["products"]), "series_id": r["series_id"],
        "season": r["season"], "room_id": r["room_id"], "booked_until": r["booked_until"],
        "occurrences": r["occurrences"],
    }  # fmt: skip


def new_show_id() -> str:
    return f"show-{secrets.token_hex(6)}"
