"""Programming: shows on a channel's calendar, recurring templates in local time, conflict
detection, creator availability, and the channel grid (now and next). No I/O, no clock:
every function takes the instants it needs.

Times are epoch seconds (UTC). A recurring show is defined in its channel's local time
("every weekday at 20:00 Europe/London"), so its UTC instant moves with daylight saving. A
local time that does not exist (the spring-forward gap) moves forward by the gap; one that
exists twice (fall-back) is its first occurrence.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from liveshop.errors import Conflict, InvalidRequest

UTC = dt.UTC
#: A show lasts at least a minute and at most a day.
MIN_SHOW, MAX_SHOW = 60.0, 24 * 3600.0

SHOW_KINDS = ("live", "premiere")
SHOW_STATUSES = ("scheduled", "live", "ended", "cancelled")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "America" is a folder
        raise InvalidRequest(f"unknown time zone {name!r}") from None


def local_to_utc(day: dt.date, at: dt.time, tz: ZoneInfo) -> float:
    """``at`` on ``day`` in ``tz`` as epoch seconds (gap: forward; overlap: the first)."""
    local = dt.datetime.combine(day, at).replace(tzinfo=tz, fold=0)
    return local.astimezone(UTC).timestamp()


@dataclass(frozen=True)
class Show:
    show_id: str
    channel_id: str
    title: str
    starts_at: float
    ends_at: float
    hosts: tuple[str, ...] = ()
    kind: str = "live"  # "live" | "premiere" (a recording played as an event)
    status: str = "scheduled"
    series_id: str | None = None
    season: int | None = None
    products: tuple[str, ...] = ()
    #: A premiere's recording (its replay playlist); a live show's room.
    recording: str | None = None
    room_id: str | None = None
    #: When it actually ended (its slot's end, or earlier when an operator ended it).
    ended_at: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in SHOW_KINDS:
            raise InvalidRequest(f"show kind must be one of {', '.join(SHOW_KINDS)}")
        if self.status not in SHOW_STATUSES:
            raise InvalidRequest(f"show status must be one of {', '.join(SHOW_STATUSES)}")
        length = self.ends_at - self.starts_at
        if not MIN_SHOW <= length <= MAX_SHOW:
            raise InvalidRequest("a show lasts between one minute and one day")
        if self.kind == "premiere" and not self.recording:
            raise InvalidRequest("a premiere needs the recording it plays")

    @property
    def active(self) -> bool:
        """Still holds its slot (cancelled and ended shows free it)."""
        return self.status in ("scheduled", "live")

    def overlaps(self, starts_at: float, ends_at: float) -> bool:
        return self.starts_at < ends_at and starts_at < self.ends_at

    def on_air(self, now: float) -> bool:
        return self.active and self.starts_at <= now < self.ends_at

    def to_wire(self) -> dict[str, object]:
        return {
            "show_id": self.show_id, "channel_id": self.channel_id, "title": self.title,
            "starts_at": self.starts_at, "ends_at": self.ends_at, "hosts": list(self.hosts),
            "kind": self.kind, "status": self.status, "series_id": self.series_id,
            "season": self.season, "products": list(self.products),
            "recording": self.recording, "room_id": self.room_id, "ended_at": self.ended_at,
        }  # fmt: skip


@dataclass(frozen=True)
class Recurrence:
    """A template: ``weekdays`` (0 = Monday) at ``at`` local time in ``tz``, lasting
    ``duration`` seconds, from ``first_day`` until ``last_day`` (inclusive, or open)."""

    weekdays: frozenset[int]
    at: dt.time
    duration: float
    tz: str
    first_day: dt.date
    last_day: dt.date | None = None

    def __post_init__(self) -> None:
        zone(self.tz)
        if not self.weekdays or not self.weekdays <= frozenset(range(7)):
            raise InvalidRequest("weekdays are 0 (Monday) to 6 (Sunday), at least one")
        if not MIN_SHOW <= self.duration <= MAX_SHOW:
            raise InvalidRequest("a show lasts between one minute and one day")
        if self.last_day is not None and self.last_day < self.first_day:
            raise InvalidRequest("a recurrence cannot end before it starts")

    def occurrences(self, start: float, end: float) -> list[tuple[float, float]]:
        """Every ``(starts_at, ends_at)`` of the template that starts in ``[start, end)``."""
        tz = zone(self.tz)
        day = max(self.first_day, dt.datetime.fromtimestamp(start, tz).date() - dt.timedelta(1))
        last = dt.datetime.fromtimestamp(end, tz).date()
        if self.last_day is not None:
            last = min(last, self.last_day)
        out = []
        while day <= last:
            if day.weekday() in self.weekdays:
                begins = local_to_utc(day, self.at, tz)
                if start <= begins < end:
                    out.append((begins, begins + self.duration))
            day += dt.timedelta(1)
        return out


@dataclass(frozen=True)
class Availability:
    """When a creator can host: weekly windows in their own time zone, ``(weekday, from,
    to)`` local times (a window may not cross midnight: split it). No windows: any time."""

    tz: str
    windows: tuple[tuple[int, dt.time, dt.time], ...] = ()

    def __post_init__(self) -> None:
        zone(self.tz)
        for weekday, begins, finishes in self.windows:
            if not 0 <= weekday <= 6 or begins >= finishes:
                raise InvalidRequest("a window is a weekday 0-6 and a start before its end "
                                     "(split one that crosses midnight)")  # fmt: skip

    def covers(self, starts_at: float, ends_at: float) -> bool:
        if not self.windows:
            return True
        tz = zone(self.tz)
        day = dt.datetime.fromtimestamp(starts_at, tz).date() - dt.timedelta(1)
        last = dt.datetime.fromtimestamp(ends_at, tz).date()
        while day <= last:
            for weekday, begins, finishes in self.windows:
                if day.weekday() == weekday:
                    a, b = local_to_utc(day, begins, tz), local_to_utc(day, finishes, tz)
                    if a <= starts_at and ends_at <= b:
                        return True
            day += dt.timedelta(1)
        return False


@dataclass
class Calendar:
    """Every active show of the channels and hosts one check needs to see."""

    shows: list[Show] = field(default_factory=list)

    def conflict(self, candidate: Show) -> Show | None:
        """The first active show booking the same channel or a shared host at an
        overlapping time (``None``: the slot is free). The candidate itself (same id) is
        not a conflict, so a show can be moved."""
        hosts = set(candidate.hosts)
        for show in sorted(self.shows, key=lambda s: s.starts_at):
            if show.show_id == candidate.show_id or not show.active:
                continue
            if not show.overlaps(candidate.starts_at, candidate.ends_at):
                continue
            if show.channel_id == candidate.channel_id or hosts & set(show.hosts):
                return show
        return None

    def check(self, candidate: Show, availability: dict[str, Availability]) -> None:
        """Refuse a double booking (naming the show in the way) or a host who is not
        available then."""
        clash = self.conflict(candidate)
        if clash is not None:
            shared = sorted(set(candidate.hosts) & set(clash.hosts))
            why = f"host {shared[0]!r}" if shared else f"channel {clash.channel_id!r}"
            raise Conflict(
                f"{why} is booked for {clash.title!r} then", details={"show": clash.to_wire()}
            )
        for host in candidate.hosts:
            hours = availability.get(host)
            if hours is not None and not hours.covers(candidate.starts_at, candidate.ends_at):
                raise Conflict(f"host {host!r} is not available then", details={"host": host})

    def expand(
        self, template: Recurrence, make: Show, start: float, end: float
    ) -> tuple[list[Show], list[tuple[Show, Show]]]:
        """The shows a template yields in ``[start, end)`` (ids ``<make.show_id>-<local
        date>``, so expanding the same days again names the same shows; each like ``make``
        at its own time), split into bookable ones and ``(show, conflict)`` pairs; bookable
        ones are added to the calendar as they are found."""
        booked, clashes = [], []
        tz = zone(template.tz)
        for begins, finishes in template.occurrences(start, end):
            day = dt.datetime.fromtimestamp(begins, tz).strftime("%Y%m%d")
            show = dataclasses.replace(
                make, show_id=f"{make.show_id}-{day}", starts_at=begins, ends_at=finishes
            )
            clash = self.conflict(show)
            if clash is None:
                self.shows.append(show)
                booked.append(show)
            else:
                clashes.append((show, clash))
        return booked, clashes


def now_and_next(shows: Iterable[Show], now: float) -> dict[str, dict[str, Show | None]]:
    """The channel grid: for every channel with active shows, the one on air and the next
    one to start."""
    grid: dict[str, dict[str, Show | None]] = {}
    for show in sorted((s for s in shows if s.active), key=lambda s: s.starts_at):
        slot = grid.setdefault(show.channel_id, {"now": None, "next": None})
        if show.on_air(now) and slot["now"] is None:
            slot["now"] = show
        elif show.starts_at >= now and slot["next"] is None:
            slot["next"] = show
    return grid
