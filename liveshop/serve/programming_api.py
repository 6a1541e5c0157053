"""HTTP routes for channels, shows and show operations (included in the API app).

Plain FastAPI routes rather than methods of the Serve deployment, so that the API is split by
area: the deployment hands its :class:`Programming` to :func:`use` when it starts (one per
replica process), and each route reaches it through a dependency.
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at runtime.
import datetime as dt
import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BeforeValidator, Field

from liveshop import clock
from liveshop.app.programming import Programming, require_operator
from liveshop.config import Settings
from liveshop.errors import InvalidRequest, Unavailable
from liveshop.rooms.channel import ChannelInfo
from liveshop.rooms.schedule import Availability, Recurrence, Show
from liveshop.serve import views
from liveshop.serve.auth import (
    Authorization,
    bearer_identity,
    require_self_or_service,
    require_service,
)
from liveshop.serve.schema import (
    DECIMAL,
    DECIMAL_INT,
    JSON,
    MAX_BIGINT,
    MAX_EPOCH,
    ROLE,
    Body,
    Epoch,
    JsonObject,
    Route,
    answers,
)
from liveshop.storage.channels import new_show_id
from liveshop.text import Key, Line, Text
from liveshop.tokens import Identity

router = APIRouter(route_class=Route)

Slug = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
IdField = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Name = Annotated[Line, Field(min_length=1, max_length=200)]
#: A time zone's name (IANA; checked by the schedule rules).
Zone = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+/-]+$")]
Day = 86400.0
#: Template dates: from 2000 to 2100 (a date further out only overflows the calendar).
FIRST_DAY, LAST_DAY = dt.date(2000, 1, 1), dt.date(2100, 12, 31)
#: Query times (epoch seconds; ``from``/``to``/``at`` are > 0).
When = Annotated[float | None, Query(gt=0, le=MAX_EPOCH, allow_inf_nan=False), DECIMAL]
From = Annotated[
    float | None, Query(alias="from", gt=0, le=MAX_EPOCH, allow_inf_nan=False), DECIMAL
]
To = Annotated[float | None, Query(alias="to", gt=0, le=MAX_EPOCH, allow_inf_nan=False), DECIMAL]


def _iso_date(value: Any) -> Any:
    """A date in JSON is an ISO string ("2025-06-01"), within FIRST_DAY..LAST_DAY."""
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError("must be a date, YYYY-MM-DD") from None
        if not FIRST_DAY <= value <= LAST_DAY:
            raise ValueError(f"must be between {FIRST_DAY} and {LAST_DAY}")
    return value


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]


class _Context:
    programming: Programming | None = None
    settings: Settings | None = None


_context = _Context()


def use(programming: Programming, settings: Settings) -> None:
    """Called by the API deployment when it starts."""
    _context.programming, _context.settings = programming, settings


def _programming() -> Programming:
    if _context.programming is None:
        raise Unavailable("the API is starting, try again")
    return _context.programming


def _caller(authorization: Authorization = None) -> Identity:
    if _context.settings is None:
        raise Unavailable("the API is starting, try again")
    return bearer_identity(_context.settings.secret, authorization)


Programs = Annotated[Programming, Depends(_programming)]
#: A control's or cue change's name in a path (unknown ones are 422).
Action = Annotated[Key, Path(min_length=1, max_length=32)]
Caller = Annotated[Identity, Depends(_caller)]


# -- bodies -----------------------------------------------------------------------------------


class ChannelIn(Body):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,48}$")]
    title: Name
    category: Annotated[Line, Field(min_length=1, max_length=40)] = "general"
    region: Annotated[Line, Field(min_length=1, max_length=40)] = "global"
    tz: Zone = "UTC"
    artwork_url: Annotated[Line, Field(max_length=2000)] | None = None
    description: Annotated[Text, Field(max_length=2000)] = ""


class CueIn(Body):
    cue_id: IdField | None = None
    #: Seconds after the show's start.
    at: float = Field(ge=0, le=Day)
    action: Literal["pin", "start_deal", "open_poll", "start_auction", "message"]
    #: The params of the viewer operation the action runs, without ``room`` (docs/protocol.md).
    params: JsonObject = Field(default_factory=dict)

    def wire(self) -> dict[str, Any]:
        return {"cue_id": self.cue_id or f"cue-{secrets.token_hex(4)}", "at": self.at,
                "action": self.action, "params": self.params}  # fmt: skip


class ShowIn(Body):
    id: IdField | None = None
    channel_id: IdField
    title: Name
    starts_at: Epoch = Field(gt=0)
    ends_at: Epoch = Field(gt=0)
    hosts: list[IdField] = Field(default_factory=list, max_length=10)
    kind: Literal["live", "premiere"] = "live"
    series_id: IdField | None = None
    season: int | None = Field(default=None, ge=1, le=1000)
    products: list[IdField] = Field(default_factory=list, max_length=100)
    #: A premiere's recording (an HLS playlist URL or path).
    recording: Annotated[Line, Field(max_length=2000)] | None = None
    #: The room the show happens in; by default one is made for it (named as the show).
    room_id: IdField | None = None
    cues: list[CueIn] = Field(default_factory=list, max_length=500)


#: What ``POST /shows`` may send, above ``Settings.max_body_bytes``: a run of show of 500 cues,
#: each a poll (680 characters) or a message (500) written as JSON escapes (6 bytes a
#: character, 12 outside the BMP), is up to about 4 MB.
SHOW_BODY_BYTES = 6 * 1024 * 1024
#: The routes that take bodies above the limit (``http_errors.BodyLimit``).
LARGE_BODIES = {("POST", "/shows"): SHOW_BODY_BYTES}


class ShowPatch(Body):
    title: Name | None = None
    starts_at: Epoch | None = Field(default=None, gt=0)
    ends_at: Epoch | None = Field(default=None, gt=0)
    hosts: list[IdField] | None = Field(default=None, max_length=10)
    products: list[IdField] | None = Field(default=None, max_length=100)
    recording: Annotated[Line, Field(max_length=2000)] | None = None
    status: Literal["cancelled"] | None = None


class TemplateIn(Body):
    id: IdField | None = None
    title: Name
    #: 0 = Monday ... 6 = Sunday.
    weekdays: list[Annotated[int, Field(ge=0, le=6)]] = Field(min_length=1, max_length=7)
    #: Local time, "HH:MM".
    at: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
    duration: float = Field(ge=60, le=Day)
    #: Defaults to the channel's time zone.
    tz: Zone | None = None
    first_day: IsoDate
    last_day: IsoDate | None = None
    hosts: list[IdField] = Field(default_factory=list, max_length=10)
    products: list[IdField] = Field(default_factory=list, max_length=100)
    series_id: IdField | None = None
    season: int | None = Field(default=None, ge=1, le=1000)
    room_id: IdField | None = None
    days: int = Field(default=14, ge=1, le=90)


class WindowIn(Body):
    weekday: int = Field(ge=0, le=6)
    start: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
    end: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")]


class AvailabilityIn(Body):
    tz: Zone
    windows: list[WindowIn] = Field(default_factory=list, max_length=100)


class ControlIn(Body):
    #: Why: every emergency control is audited.
    reason: Annotated[Text, Field(min_length=1, max_length=500)]
    #: switch_stream: the room whose stream the channel shows.
    room_id: IdField | None = None
    #: end_show: which show (default: the one on air).
    show_id: IdField | None = None


class CueChangeIn(Body):
    #: reschedule: the cue's new time, seconds after the show's start.
    at: float | None = Field(default=None, ge=0, le=Day)


# -- channels and the grid -------------------------------------------------------------------


@router.post(
    "/channels", status_code=201, response_model=views.ChannelOut, responses=answers(*ROLE, *JSON)
)
async def create_channel(body: ChannelIn, p: Programs, who: Caller) -> dict[str, Any]:
    """Create or update a channel (service role); its actor starts at once and runs 24/7."""
    require_service(who)
    info = ChannelInfo(body.id, body.title, body.category, body.region, body.tz,
                       body.artwork_url, body.description)  # fmt: skip
    return await p.save_channel(info)


@router.get("/channels", response_model=list[views.ChannelOut], responses=answers())
async def list_channels(
    p: Programs,
    category: Annotated[Line | None, Query(min_length=1, max_length=40)] = None,
    region: Annotated[Line | None, Query(min_length=1, max_length=40)] = None,
) -> list[dict[str, Any]]:
    return [c.to_wire() for c in await p.store.list_channels(category=category, region=region)]


@router.get("/grid", response_model=list[views.Slot], responses=answers())
async def grid(
    p: Programs,
    at: When = None,
    category: Annotated[Line | None, Query(min_length=1, max_length=40)] = None,
    region: Annotated[Line | None, Query(min_length=1, max_length=40)] = None,
) -> list[dict[str, Any]]:
    """What is on now and next on every channel (``at``: another instant)."""
    return await p.grid(at or clock.now(), category=category, region=region)


@router.get("/channels/{channel_id}", response_model=views.ChannelView, responses=answers(404))
async def get_channel(channel_id: Slug, p: Programs) -> dict[str, Any]:
    """The channel as its viewers see it: what plays (route), now, next, any override."""
    return await p.channels.run(channel_id, "view")


@router.get(
    "/channels/{channel_id}/calendar", response_model=list[views.ShowOut], responses=answers(404)
)
async def channel_calendar(
    channel_id: Slug,
    p: Programs,
    start: From = None,
    end: To = None,
) -> list[dict[str, Any]]:
    """The channel's programming between ``from`` and ``to`` (default: the next 7 days)."""
    begin, finish = _range(start, end)
    await p.store.channel(channel_id)  # channel_not_found
    shows = await p.store.calendar(channel_id=channel_id, start=begin, end=finish)
    return [s.to_wire() for s in shows]


@router.get(
    "/channels/{channel_id}/templates", response_model=list[dict[str, Any]], responses=answers(404)
)
async def channel_templates(channel_id: Slug, p: Programs) -> list[dict[str, Any]]:
    return await p.store.templates(channel_id)


@router.post(
    "/channels/{channel_id}/templates",
    status_code=201,
    response_model=views.TemplateOut,
    responses=answers(*ROLE, *JSON, 404, 409),
)
async def create_template(
    channel_id: Slug, body: TemplateIn, p: Programs, who: Caller
) -> dict[str, Any]:
    """A recurring show ("every weekday at 20:00 local"): its dates are booked ``days``
    ahead, then kept booked 14 days ahead; dates another show holds are reported, not
    booked."""
    require_service(who)
    info, _ = await p.store.channel(channel_id)
    template_id = body.id or f"tpl-{secrets.token_hex(5)}"
    recurrence = Recurrence(frozenset(body.weekdays), dt.time.fromisoformat(body.at),
                            body.duration, body.tz or info.tz, body.first_day,
                            body.last_day)  # fmt: skip
    make = Show(template_id, channel_id, body.title, 0.0, body.duration, tuple(body.hosts),
                series_id=body.series_id, season=body.season, products=tuple(body.products),
                room_id=body.room_id)  # fmt: skip
    return await p.template(template_id, recurrence, make, body.days)


@router.post(
    "/channels/{channel_id}/controls/{action}",
    response_model=views.OpResult,
    responses=answers(*ROLE, *JSON, 404, 409),
)
async def control(
    channel_id: Slug, action: Action, body: ControlIn, p: Programs, who: Caller
) -> dict[str, Any]:
    """Emergency controls (operators): ``cut_to_slate``, ``switch_stream``, ``resume``,
    ``end_show``, ``freeze_chat``, ``unfreeze_chat``. In force for every viewer when this
    answers; audited with who, when and why."""
    return await p.control(who, channel_id, action, body.reason, body.room_id, body.show_id)


@router.get(
    "/channels/{channel_id}/audit",
    response_model=list[views.AuditEntry],
    responses=answers(*ROLE, 404),
)
async def channel_audit(
    channel_id: Slug,
    p: Programs,
    who: Caller,
    after: Annotated[int | None, Query(ge=0, le=MAX_BIGINT), DECIMAL_INT] = None,
    limit: Annotated[int, Query(ge=1, le=1000), DECIMAL_INT] = 100,
) -> list[dict[str, Any]]:
    """Every emergency control used on the channel, oldest first (operators)."""
    require_operator(who, channel_id)
    return await p.store.audit_log(channel_id, after=after, limit=limit)


# -- shows ------------------------------------------------------------------------------------


@router.post(
    "/shows",
    status_code=201,
    response_model=views.ShowOut,
    responses=answers(*ROLE, *JSON, 404, 409),
)
async def create_show(body: ShowIn, p: Programs, who: Caller) -> dict[str, Any]:
    """Book a show (service role). A channel or host booked twice is refused (409
    ``conflict``, ``details.show`` naming the show in the way), as is a host outside their
    availability."""
    require_service(who)
    show = Show(body.id or new_show_id(), body.channel_id, body.title, body.starts_at,
                body.ends_at, tuple(body.hosts), body.kind, series_id=body.series_id,
                season=body.season, products=tuple(body.products), recording=body.recording,
                room_id=body.room_id)  # fmt: skip
    return await p.book(show, [c.wire() for c in body.cues])


@router.get("/shows/{show_id}", response_model=views.ShowOut, responses=answers(404))
async def get_show(show_id: Slug, p: Programs) -> dict[str, Any]:
    show, _ = await p.store.show(show_id)
    return show.to_wire()


@router.patch(
    "/shows/{show_id}", response_model=views.ShowOut, responses=answers(*ROLE, *JSON, 404, 409)
)
async def edit_show(show_id: Slug, body: ShowPatch, p: Programs, who: Caller) -> dict[str, Any]:
    """Move, retitle, recast or cancel a show (service role; conflicts as for booking)."""
    require_service(who)
    changes: dict[str, Any] = body.model_dump(exclude_unset=True, exclude_none=True)
    for key in ("hosts", "products"):
        if key in changes:
            changes[key] = tuple(changes[key])
    return await p.edit(show_id, changes)


@router.get(
    "/shows/{show_id}/run-of-show", response_model=views.OpResult, responses=answers(*ROLE, 404)
)
async def run_of_show(show_id: Slug, p: Programs, who: Caller) -> dict[str, Any]:
    """The show's cues and the log of every cue fired, skipped or moved (its staff)."""
    return await p.run_of_show(who, show_id=show_id)


@router.post(
    "/shows/{show_id}/cues",
    status_code=201,
    response_model=views.OpResult,
    responses=answers(*ROLE, *JSON, 404, 409),
)
async def add_cue(show_id: Slug, body: CueIn, p: Programs, who: Caller) -> dict[str, Any]:
    """Add a cue: at T+``at`` run ``action`` with ``params`` (the host or a service)."""
    return await p.add_cue(who, show_id, body.wire())


@router.post(
    "/shows/{show_id}/cues/{cue_id}/{op}",
    response_model=views.OpResult,
    responses=answers(*ROLE, *JSON, 404, 409),
)
async def change_cue(
    show_id: Slug, cue_id: Slug, op: Action, body: CueChangeIn, p: Programs, who: Caller
) -> dict[str, Any]:
    """``fire`` now, ``skip``, or ``reschedule`` (to ``at``) a pending cue (the host)."""
    return await p.cue(who, op, cue_id, show_id=show_id, at=body.at)


@router.get(
    "/shows/{show_id}/analytics", response_model=views.OpResult, responses=answers(*ROLE, 404)
)
async def show_analytics(show_id: Slug, p: Programs, who: Caller) -> dict[str, Any]:
    """Live while the show is on air (updated every second), the stored report after."""
    return await p.analytics(who, show_id=show_id)


@router.get(
    "/shows/{show_id}/analytics/minutes",
    response_model=list[dict[str, Any]],
    responses=answers(*ROLE, 404),
)
async def show_analytics_minutes(show_id: Slug, p: Programs, who: Caller) -> list[dict[str, Any]]:
    """The show's report minute by minute, for reports afterwards (its staff)."""
    await p.analytics_allowed(who, show_id)
    return await p.store.analytics_minutes(show_id)


# -- follows, creators, series ------------------------------------------------------------------


@router.put(
    "/users/{user_id}/follows/{kind}/{target_id}",
    status_code=201,
    response_model=views.FollowOut,
    responses=answers(*ROLE, 404),
)
async def follow(
    user_id: Slug, kind: Literal["show", "series"], target_id: Slug, p: Programs, who: Caller
) -> dict[str, Any]:
    """Follow a show or a series: reminders (``show_reminder`` events, GET /events) before
    each show starts."""
    require_self_or_service(who, user_id)
    created = await p.store.follow(user_id, kind, target_id)
    return {"user_id": user_id, "kind": kind, "id": target_id, "created": created}


@router.delete(
    "/users/{user_id}/follows/{kind}/{target_id}",
    response_model=views.FollowOut,
    responses=answers(*ROLE, 404),
)
async def unfollow(
    user_id: Slug, kind: Literal["show", "series"], target_id: Slug, p: Programs, who: Caller
) -> dict[str, Any]:
    require_self_or_service(who, user_id)
    removed = await p.store.unfollow(user_id, kind, target_id)
    return {"user_id": user_id, "kind": kind, "id": target_id, "removed": removed}


@router.get(
    "/users/{user_id}/follows", response_model=list[views.Followed], responses=answers(*ROLE, 404)
)
async def follows(user_id: Slug, p: Programs, who: Caller) -> list[dict[str, Any]]:
    require_self_or_service(who, user_id)
    return await p.store.follows(user_id)


@router.get(
    "/creators/{user_id}/calendar", response_model=list[views.ShowOut], responses=answers(404)
)
async def creator_calendar(
    user_id: Slug,
    p: Programs,
    start: From = None,
    end: To = None,
) -> list[dict[str, Any]]:
    """Every show the creator hosts between ``from`` and ``to``, on any channel."""
    begin, finish = _range(start, end)
    return [s.to_wire() for s in await p.store.calendar(host=user_id, start=begin, end=finish)]


@router.get(
    "/series/{series_id}/calendar", response_model=list[views.ShowOut], responses=answers(404)
)
async def series_calendar(
    series_id: Slug,
    p: Programs,
    start: From = None,
    end: To = None,
) -> list[dict[str, Any]]:
    begin, finish = _range(start, end)
    shows = await p.store.calendar(series_id=series_id, start=begin, end=finish)
    return [s.to_wire() for s in shows]


@router.put(
    "/creators/{user_id}/availability",
    response_model=views.AvailabilityOut,
    responses=answers(*ROLE, *JSON, 404),
)
async def set_availability(
    user_id: Slug, body: AvailabilityIn, p: Programs, who: Caller
) -> dict[str, Any]:
    """When the creator can host (weekly windows in their time zone); bookings outside
    them are refused. No windows: any time."""
    require_self_or_service(who, user_id)
    windows = tuple((w.weekday, dt.time.fromisoformat(w.start), _end_of(w.end))
                    for w in body.windows)  # fmt: skip
    await p.set_availability(user_id, Availability(body.tz, windows))
    return {"user_id": user_id, **body.model_dump()}


@router.get(
    "/creators/{user_id}/availability", response_model=views.AvailabilityOut, responses=answers(404)
)
async def get_availability(user_id: Slug, p: Programs) -> dict[str, Any]:
    hours = await p.store.availability(user_id)
    if hours is None:
        return {"user_id": user_id, "tz": None, "windows": []}
    return {"user_id": user_id, "tz": hours.tz, "windows": [
        {"weekday": d, "start": a.strftime("%H:%M"), "end": b.strftime("%H:%M")}
        for d, a, b in hours.windows
    ]}  # fmt: skip


def _end_of(text: str) -> dt.time:
    return dt.time.max if text == "24:00" else dt.time.fromisoformat(text)


def _range(start: float | None, end: float | None) -> tuple[float, float]:
    begin = start if start is not None else clock.now() - Day
    finish = end if end is not None else begin + 8 * Day
    if finish <= begin or finish - begin > 92 * Day:
        raise InvalidRequest("'to' comes after 'from', at most 92 days later")
    return begin, finish
